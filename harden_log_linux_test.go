//go:build linux

package shmio

// Linux-only tests of issue 11 (hardening), log side: real processes, O_TMPFILE, device nodes.

import (
	"context"
	"errors"
	"github.com/shmio/shmio/internal/testproc"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	xpRoles["createPause"] = xpCreatePauseChild
}

// xpCreatePauseChild creates the log at PATH (CAPACITY bytes) and pauses, forever, once the
// temporary file is full-size: the parent kills it there. NOTMPFILE=1 forces a named temporary.
func xpCreatePauseChild() error {
	noTmpfile = testproc.Param("NOTMPFILE") == "1"
	createTestHook = func() {
		testproc.Report(map[string]any{"made": true})
		select {}
	}
	_, err := Open(Options{Path: testproc.Param("PATH"), Capacity: testproc.ParamInt("CAPACITY", 1<<20), Writable: true})
	return err
}

// TestCreateKilledLeavesNoTempFile: a process killed with kill -9 in the middle of creating a log
// (temporary file full-size, not yet linked) leaves no full-size file behind once the next log is
// created in that directory: with O_TMPFILE none is ever named, without it the next create
// removes the dead process's temporary file.
func TestCreateKilledLeavesNoTempFile(t *testing.T) {
	const capacity = 8 << 20
	for _, named := range []bool{false, true} {
		dir := testproc.ShmDir(t)
		c := testproc.Start(t, "createPause", "PATH="+filepath.Join(dir, "victim"), "CAPACITY=8388608", "NOTMPFILE="+map[bool]string{true: "1"}[named])
		c.Line(10 * time.Second)
		before := utDirNames(t, dir)
		c.Kill9()
		if named && len(before) != 1 {
			t.Fatalf("named temporary: directory holds %q while the child pauses, want its temporary file", before)
		}
		if !named && len(before) != 0 {
			t.Fatalf("O_TMPFILE: directory holds %q while the child pauses, want nothing named", before)
		}
		l, err := Open(Options{Path: filepath.Join(dir, "next"), Capacity: 4096, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if names := utDirNames(t, dir); !slices.Equal(names, []string{"next"}) {
			t.Errorf("named=%v: after the next create the directory holds %q, want only \"next\"", named, names)
		}
		var total int64
		filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
			if fi != nil && fi.Mode().IsRegular() {
				total += fi.Size()
			}
			return nil
		})
		if total >= capacity {
			t.Errorf("named=%v: %d bytes left in the directory", named, total)
		}
	}
}

// TestStaleTempOfLiveProcessKept: a temporary file whose process is alive (this one, or another)
// is not removed, nor are files that merely look alike.
func TestStaleTempOfLiveProcessKept(t *testing.T) {
	dir := t.TempDir()
	keep := []string{
		".a.tmp-1-0123456789abcdef",                                 // pid 1 is alive
		".b.tmp-" + strconv.Itoa(os.Getpid()) + "-0123456789abcdef", // this process
		"c.tmp-999999999-0123456789abcdef",                          // no leading dot
		".d.tmp-999999999-xyz",                                      // not ours
		".e.tmp-recycle-999999999",                                  // the queue's
	}
	for _, n := range keep {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".f.tmp-999999999-0123456789abcdef"), 0o700); err != nil {
		t.Fatal(err)
	}
	dead := ".g.tmp-999999999-0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, dead), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l := utOpen(t, Options{Path: filepath.Join(dir, "log")})
	l.Close()
	names := utDirNames(t, dir)
	if slices.Contains(names, dead) {
		t.Errorf("%s of a dead process was not removed", dead)
	}
	for _, n := range append(keep, ".f.tmp-999999999-0123456789abcdef") {
		if !slices.Contains(names, n) {
			t.Errorf("%s was removed", n)
		}
	}
}

// TestWaitSeesSealMissedBeforeAnnouncing: a Seal that lands after a sleeping reader checked the
// sealed flag but before it announced itself (so Seal saw no sleeper and woke nobody) ends the
// Wait with ErrSealed at once, without a sleep.
func TestWaitSeesSealMissedBeforeAnnouncing(t *testing.T) {
	utNeedFutex(t)
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10)
	r := utReopen(t, path, false, false)
	it, err := r.NewIterator(IteratorOptions{StartCursor: r.Header().Size - goHeaderSize, Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	oldShort, oldLong := sleepSlice, longSlice
	sleepSlice, longSlice = time.Minute, time.Minute
	var sealErr error
	waitTestHook = func() {
		if sealErr == nil && !l.Sealed() {
			sealErr = w.Seal() // sees no sleeper yet: wakes nobody
		}
	}
	defer func() { sleepSlice, longSlice, waitTestHook = oldShort, oldLong, nil }()
	sleeps := waitSleeps.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = utRecv(t, "Wait", utAsyncWait(ctx, it), 20*time.Second)
	if sealErr != nil {
		t.Fatal(sealErr)
	}
	if !errors.Is(err, ErrSealed) {
		t.Fatalf("Wait after a seal it could not be woken for: %v, want ErrSealed", err)
	}
	if n := waitSleeps.Load() - sleeps; n != 0 {
		t.Fatalf("Wait slept %d times before it saw the seal, want 0", n)
	}
}

// TestWaitEndsWhenFileTruncated: a sleeping Wait on a log truncated below its mapping (the header
// page survives) ends with ErrMappingGone within a slice, with or without a writer that wakes it.
func TestWaitEndsWhenFileTruncated(t *testing.T) {
	for _, withWriter := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "log")
		l := utOpen(t, Options{Path: path, Capacity: 256 << 10})
		w := utWriter(t, l)
		utAppend(t, w, 0, 10, 20)
		if !withWriter {
			w.Close()
		}
		r := utReopen(t, path, false, false)
		it, err := r.NewIterator(IteratorOptions{StartCursor: r.Header().Size - goHeaderSize, Spin: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := utAsyncWait(ctx, it)
		testproc.WaitFor(t, 20*time.Second, "the reader to sleep", func() bool { return l.Header().Waiters == 1 })
		if err := os.Truncate(path, 4096); err != nil {
			t.Fatal(err)
		}
		err = utRecv(t, "Wait on a truncated file", done, 10*time.Second)
		cancel()
		if !errors.Is(err, ErrMappingGone) {
			t.Fatalf("writer=%v: Wait on a file truncated under it: %v, want ErrMappingGone", withWriter, err)
		}
	}
}

// TestWaitTruncationCheckRateLimited: the fstat behind the truncation check runs at most once per
// interval per iterator (a reader woken at every commit would otherwise pay it per sleep), yet the
// first check of an iterator, and the first after the interval, see a truncation at once.
func TestWaitTruncationCheckRateLimited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 256 << 10})
	utAppend(t, utWriter(t, l), 0, 10, 20)
	r := utReopen(t, path, false, false)
	it, err := r.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := it.truncatedEvery(time.Hour); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	if err := it.truncatedEvery(time.Hour); err != nil {
		t.Fatalf("checked again within the interval: %v, want no fstat (nil)", err)
	}
	if err := it.truncatedEvery(0); !errors.Is(err, ErrMappingGone) {
		t.Fatalf("after the interval: %v, want ErrMappingGone", err)
	}
	it2, err := r.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := it2.truncatedEvery(time.Hour); !errors.Is(err, ErrMappingGone) {
		t.Fatalf("a new iterator's first check: %v, want ErrMappingGone", err)
	}
}

// TestWaitSleepsLongWhileGoWriterHoldsLog: an idle Wait sleeps in long slices while a writer of
// this package (which wakes readers) holds the log, and in short ones (for Node writers, which
// take no lock and wake nobody) when none does or the recorded writer is dead.
func TestWaitSleepsLongWhileGoWriterHoldsLog(t *testing.T) {
	utNeedFutex(t)
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	r := utReopen(t, path, false, false)
	w := utWriter(t, l)
	var p writerProbe
	if !p.goWriter(r.mem) {
		t.Fatal("probe: a live writer of this process is not seen")
	}
	oldLong := longSlice
	longSlice = time.Hour // one sleep per Wait: the context's deadline ends it
	defer func() { longSlice = oldLong }()
	sleepsIn := func(d time.Duration) uint64 {
		it, err := r.NewIterator(IteratorOptions{Spin: -1})
		if err != nil {
			t.Fatal(err)
		}
		// Cancelled, not timed out: a deadline would cut the sleeps itself (see sliceUntil).
		ctx, cancel := context.WithCancel(context.Background())
		defer time.AfterFunc(d, cancel).Stop()
		n := waitSleeps.Load()
		if err := it.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("idle Wait: %v", err)
		}
		return waitSleeps.Load() - n
	}
	if n := sleepsIn(200 * time.Millisecond); n > 2 {
		t.Errorf("idle Wait with a live writer slept %d times in 200ms, want 1 (long slices)", n)
	}
	w.Close()
	if p.goWriter(r.mem) {
		t.Fatal("probe: a closed writer is seen")
	}
	if n := sleepsIn(200 * time.Millisecond); n < 3 {
		t.Errorf("idle Wait with no writer slept %d times in 200ms, want short slices", n)
	}
	// A writer killed without closing leaves its pid behind: dead, so short slices again.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	u32at(l.mem, offWriterPID).Store(uint32(cmd.Process.Pid))
	p = writerProbe{}
	if p.goWriter(r.mem) {
		t.Fatalf("probe: the dead pid %d counts as a writer", cmd.Process.Pid)
	}
	if n := sleepsIn(200 * time.Millisecond); n < 3 {
		t.Errorf("idle Wait with a dead writer's pid slept %d times in 200ms, want short slices", n)
	}
}

// TestReadAfterTruncationInsideLastPageNeverReturnsZeros: a file truncated in the middle of a
// committed frame inside the last mapped page reads as zeros past the cut; every read path
// returns only whole, intact frames and then ErrCorrupt, never a frame with silent zero bytes.
func TestReadAfterTruncationInsideLastPageNeverReturnsZeros(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 3 * 4096})
	w := utWriter(t, l)
	var sizes []int
	for range 190 { // 190 frames of 54 bytes: 10452 bytes, in the last page
		sizes = append(sizes, 50)
	}
	utAppend(t, w, 0, sizes...)
	w.Close()
	r := utReopen(t, path, false, false)
	cut := int64(192 + 160*54 + 20) // inside frame 160's payload, in the last page
	if err := os.Truncate(path, cut); err != nil {
		t.Fatal(err)
	}
	check := func(how string, frames [][]byte, err error) {
		t.Helper()
		for i, f := range frames {
			if want := utPayload(i, 50); string(f) != string(want) {
				t.Fatalf("%s: frame %d differs from what was written (zeros from the truncation?)", how, i)
			}
		}
		if len(frames) != 160 || !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMappingGone) {
			t.Fatalf("%s: %d frames then %v; want the 160 intact frames then ErrCorrupt", how, len(frames), err)
		}
	}
	it := utIter(t, r)
	var frames [][]byte
	var err error
	for {
		var f []byte
		if f, err = it.Next(); err != nil || f == nil {
			break
		}
		frames = append(frames, f)
	}
	check("Next", frames, err)

	it = utIter(t, r)
	frames = frames[:0]
	for {
		var b [][]byte
		b, err = it.NextBatch(nil, BatchOptions{MaxFrames: 7})
		frames = append(frames, b...)
		if err != nil || len(b) == 0 {
			break
		}
	}
	check("NextBatch", frames, err)

	it = utIter(t, r)
	it.pos = 192 + 161*54 // just after the cut frame, as a reader that got there before the cut
	if _, err := it.Prev(); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMappingGone) {
		t.Fatalf("Prev onto the cut frame: %v, want ErrCorrupt", err)
	}
}

// TestRemoveRefusesLockedLogAndNonLogs: Remove deletes a log no writer holds, and refuses (and
// leaves alone) a log whose writer lives in another process (ErrLocked), a file that is not a
// log, a directory, a symbolic link (to a log: neither removed), a named pipe and a device node
// (ErrBadHeader).
func TestRemoveRefusesLockedLogAndNonLogs(t *testing.T) {
	dir := testproc.ShmDir(t)
	locked := xpCreate(t, dir, "locked", 64<<10)
	c := testproc.Start(t, "locker", "PATH="+locked)
	if got := c.Line(10 * time.Second); got != "locked" {
		t.Fatalf("locker child said %q", got)
	}
	err := Remove(locked)
	utIs(t, err, ErrLocked, "Remove of a log a writer holds")
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(c.Pid())) {
		t.Errorf("Remove of a held log: %q does not name the writer's pid", err)
	}
	if _, err := os.Stat(locked); err != nil {
		t.Fatalf("the held log is gone: %v", err)
	}
	c.Stdin().Close()
	c.Finish(10*time.Second, nil)
	if err := Remove(locked); err != nil {
		t.Fatalf("Remove once the writer closed: %v", err)
	}
	if _, err := os.Lstat(locked); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Remove left the log: %v", err)
	}

	notLog := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notLog, []byte(strings.Repeat("not a log at all\n", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	target := xpCreate(t, dir, "target", 64<<10)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := []string{notLog, small, sub, link, fifo}
	if os.Geteuid() == 0 {
		dev := filepath.Join(dir, "null")
		if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
			refused = append(refused, dev)
		}
	}
	for _, p := range refused {
		before, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		utIs(t, Remove(p), ErrBadHeader, "Remove("+filepath.Base(p)+")")
		after, err := os.Lstat(p)
		if err != nil || !os.SameFile(before, after) || after.Mode() != before.Mode() {
			t.Fatalf("Remove(%s) changed it: %v", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("the symlink's target is gone: %v", err)
	}
	if err := Remove(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Remove of a missing file: %v, want fs.ErrNotExist", err)
	}
	// A Node-made log is a log too.
	node := utGoldenCopy(t)
	if err := Remove(node); err != nil {
		t.Fatalf("Remove of the Node-made golden log: %v", err)
	}
}
