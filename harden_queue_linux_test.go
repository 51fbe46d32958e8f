package shmio

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Cross-process and Linux-only tests for the queue side of issue 11.

func init() {
	xpRoles["queue-tagger"] = hqTaggerChild
}

// hqTaggerChild is a writer to be killed that commits every batch with CommitTagged, the tag
// being the sequence number of the batch's last frame. It resumes after the last frame in the
// queue, says "s NEXT", then writes batches of 1 to 80 frames forever (in 4 KiB segments most
// batches straddle a roll), saying "c TAG" after each commit. With STAGE set it kills itself
// at the AFTER-th time a roll or commit reaches that stage.
func hqTaggerChild() error {
	dir := xpEnv("DIR")
	if stage := xpEnv("STAGE"); stage != "" {
		after := xpEnvInt("AFTER", 1)
		var count atomic.Int64
		queueTestHook = func(s string) {
			if s == stage && count.Add(1) == after {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096})
	if err != nil {
		return err
	}
	w, err := q.Writer()
	if err != nil {
		return err
	}
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		return err
	}
	if _, err := it.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	last, err := it.Prev()
	if err != nil {
		return err
	}
	seq := uint64(0)
	if last != nil {
		seq = le.Uint64(last) + 1
	}
	it.Close()
	fmt.Printf("s %d\n", seq)
	for {
		for k := 1 + xpMix(seq)%80; k > 0; k-- {
			p, err := w.Allocate(xpSize(seq))
			if err != nil {
				return err
			}
			xpFill(p, seq)
			seq++
		}
		if err := w.CommitTagged(seq - 1); err != nil {
			return err
		}
		fmt.Printf("c %d\n", seq-1)
		time.Sleep(20 * time.Microsecond)
	}
}

// TestQueueCommitTagNeverAheadOfFrames (issue 11 point 21): a writer using CommitTagged across
// rolls is killed with SIGKILL at random moments and between the commits of a batch that
// straddles a roll. After each kill Queue.CommitTag must name a frame that is in the queue (every
// frame up to the tag present), and no older than the last commit the writer reported.
func TestQueueCommitTagNeverAheadOfFrames(t *testing.T) {
	kills := 60
	if testing.Short() {
		kills = 20
	}
	stages := []string{"", "commit-between", "seal-after", "seal-before", "roll-got-next"}
	dir := filepath.Join(xpDir(t), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	check, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 21))
	var checked uint64
	lastReported := int64(-1)
	perStage := map[string]int{}
	for i := range kills {
		stage := stages[i%len(stages)]
		after := 1 + rng.Int64N(6)
		c := xpStart(t, "queue-tagger", "DIR="+dir, "STAGE="+stage, "AFTER="+strconv.FormatInt(after, 10))
		var lines []string
		if stage == "" {
			lines = append(lines, c.line(60*time.Second))
			time.Sleep(time.Duration(rng.Int64N(int64(10 * time.Millisecond))))
			lines = append(lines, c.kill9()...)
		} else {
			lines = qxAwaitSelfKill(t, c, 60*time.Second)
		}
		perStage[stage]++
		for _, l := range lines {
			tag, nums, err := xpFields(l)
			if err != nil || len(nums) != 1 {
				t.Fatalf("kill %d: child line %q", i, l)
			}
			if tag == "c" {
				lastReported = max(lastReported, nums[0])
			}
		}
		for {
			f, err := check.Next()
			if err != nil {
				t.Fatalf("kill %d (stage %q): checker at frame %d: %v", i, stage, checked, err)
			}
			if f == nil {
				break
			}
			if err := xpCheck(f, checked); err != nil {
				t.Fatalf("kill %d (stage %q): %v", i, stage, err)
			}
			checked++
		}
		tag, ok, err := q.CommitTag()
		if err != nil {
			t.Fatalf("kill %d (stage %q): CommitTag: %v", i, stage, err)
		}
		if checked > 0 && !ok {
			t.Fatalf("kill %d (stage %q): %d frames, every commit tagged, but CommitTag reports none", i, stage, checked)
		}
		if ok && tag >= checked {
			t.Fatalf("kill %d (stage %q): CommitTag names frame %d, but the queue holds frames 0..%d only", i, stage, tag, int64(checked)-1)
		}
		if ok && int64(tag) < lastReported {
			t.Fatalf("kill %d (stage %q): CommitTag names frame %d, but the writer reported committing with tag %d", i, stage, tag, lastReported)
		}
	}
	t.Logf("%d kills (%v), %d frames, writer reached segment %d", kills, perStage, checked, check.Segment())
}
