package shmio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"testing"
)

// qtVerifyQueue writes n frames (qtFrame, qtSize) into a fresh 4 KiB-segment queue, closes the
// writer and returns the queue and every frame's cursor.
func qtVerifyQueue(t *testing.T, n int) (*Queue, []int64) {
	t.Helper()
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	qtAppend(t, w, 0, n)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	it := qtIter(t, q, IteratorOptions{})
	got, cursors := qtReadAll(t, it, 0)
	if got != n {
		t.Fatalf("read %d frames, want %d", got, n)
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return q, cursors
}

// qtDataOffset returns a segment file's data offset.
func qtDataOffset(t *testing.T, path string) int64 {
	t.Helper()
	l, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Header().DataOffset
}

// qtPoke writes b at file offset off of path.
func qtPoke(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestQueueVerifyClean(t *testing.T) {
	const n = 500
	q, cursors := qtVerifyQueue(t, n)
	res, err := q.Verify()
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var bytes int64
	for i := range n {
		bytes += int64(qtSize(i)) + 4
	}
	last, _ := SplitQueueCursor(cursors[n-1])
	if res.Frames != n || res.Bytes != bytes || res.Head != last || res.Segments < int(last) || len(res.Problems) != 0 {
		t.Fatalf("Verify: %+v; want %d frames, %d bytes, head %d, at least %d segments, no problems", res, n, bytes, last, last)
	}
}

// TestQueueVerifyDamagedFrame: Verify locates the first damaged frame of a segment itself: the
// segment, the frame's queue cursor and file offset, what is wrong, and the iterator's *Error.
func TestQueueVerifyDamagedFrame(t *testing.T) {
	const n = 500
	for _, tc := range []struct {
		name string
		// damage returns what to write at the frame's head (delta 0) or tail (delta len-2).
		damage func(flen int) (delta int, b []byte, what string)
	}{
		{"asymmetric", func(flen int) (int, []byte, string) {
			return flen - 2, []byte{byte(flen + 1), byte((flen + 1) >> 8)},
				fmt.Sprintf("head length %d but tail length %d (asymmetric frame)", flen, flen+1)
		}},
		{"too small", func(int) (int, []byte, string) {
			return 0, []byte{3, 0}, "length 3 is smaller than the smallest frame (5 bytes)"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, cursors := qtVerifyQueue(t, n)
			// The 10th frame of segment 3, a sealed middle one.
			var bad, after int // the damaged frame, and the first frame of segment 4
			for i, c := range cursors {
				seg, _ := SplitQueueCursor(c)
				if seg < 3 {
					bad = i + 10
				}
				if seg == 4 && after == 0 {
					after = i
				}
			}
			if after == 0 || bad >= after {
				t.Fatalf("frames do not spread over 4 segments: %x", cursors)
			}
			seg, off := SplitQueueCursor(cursors[bad])
			path := q.segPath(seg)
			fileOff := qtDataOffset(t, path) + off
			delta, b, what := tc.damage(qtSize(bad) + 4)
			qtPoke(t, path, fileOff+int64(delta), b)

			res, err := q.Verify()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify: %v, want ErrCorrupt", err)
			}
			if len(res.Problems) != 1 {
				t.Fatalf("problems %q, want one", res.Problems)
			}
			p := res.Problems[0]
			if p.Segment != seg || p.Cursor != cursors[bad] || p.Offset != fileOff || p.What != what {
				t.Fatalf("problem %+v; want segment %d, cursor %d, offset %d, %q", p, seg, cursors[bad], fileOff, what)
			}
			var e *Error
			if !errors.As(p.Err, &e) || !errors.Is(p.Err, ErrCorrupt) || e.Path != path || e.Offset != fileOff {
				t.Fatalf("problem's error %#v: want an *Error wrapping ErrCorrupt at %s offset %d", p.Err, path, fileOff)
			}
			want := fmt.Sprintf("segment %d: frame at queue cursor %d (offset %d, file offset %d): %s", seg, cursors[bad], off, fileOff, what)
			if p.String() != want {
				t.Fatalf("String() = %q, want %q", p.String(), want)
			}
			// The walk of segment 3 stops at the damage; the other segments count whole.
			var frames, bytes int64
			for i := range n {
				if i < bad || i >= after {
					frames++
					bytes += int64(qtSize(i)) + 4
				}
			}
			if res.Frames != frames || res.Bytes != bytes {
				t.Fatalf("counted %d frames, %d bytes; want %d, %d", res.Frames, res.Bytes, frames, bytes)
			}
		})
	}
}

// TestQueueVerifyChain: problems with the chain are about the queue, not a frame.
func TestQueueVerifyChain(t *testing.T) {
	q, _ := qtVerifyQueue(t, 500)
	if err := os.Remove(q.segPath(3)); err != nil {
		t.Fatal(err)
	}
	// Segment 5 names another predecessor than segment 4.
	h4, err := q.segHeader(4)
	if err != nil {
		t.Fatal(err)
	}
	qtPoke(t, q.segPath(5), offSegPrevID, []byte{0x34, 0x12, 0, 0, 0, 0, 0, 0})
	res, err := q.Verify()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v, want ErrCorrupt", err)
	}
	want := []Problem{
		{Segment: -1, Cursor: -1, Offset: -1, What: "segments 3 to 3 are missing"},
		{Segment: 5, Cursor: -1, Offset: -1, What: fmt.Sprintf("previous segment's ID 0x1234, segment 4 has %#x (replaced or out of order)", h4.id)},
	}
	if len(res.Problems) != len(want) {
		t.Fatalf("problems %q, want %d", res.Problems, len(want))
	}
	for i, p := range res.Problems {
		w := want[i]
		if p.Segment != w.Segment || p.Cursor != w.Cursor || p.Offset != w.Offset || p.What != w.What || !errors.Is(p.Err, ErrCorrupt) {
			t.Errorf("problem %d: %+v, want %+v wrapping ErrCorrupt", i, p, w)
		}
	}
	if got := res.Problems[0].String(); got != "segments 3 to 3 are missing" {
		t.Errorf("String() = %q", got)
	}
	if got := res.Problems[1].String(); got != "segment 5: "+want[1].What {
		t.Errorf("String() = %q", got)
	}
}

// TestQueueVerifyUnreadable: a segment Verify cannot read is a problem, but not proof of damage.
func TestQueueVerifyUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	q, _ := qtVerifyQueue(t, 500)
	if err := os.Chmod(q.segPath(2), 0); err != nil {
		t.Fatal(err)
	}
	res, err := q.Verify()
	if errors.Is(err, ErrCorrupt) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Verify: %v, want the permission error, not ErrCorrupt", err)
	}
	if len(res.Problems) != 1 || res.Problems[0].Segment != 2 || !errors.Is(res.Problems[0].Err, fs.ErrPermission) {
		t.Fatalf("problems %+v", res.Problems)
	}
}

// TestQueueVerifyHoldsSegmentLock: Verify checks each segment under the shared lock queue
// readers hold, which retention's recycling (an exclusive lock) respects, and lets it go after.
func TestQueueVerifyHoldsSegmentLock(t *testing.T) {
	if !segRecycling {
		t.Skip("segments are not recycled on this platform")
	}
	q, cursors := qtVerifyQueue(t, 500)
	tryRecycle := func(n int64) (bool, error) {
		f, err := os.OpenFile(q.segPath(n), os.O_RDWR, 0)
		if err != nil {
			return false, err
		}
		defer f.Close()
		if !segTryWriteLock(f) {
			return false, nil
		}
		segUnlock(f)
		return true, nil
	}
	var held []int64
	var lockErrs []error
	verifyHeld = func(n int64) {
		held = append(held, n)
		if ok, err := tryRecycle(n); ok || err != nil {
			lockErrs = append(lockErrs, fmt.Errorf("segment %d: exclusive lock taken (%v) while Verify checks it", n, err))
		}
	}
	t.Cleanup(func() { verifyHeld = nil })
	if _, err := q.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	verifyHeld = nil
	if err := errors.Join(lockErrs...); err != nil {
		t.Fatal(err)
	}
	last, _ := SplitQueueCursor(cursors[len(cursors)-1])
	if len(held) < int(last) {
		t.Fatalf("Verify held segments %v, want at least 1 to %d", held, last)
	}
	for _, n := range held {
		if ok, err := tryRecycle(n); !ok || err != nil {
			t.Fatalf("segment %d still locked after Verify (%v)", n, err)
		}
	}
}

// TestQueueVerifyLive: Verify on a queue being written, rolled and trimmed by retention (which
// recycles segment files) reports no problem.
func TestQueueVerifyLive(t *testing.T) {
	q := qtOpen(t, QueueOptions{Writable: true, Retention: RetentionPolicy{MaxSegments: 3}})
	ro := qtOpen(t, QueueOptions{Dir: q.Dir()})
	w := qtWriter(t, q)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var verifyErr error
	var runs int
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if res, err := ro.Verify(); err != nil {
				verifyErr = fmt.Errorf("Verify run %d: %w (%+v)", runs, err, res)
				return
			}
			runs++
		}
	})
	for i := 0; i < 20000; i += 50 {
		qtAppend(t, w, i, 50)
	}
	close(done)
	wg.Wait()
	if verifyErr != nil {
		t.Fatal(verifyErr)
	}
	if runs == 0 {
		t.Fatal("Verify never ran while the queue was written")
	}
	if _, err := ro.Verify(); err != nil {
		t.Fatalf("Verify after writing: %v", err)
	}
	t.Logf("%d Verify runs during %d rolls", runs, w.Segment())
}
