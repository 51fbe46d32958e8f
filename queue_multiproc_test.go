package shmio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

// Cross-process queue tests: child roles run through main_test.go's TestMain (xpRoles) and use
// its test frames (xpFill/xpCheck: sequence number, size, body and CRC checked per frame).

func init() {
	xpRoles["queue-writer"] = qxWriterChild
	xpRoles["queue-reader"] = qxReaderChild
	xpRoles["queue-killee"] = qxKilleeChild
}

// qxWriterChild writes frames 0..N-1 to the queue in DIR in batches of 1 to 64 frames and
// reports its roll statistics.
func qxWriterChild() error {
	dir, n := testproc.Param("DIR"), uint64(testproc.ParamInt("N", 0))
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: testproc.ParamInt("SEGSIZE", 64<<10)})
	if err != nil {
		return err
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		return err
	}
	start := time.Now()
	batch, target := 0, 1+int(xpMix(0)%64)
	for seq := uint64(0); seq < n; seq++ {
		p, err := w.Allocate(xpSize(seq))
		if err != nil {
			return fmt.Errorf("allocate frame %d: %w", seq, err)
		}
		xpFill(p, seq)
		if batch++; batch >= target {
			if err := w.Commit(); err != nil {
				return err
			}
			batch, target = 0, 1+int(xpMix(seq)%64)
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	st := w.Stats()
	testproc.Report(map[string]int64{"frames": int64(n), "rolls": st.Rolls, "stalls": st.Stalls,
		"roll_ns": int64(st.TotalTime), "max_roll_ns": int64(st.MaxTime), "elapsed_ns": int64(time.Since(start)), "segment": w.Segment()})
	return w.Close()
}

type qxReaderResult struct {
	Frames, Segments, Waits, Restarts, Cursor int64
	MaxWaitNs                                 int64
}

// qxReaderChild reads N frames from the start (named NAME if set, reopening the name every
// RESTART frames), checking each, sleeping in Wait whenever it catches up. Its sleeps are not
// cut into 10 ms slices but last up to a minute: only the writer's wake-ups (commits, and seals
// at rolls) end them in time, so a lost wake-up shows as a long MaxWaitNs.
func qxReaderChild() error {
	sleepSlice = time.Minute
	dir, n, name, restart := testproc.Param("DIR"), uint64(testproc.ParamInt("N", 0)), testproc.Param("NAME"), uint64(testproc.ParamInt("RESTART", 0))
	q, err := OpenQueue(QueueOptions{Dir: dir})
	if err != nil {
		return err
	}
	defer q.Close()
	it, err := q.NamedIterator(name, IteratorOptions{})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var res qxReaderResult
	seq, nextRestart, seg := uint64(0), restart, int64(0)
	batch := make([][]byte, 0, 64)
	for seq < n {
		batch, err = it.NextBatch(batch[:0], BatchOptions{})
		if err != nil {
			return fmt.Errorf("at frame %d: %w", seq, err)
		}
		if len(batch) == 0 {
			res.Waits++
			t0 := time.Now()
			if err := it.Wait(ctx); err != nil {
				return fmt.Errorf("wait at frame %d (cursor %#x): %w", seq, it.Cursor(), err)
			}
			if seq > 0 { // the first wait lasts until the writer process is up
				res.MaxWaitNs = max(res.MaxWaitNs, int64(time.Since(t0)))
			}
			continue
		}
		if s := it.Segment(); s != seg {
			res.Segments++
			seg = s
		}
		for _, f := range batch {
			if err := xpCheck(f, seq); err != nil {
				return fmt.Errorf("cursor %#x: %w", it.Cursor(), err)
			}
			seq++
		}
		if restart > 0 && seq >= nextRestart {
			// A restart: close (storing the cursor) and resume by name.
			if err := it.Close(); err != nil {
				return err
			}
			if it, err = q.NamedIterator(name, IteratorOptions{}); err != nil {
				return err
			}
			res.Restarts++
			nextRestart += restart
		}
	}
	if f, err := it.Next(); f != nil || err != nil {
		return fmt.Errorf("a frame after the last one: %d bytes, %v", len(f), err)
	}
	res.Frames, res.Cursor = int64(seq), it.Cursor()
	testproc.Report(res)
	return it.Close()
}

// TestQueueMultiProcess: one writer process and four reader processes (two named, one of which
// restarts by name three times, and two anonymous) move N frames through 64 KiB segments, across
// thousands of rolls; every reader checks every frame's sequence number, size and checksum.
// N is 10,000,000, with or without the race detector (about 10 s without, 60 s with, on 2
// cores); with -short 200,000.
func TestQueueMultiProcess(t *testing.T) {
	n := int64(10_000_000)
	if testing.Short() {
		n = 200_000
	}
	dir := filepath.Join(testproc.ShmDir(t), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	N := "N=" + strconv.FormatInt(n, 10)
	readers := []*testproc.Child{
		testproc.Start(t, "queue-reader", "DIR="+dir, N, "NAME=billing", "RESTART="+strconv.FormatInt(n/4+1, 10)),
		testproc.Start(t, "queue-reader", "DIR="+dir, N, "NAME=audit"),
		testproc.Start(t, "queue-reader", "DIR="+dir, N),
		testproc.Start(t, "queue-reader", "DIR="+dir, N),
	}
	for _, r := range readers {
		if l := r.Line(60 * time.Second); l != "ready" {
			t.Fatalf("reader said %q", l)
		}
	}
	start := time.Now()
	w := testproc.Start(t, "queue-writer", "DIR="+dir, N, "SEGSIZE=65536")
	var wres map[string]int64
	w.Finish(20*time.Minute, &wres)
	wrote := time.Since(start)
	var rres [4]qxReaderResult
	for i, r := range readers {
		r.Finish(20*time.Minute, &rres[i])
	}
	all := time.Since(start)
	t.Logf("writer: %d frames, %d rolls (%d stalled), roll mean %v max %v; wrote in %v, all read in %v (%.2f M frames/s end to end)",
		wres["frames"], wres["rolls"], wres["stalls"], time.Duration(wres["roll_ns"]/max(wres["rolls"], 1)), time.Duration(wres["max_roll_ns"]),
		wrote.Round(time.Millisecond), all.Round(time.Millisecond), float64(n)/all.Seconds()/1e6)
	if wres["frames"] != n || wres["rolls"] < n/2000 {
		t.Fatalf("writer result %v: want %d frames and thousands of rolls", wres, n)
	}
	res, err := q.Verify()
	if err != nil || res.Frames != n {
		t.Fatalf("Verify: %+v, %v", res, err)
	}
	end := QueueCursor(res.Head, 0)
	if segs, _ := q.Segments(); len(segs) > 0 {
		for _, s := range segs {
			if s.Number == res.Head {
				end = QueueCursor(s.Number, s.Committed)
			}
		}
	}
	for i, r := range rres {
		t.Logf("reader %d: %+v", i, r)
		if r.Frames != n || r.Cursor != end || r.Segments < wres["rolls"]/2 {
			t.Errorf("reader %d: %+v; want %d frames, cursor %#x", i, r, n, end)
		}
		if time.Duration(r.MaxWaitNs) > 20*time.Second {
			t.Errorf("reader %d slept %v in one Wait: a wake-up was lost", i, time.Duration(r.MaxWaitNs))
		}
	}
	if rres[0].Restarts != 3 {
		t.Errorf("named reader restarted %d times, want 3", rres[0].Restarts)
	}
	infos, err := q.Readers()
	if err != nil || len(infos) != 2 {
		t.Fatalf("Readers: %+v, %v", infos, err)
	}
	for _, ri := range infos {
		if ri.Cursor != end || ri.LagFrames != 0 || ri.Active {
			t.Errorf("named reader after the run: %+v, want cursor %#x and no lag", ri, end)
		}
	}
}

// qxKilleeChild is a writer to be killed: it resumes after the last frame in the queue, says
// "s NEXT", then writes batches of 1 to 20 frames forever, saying "c LAST" after each commit.
// With STAGE set it kills itself with SIGKILL at the AFTER-th time a roll (or recovery) reaches
// that stage.
func qxKilleeChild() error {
	dir := testproc.Param("DIR")
	if stage := testproc.Param("STAGE"); stage != "" {
		after := testproc.ParamInt("AFTER", 1)
		var count atomic.Int64
		queueTestHook = func(s string) {
			if s == stage && count.Add(1) == after {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	w, seq, err := qxResume(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096, Retention: RetentionPolicy{MaxSegments: 20}})
	if err != nil {
		return err
	}
	fmt.Printf("s %d\n", seq)
	for {
		for k := 1 + xpMix(seq)%20; k > 0; k-- {
			p, err := w.Allocate(xpSize(seq))
			if err != nil {
				return err
			}
			xpFill(p, seq)
			seq++
		}
		if err := w.Commit(); err != nil {
			return err
		}
		fmt.Printf("c %d\n", seq-1)
		time.Sleep(20 * time.Microsecond)
	}
}

// TestQueueKill9: the writer is killed with SIGKILL 120 times: 40 times at a random moment, 80
// times at a chosen stage of a roll (or of recovery). After each kill every frame it reported
// committed must be in the queue, whole and in order (a named reader in this process checks them
// as they come), the queue must verify, and the next writer must continue after the last frame.
// Retention (20 segments, soft) runs meanwhile and must not remove what the checker has not read.
func TestQueueKill9(t *testing.T) {
	kills := 120
	if testing.Short() {
		kills = 30
	}
	stages := []string{"recover", "prepare-created", "prepared", "roll-got-next", "seal-before", "seal-after", "roll-done", "reuse-before-link"}
	dir := filepath.Join(testproc.ShmDir(t), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	check, err := q.NamedIterator("checker", IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	var checked uint64
	lastReported := int64(-1)
	perStage := map[string]int{}
	segsBefore := int64(0)
	for i := 0; i < kills; i++ {
		stage, after := "", int64(0)
		if i%3 != 0 {
			stage = stages[(i-i/3-1)%len(stages)]
			after = 1 + rng.Int64N(5)
			if stage == "recover" {
				after = 1
			}
		}
		c := testproc.Start(t, "queue-killee", "DIR="+dir, "STAGE="+stage, "AFTER="+strconv.FormatInt(after, 10))
		var lines []string
		if stage == "" {
			lines = append(lines, c.Line(60*time.Second))
			time.Sleep(time.Duration(rng.Int64N(int64(15 * time.Millisecond))))
			lines = append(lines, c.Kill9()...)
		} else {
			lines = c.AwaitKilled(60 * time.Second)
		}
		perStage[stage]++
		for _, l := range lines {
			tag, nums, err := xpFields(l)
			if err != nil || len(nums) != 1 {
				t.Fatalf("kill %d: child line %q", i, l)
			}
			switch tag {
			case "s":
				if nums[0] < lastReported+1 {
					t.Fatalf("kill %d: writer resumed at frame %d, but frame %d was reported committed", i, nums[0], lastReported)
				}
			case "c":
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
		if int64(checked) < lastReported+1 {
			t.Fatalf("kill %d (stage %q): %d frames in the queue, but frame %d was reported committed", i, stage, checked, lastReported)
		}
		if i%10 == 9 || i == kills-1 {
			if _, err := q.Verify(); err != nil {
				t.Fatalf("kill %d (stage %q): %v", i, stage, err)
			}
		}
		if i == 0 {
			segsBefore = check.Segment()
		}
	}
	// A last writer runs to completion of a few batches: the queue is writable after it all.
	c := testproc.Start(t, "queue-killee", "DIR="+dir)
	if l := c.Line(60 * time.Second); !strings.HasPrefix(l, "s ") {
		t.Fatalf("last writer said %q", l)
	}
	c.Line(60 * time.Second)
	c.Kill9()
	if f, err := check.Next(); err != nil || f == nil {
		t.Fatalf("nothing written after the last kill: %v", err)
	}
	segs, _ := q.Segments()
	t.Logf("%d kills (%v), %d frames checked, reader crossed to segment %d (from %d), %d segments kept by retention",
		kills, perStage, checked, check.Segment(), segsBefore, len(segs))
	if errors.Is(err, ErrCursor) {
		t.Fatal(err)
	}
}

// qxResume opens a writer child's queue and its writer, and finds the sequence number after the
// last committed frame: a restarted writer goes on where the killed one stopped.
func qxResume(opts QueueOptions) (*QueueWriter, uint64, error) {
	q, err := OpenQueue(opts)
	if err != nil {
		return nil, 0, err
	}
	w, err := q.Writer()
	if err != nil {
		return nil, 0, err
	}
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	if _, err := it.Seek(0, io.SeekEnd); err != nil {
		return nil, 0, err
	}
	last, err := it.Prev()
	if err != nil || last == nil {
		return w, 0, err
	}
	return w, le.Uint64(last) + 1, nil
}
