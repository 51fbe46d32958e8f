package shmio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shmio/shmio/internal/testproc"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Cross-process and Linux-only tests for the queue side of issue 11.

func init() {
	xpRoles["queue-tagger"] = hqTaggerChild
	xpRoles["queue-other-reader"] = hqOtherReaderChild
}

// hqOtherReaderChild reads every frame of the queue in DIR (checking each) and its metadata,
// as whichever user the parent started it as, and reports the frame count.
func hqOtherReaderChild() error {
	q, err := OpenQueue(QueueOptions{Dir: testproc.Param("DIR")})
	if err != nil {
		return err
	}
	defer q.Close()
	if _, err := q.Info(); err != nil {
		return err
	}
	if rs, err := q.Readers(); err != nil || len(rs) != 1 || rs[0].Err != nil {
		return fmt.Errorf("Readers: %+v, %v", rs, err)
	}
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		return err
	}
	n := uint64(0)
	for f, err := range it.All() {
		if err != nil {
			return err
		}
		if err := xpCheck(f, n); err != nil {
			return err
		}
		n++
	}
	testproc.Report(map[string]uint64{"frames": n, "uid": uint64(os.Getuid())})
	return nil
}

// hqStartAs starts the test binary (a copy that user uid may execute) as child role under
// uid and gid with no supplementary groups.
func hqStartAs(t *testing.T, bin string, uid, gid uint32, role string, params ...string) *exec.Cmd {
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), testproc.EnvRole+"="+role)
	for _, p := range params {
		cmd.Env = append(cmd.Env, "SHMIO_TEST_"+p)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	return cmd
}

// TestQueueModeKeptAcrossRollsAndRestarts (issue 11 point 4): a queue created with mode 0640
// under a umask of 077 keeps that mode in every file and directory it gets later (segments of
// many rolls, by a first writer and by a restarted one that gives no mode, queue.json, the
// writer lock, readers/ and a reader file), and a process of another user in the file's group
// reads the whole queue, while one outside it cannot.
func TestQueueModeKeptAcrossRollsAndRestarts(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	base := testproc.ShmDir(t)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "shmio.test")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "q")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	seq := uint64(0)
	write := func(mode os.FileMode, frames int) {
		t.Helper()
		q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		w, err := q.Writer()
		if err != nil {
			t.Fatal(err)
		}
		for range frames {
			p, err := w.Allocate(xpSize(seq))
			if err != nil {
				t.Fatal(err)
			}
			xpFill(p, seq)
			seq++
			if seq%7 == 0 {
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(0o640, 300)
	write(0, 300) // a restarted writer that gives no mode (as `shmio append` does)
	q, err := OpenQueue(QueueOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	it, err := q.NamedIterator("r", IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	it.Close()
	q.Close()
	syscall.Umask(old)
	segs, files := 0, 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		want := os.FileMode(0o640)
		if fi.IsDir() {
			want = 0o750 | fs.ModeDir
		} else {
			files++
		}
		if strings.HasSuffix(path, segSuffix) {
			segs++
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if segs < 6 || files < segs+3 {
		t.Fatalf("%d segments, %d files: want several rolls, queue.json, writer.lock and a reader", segs, files)
	}
	// uid 65534 in group 0 (the files' group) reads everything the mode lets the group read.
	cmd := hqStartAs(t, bin, 65534, 0, "queue-other-reader", "DIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reader as uid 65534, gid 0: %v; stderr:\n%s", err, cmdStderr(err))
	}
	var res map[string]uint64
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil || res["frames"] != seq || res["uid"] != 65534 {
		t.Fatalf("reader as uid 65534 read %s (%v), want %d frames", out, err, seq)
	}
	// Outside the group: the mode says no, and so does the system.
	cmd = hqStartAs(t, bin, 65534, 65534, "queue-other-reader", "DIR="+dir)
	if out, err := cmd.Output(); err == nil || !strings.Contains(cmdStderr(err), "permission denied") {
		t.Fatalf("reader as uid 65534 outside the group: %s, %v; want permission denied", out, err)
	}
}

func cmdStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// hqTaggerChild is a writer to be killed that commits every batch with CommitTagged, the tag
// being the sequence number of the batch's last frame. It resumes after the last frame in the
// queue, says "s NEXT", then writes batches of 1 to 80 frames forever (in 4 KiB segments most
// batches straddle a roll), saying "c TAG" after each commit. With STAGE set it kills itself
// at the AFTER-th time a roll or commit reaches that stage.
func hqTaggerChild() error {
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
	w, seq, err := qxResume(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096})
	if err != nil {
		return err
	}
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
	dir := filepath.Join(testproc.ShmDir(t), "q")
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
		c := testproc.Start(t, "queue-tagger", "DIR="+dir, "STAGE="+stage, "AFTER="+strconv.FormatInt(after, 10))
		var lines []string
		if stage == "" {
			lines = append(lines, c.Line(60*time.Second))
			time.Sleep(time.Duration(rng.Int64N(int64(10 * time.Millisecond))))
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

// hqTmpfs mounts a tmpfs of size bytes for the test, or skips it.
func hqTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): skipping", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestQueueRollOnFullFilesystemNamesCause (issue 11 point 15): when a roll cannot make the next
// segment because the filesystem is full, Allocate's error wraps ErrFull and the real cause,
// ENOSPC, and says "no space left on device"; the committed frames stay readable.
func TestQueueRollOnFullFilesystemNamesCause(t *testing.T) {
	dir := filepath.Join(hqTmpfs(t, 256<<10), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{'x'}, 1000)
	n := 0
	for ; n < 10_000; n++ {
		if err = w.Append(payload); err != nil {
			break
		}
		if err = w.Commit(); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatalf("%d frames of 1000 bytes fit in a 256 KiB filesystem", n)
	}
	if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("after %d frames: %v; want ErrFull wrapping ENOSPC", n, err)
	}
	full := err
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for f, err := range it.All() {
		if err != nil || !bytes.Equal(f, payload) {
			t.Fatalf("frame %d: %d bytes, %v", read, len(f), err)
		}
		read++
	}
	if read != n {
		t.Fatalf("read %d frames, committed %d", read, n)
	}
	t.Logf("full after %d frames: %v", n, full)
}
