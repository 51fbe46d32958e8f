package shmio

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Linux-only queue tests (they mount a tmpfs).

// TestQueueFullFilesystem: a roll on a full filesystem is a clear error; nothing committed is
// lost, and writing resumes once space is freed.
func TestQueueFullFilesystem(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=512k"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 256<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	q := qtOpen(t, QueueOptions{Dir: filepath.Join(mnt, "q"), Writable: true, SegmentSize: 64 << 10})
	w := qtWriter(t, q)
	next := 0
	var rollErr error
	for rollErr == nil {
		for k := 0; k < 10; k++ {
			if rollErr = w.Append(qtFrame(next, qtSize(next))); rollErr != nil {
				break
			}
			next++
		}
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if next > 100000 {
			t.Fatal("never ran out of space")
		}
	}
	if !errors.Is(rollErr, ErrFull) || !errors.Is(rollErr, syscall.ENOSPC) || !strings.Contains(rollErr.Error(), "cannot make segment") {
		t.Fatalf("roll on a full filesystem: %v, want ErrFull wrapping ENOSPC", rollErr)
	}
	t.Logf("full after %d frames in %d segments: %v", next, w.Segment(), rollErr)
	// Again: the same clear error, and everything committed is readable.
	if err := w.Append(qtFrame(next, qtSize(next))); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second try: %v", err)
	}
	it := qtIter(t, q, IteratorOptions{})
	if got, _ := qtReadAll(t, it, 0); got != next {
		t.Fatalf("read %d frames, committed %d", got, next)
	}
	if names := utDirNames(t, q.Dir()); strings.Contains(strings.Join(names, " "), ".tmp-") {
		t.Fatalf("failed roll left temporary files: %q", names)
	}
	// Free space: the writer continues where it was.
	os.Remove(ballast)
	first := next
	for seg := w.Segment(); w.Segment() < seg+3; next++ {
		if err := w.Append(qtFrame(next, qtSize(next))); err != nil {
			t.Fatalf("Append after freeing space: %v", err)
		}
		if next%10 == 0 {
			w.Commit()
		}
	}
	w.Commit()
	if got, _ := qtReadAll(t, it, first); got != next-first {
		t.Fatalf("read %d frames after the refill, want %d", got, next-first)
	}
	if _, err := q.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestNamedReaderSweepsStaleTemps: a reader killed while creating its file leaves
// readers/.NAME.reader.tmp-PID-RANDOM behind; the next named reader opened removes it when its
// process is gone, and keeps one of a live process.
func TestNamedReaderSweepsStaleTemps(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	qtNamed(t, q, "first", IteratorOptions{}).Close()
	rd := filepath.Join(q.Dir(), "readers")
	dead := ".x.reader.tmp-999999999-0123456789abcdef"
	live := ".y.reader.tmp-1-0123456789abcdef" // pid 1 is alive
	for _, n := range []string{dead, live} {
		if err := os.WriteFile(filepath.Join(rd, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	qtNamed(t, q, "second", IteratorOptions{}).Close()
	names := utDirNames(t, rd)
	if slices.Contains(names, dead) || !slices.Contains(names, live) {
		t.Fatalf("readers/ holds %q: want %s removed and %s kept", names, dead, live)
	}
}
