package shmio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

// Queue unit tests; helpers carry a "qt" prefix.

func qtOpen(t testing.TB, opts QueueOptions) *Queue {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "q")
		opts.Writable = true
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = 4096
	}
	q, err := OpenQueue(opts)
	if err != nil {
		t.Fatalf("OpenQueue(%+v): %v", opts, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func qtWriter(t testing.TB, q *Queue) *QueueWriter {
	t.Helper()
	w, err := q.Writer()
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	return w
}

func qtNamed(t testing.TB, q *Queue, name string, opts IteratorOptions) *QueueIterator {
	t.Helper()
	it, err := q.NamedIterator(name, opts)
	if err != nil {
		t.Fatalf("NamedIterator(%q, %+v): %v", name, opts, err)
	}
	return it
}

func qtIter(t testing.TB, q *Queue, opts IteratorOptions) *QueueIterator {
	t.Helper()
	it, err := q.NewIterator(opts)
	if err != nil {
		t.Fatalf("NewIterator(%+v): %v", opts, err)
	}
	return it
}

// qtFrame is frame i of the queue tests: [i u64][filler], n bytes (n >= 8).
func qtFrame(i, n int) []byte {
	p := utPayload(i, n)
	le.PutUint64(p, uint64(i))
	return p
}

func qtSize(i int) int { return 8 + (i*37)%200 }

// qtAppend appends frames first..first+count-1 with sizes qtSize and commits.
func qtAppend(t testing.TB, w FrameWriter, first, count int) {
	t.Helper()
	for i := first; i < first+count; i++ {
		if err := w.Append(qtFrame(i, qtSize(i))); err != nil {
			t.Fatalf("Append frame %d: %v", i, err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// qtCheck verifies that f is frame i.
func qtCheck(t testing.TB, f []byte, i int) {
	t.Helper()
	if !bytes.Equal(f, qtFrame(i, qtSize(i))) {
		got := -1
		if len(f) >= 8 {
			got = int(le.Uint64(f))
		}
		t.Fatalf("frame %d: got %d bytes (seq %d), want %d bytes", i, len(f), got, qtSize(i))
	}
}

// qtReadAll reads frames from it with Next, checking they are first, first+1, ..., and returns
// the count and the cursors before each frame.
func qtReadAll(t testing.TB, it FrameIterator, first int) (int, []int64) {
	t.Helper()
	var cursors []int64
	for i := first; ; i++ {
		c := it.Cursor()
		f, err := it.Next()
		if err != nil {
			t.Fatalf("Next at frame %d: %v", i, err)
		}
		if f == nil {
			return i - first, cursors
		}
		if len(cursors) > 0 && c <= cursors[len(cursors)-1] {
			t.Fatalf("cursor %#x before frame %d does not increase (previous %#x)", c, i, cursors[len(cursors)-1])
		}
		cursors = append(cursors, c)
		qtCheck(t, f, i)
	}
}

func TestQueueCursorPacking(t *testing.T) {
	c := QueueCursor(7, 1234)
	if c != 7<<32|1234 {
		t.Fatalf("QueueCursor(7, 1234) = %#x", c)
	}
	if s, o := SplitQueueCursor(c); s != 7 || o != 1234 {
		t.Fatalf("SplitQueueCursor = %d, %d", s, o)
	}
	if QueueCursor(7, MaxSegmentSize-1) >= QueueCursor(8, 0) {
		t.Fatal("cursors of consecutive segments do not increase")
	}
	for _, name := range []string{"0000000001.seg", "0000000042.seg", "2147483647.seg"} {
		if _, ok := parseSegName(name); !ok {
			t.Errorf("parseSegName(%q) refused", name)
		}
	}
	for _, name := range []string{"1.seg", "0000000000.seg", "000000001a.seg", ".0000000001.seg.tmp-1-2", "0000000001.seg.x", "9999999999.seg"} {
		if _, ok := parseSegName(name); ok {
			t.Errorf("parseSegName(%q) accepted", name)
		}
	}
	if segName(3) != "0000000003.seg" {
		t.Fatalf("segName(3) = %q", segName(3))
	}
}

func TestQueueRollAndReadBack(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	const n = 3000
	for i := 0; i < n; i += 50 {
		qtAppend(t, w, i, 50)
	}
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 40 {
		t.Fatalf("%d segments for %d frames in 4 KiB segments, want dozens", len(segs), n)
	}
	head := w.Segment()
	for i, s := range segs[:head-1] {
		if !s.Sealed || s.SealedAt.IsZero() || s.Number != int64(i+1) {
			t.Fatalf("segment %+v: want sealed, numbered %d", s, i+1)
		}
		if i > 0 && s.PrevID != segs[i-1].ID {
			t.Fatalf("segment %d: prev ID %#x, want %#x", s.Number, s.PrevID, segs[i-1].ID)
		}
	}
	for _, s := range segs[head:] {
		if s.Sealed || s.Committed != 0 {
			t.Fatalf("the prepared segment %+v should be empty and unsealed", s)
		}
	}
	if st := w.Stats(); st.Rolls != head-1 {
		t.Fatalf("stats %+v, want %d rolls", st, head-1)
	}

	it := qtIter(t, q, IteratorOptions{})
	got, cursors := qtReadAll(t, it, 0)
	if got != n {
		t.Fatalf("read %d frames, want %d", got, n)
	}
	// A frame never spans two segments, and every cursor is a valid seek target.
	for _, i := range []int{0, 1, 77, 1500, n - 1} {
		if _, err := it.Seek(cursors[i], io.SeekStart); err != nil {
			t.Fatalf("Seek to cursor %#x of frame %d: %v", cursors[i], i, err)
		}
		f, err := it.Next()
		if err != nil || f == nil {
			t.Fatalf("Next after seek to frame %d: %v", i, err)
		}
		qtCheck(t, f, i)
	}
	end := it.End()
	if seg, _ := SplitQueueCursor(end); seg != w.Segment() {
		t.Fatalf("committed end %#x is not in the head segment %d", end, w.Segment())
	}
	res, err := q.Verify()
	if err != nil || res.Frames != n || res.Head != w.Segment() {
		t.Fatalf("Verify: %+v, %v; want %d frames, head %d", res, err, n, w.Segment())
	}
}

func TestQueuePrevAndSeekAcrossSegments(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	const n = 600
	qtAppend(t, w, 0, n)
	it := qtIter(t, q, IteratorOptions{})
	_, cursors := qtReadAll(t, it, 0)
	if seg, _ := SplitQueueCursor(cursors[n-1]); seg < 5 {
		t.Fatalf("%d frames only reach segment %d", n, seg)
	}
	// Prev walks back over every roll to the first frame.
	for i := n - 1; i >= 0; i-- {
		f, err := it.Prev()
		if err != nil || f == nil {
			t.Fatalf("Prev to frame %d: %v, %v", i, f, err)
		}
		qtCheck(t, f, i)
		if it.Cursor() != cursors[i] {
			t.Fatalf("after Prev to frame %d cursor %#x, want %#x", i, it.Cursor(), cursors[i])
		}
	}
	if f, err := it.Prev(); f != nil || err != nil {
		t.Fatalf("Prev at the start: %v, %v", f, err)
	}
	// SeekEnd, then back one frame with Prev across nothing.
	end, err := it.Seek(0, io.SeekEnd)
	if err != nil || end != it.End() {
		t.Fatalf("Seek end: %#x, %v (committed %#x)", end, err, it.End())
	}
	if f, _ := it.Prev(); f == nil {
		t.Fatal("Prev from the end gave nothing")
	} else {
		qtCheck(t, f, n-1)
	}
	// Seek 0: the first frame.
	if c, err := it.Seek(0, io.SeekStart); err != nil || c != QueueCursor(1, 0) {
		t.Fatalf("Seek(0) = %#x, %v", c, err)
	}
	// Bad targets: mid-frame, past the end, into the prepared segment, a missing segment.
	head := w.Segment()
	for _, c := range []int64{cursors[10] + 1, QueueCursor(head, 1<<20), QueueCursor(head+1, 0), QueueCursor(head+5, 0), -1} {
		before := it.Cursor()
		if _, err := it.Seek(c, io.SeekStart); !errors.Is(err, ErrCursor) {
			t.Fatalf("Seek(%#x): %v, want ErrCursor", c, err)
		}
		if it.Cursor() != before {
			t.Fatalf("failed Seek moved the cursor from %#x to %#x", before, it.Cursor())
		}
	}
	// The end of a sealed segment is the next one's start.
	seg2end := QueueCursor(2, 0) - 1 // not valid itself...
	_ = seg2end
	if _, err := it.Seek(QueueCursor(3, 0), io.SeekStart); err != nil {
		t.Fatalf("Seek to the start of segment 3: %v", err)
	}
	if f, err := it.Prev(); err != nil || f == nil {
		t.Fatalf("Prev from the start of segment 3: %v", err)
	} else if seg, _ := SplitQueueCursor(it.Cursor()); seg != 2 {
		t.Fatalf("Prev from segment 3 landed in segment %d", seg)
	}
}

func TestQueueBatchAcrossRollIsInvisibleUntilCommit(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	it := qtIter(t, q, IteratorOptions{})
	// 100 frames of ~100 bytes: more than two segments, allocated without a commit.
	for i := 0; i < 100; i++ {
		if err := w.Append(qtFrame(i, qtSize(i))); err != nil {
			t.Fatal(err)
		}
	}
	if w.Segment() < 3 {
		t.Fatalf("writer in segment %d, want >= 3", w.Segment())
	}
	if f, err := it.Next(); f != nil || err != nil {
		t.Fatalf("reader saw %d bytes (%v) before Commit", len(f), err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := qtReadAll(t, it, 0); got != 100 {
		t.Fatalf("read %d of 100 frames after Commit", got)
	}
	// Allocated then closed: discarded, and the next writer continues after frame 99.
	for i := 100; i < 200; i++ {
		w.Append(qtFrame(i, qtSize(i)))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = qtWriter(t, q)
	qtAppend(t, w, 100, 10)
	if got, _ := qtReadAll(t, it, 100); got != 10 {
		t.Fatalf("read %d of 10 frames from the second writer", got)
	}
	if _, err := q.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestQueueAllocateErrors(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	if _, err := w.Allocate(0); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("Allocate(0): %v", err)
	}
	if _, err := w.Allocate(4096); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Allocate(4096) in 4 KiB segments: %v", err)
	}
	if got := q.MaxPayload(); got != 4096-goHeaderSize-4 {
		t.Fatalf("MaxPayload = %d", got)
	}
	if _, err := w.Allocate(q.MaxPayload()); err != nil {
		t.Fatalf("Allocate(MaxPayload): %v", err)
	}
	if _, err := w.Allocate(q.MaxPayload()); err != nil {
		t.Fatalf("second Allocate(MaxPayload) (a roll): %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Writer(); !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v", err)
	}
	q2 := qtOpen(t, QueueOptions{Dir: q.Dir(), Writable: true})
	if _, err := q2.Writer(); !errors.Is(err, ErrLocked) {
		t.Fatalf("writer of a second handle: %v", err)
	}
	ro := qtOpen(t, QueueOptions{Dir: q.Dir()})
	if _, err := ro.Writer(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("writer of a read-only queue: %v", err)
	}
	if _, err := OpenQueue(QueueOptions{Dir: filepath.Join(t.TempDir(), "none")}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of a missing queue: %v", err)
	}
	w.Close()
	if _, err := w.Allocate(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Allocate after Close: %v", err)
	}
}

// TestQueueWaitAcrossRoll: a reader asleep at the end of a segment wakes when the writer rolls
// and commits in the next one. The sleep slice is raised to a minute so that only a wake-up can
// end the sleep in time.
func TestQueueWaitAcrossRoll(t *testing.T) {
	old := sleepSlice
	sleepSlice = time.Minute
	defer func() { sleepSlice = old }()

	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	it := qtIter(t, q, IteratorOptions{Spin: -1})
	next := 0
	for round := 0; round < 5; round++ {
		// Fill the current segment exactly, so the next frame rolls.
		seg := w.Segment()
		for {
			if left := w.sw.capacity - w.sw.end; left < 8+4 {
				break
			} else if left < 220 {
				p, err := w.Allocate(left - 4)
				if err != nil {
					t.Fatal(err)
				}
				copy(p, qtFrame(next, left-4))
			} else {
				qtAppend(t, w, next, 1)
				if w.Segment() != seg {
					t.Fatal("rolled while filling")
				}
				next++
				continue
			}
			next++
		}
		w.Commit()
		for {
			f, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if f == nil {
				break
			}
		}
		l := it.log
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done <- it.Wait(ctx)
		}()
		// Wait until the reader sleeps on the full segment.
		testproc.WaitFor(t, 10*time.Second, "the reader to sleep", func() bool { return l.waiters.Load() != 0 })
		start := time.Now()
		qtAppend(t, w, next, 1)
		if w.Segment() != seg+1 {
			t.Fatalf("the frame did not roll: segment %d", w.Segment())
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("reader asleep at the end of a sealed segment did not wake")
		}
		t.Logf("round %d: woke %v after the roll", round, time.Since(start))
		f, err := it.Next()
		if err != nil || f == nil {
			t.Fatalf("Next after Wait: %v, %v", f, err)
		}
		if seg, _ := SplitQueueCursor(it.Cursor()); seg != w.Segment() {
			t.Fatalf("reader in segment %d, writer in %d", seg, w.Segment())
		}
		qtCheck(t, f, next)
		next++
	}
	// Wait ends with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := it.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with nothing to come: %v", err)
	}
}

func TestQueueFollowAcrossRolls(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	it := qtIter(t, q, IteratorOptions{})
	const n = 2000
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		i := 0
		for f, err := range it.Follow(ctx) {
			if err != nil {
				done <- err
				return
			}
			if !bytes.Equal(f, qtFrame(i, qtSize(i))) {
				done <- fmt.Errorf("frame %d wrong", i)
				return
			}
			if i++; i == n {
				done <- nil
				return
			}
		}
	}()
	for i := 0; i < n; i += 10 {
		qtAppend(t, w, i, 10)
		if i%200 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestQueueNamedReader(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	qtAppend(t, w, 0, 500)
	for _, bad := range []string{".x", "a/b", "a b", strings.Repeat("x", 129)} {
		if _, err := q.NamedIterator(bad, IteratorOptions{}); err == nil {
			t.Fatalf("reader name %q accepted", bad)
		}
	}
	it := qtNamed(t, q, "billing", IteratorOptions{})
	if _, err := q.NamedIterator("billing", IteratorOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second iterator with the same name: %v", err)
	}
	for i := 0; i < 300; i++ {
		f, err := it.Next()
		if err != nil || f == nil {
			t.Fatal(err)
		}
		qtCheck(t, f, i)
	}
	// The stored cursor is the cursor at the last call: frame 299 is not acknowledged yet.
	rs, err := q.Readers()
	if err != nil || len(rs) != 1 {
		t.Fatalf("Readers: %+v, %v", rs, err)
	}
	if r := rs[0]; r.Name != "billing" || !r.Active || r.PID != os.Getpid() || r.LagFrames != 201 || r.Err != nil {
		t.Fatalf("reader info %+v, want active billing with 201 frames of lag", r)
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	rs, _ = q.Readers()
	var wantBytes int64
	for i := 300; i < 500; i++ {
		wantBytes += int64(qtSize(i)) + 4
	}
	if r := rs[0]; r.Active || r.LagFrames != 200 || r.LagBytes != wantBytes || r.Lag <= 0 {
		t.Fatalf("after Close: %+v, want inactive, 200 frames and %d bytes behind", r, wantBytes)
	}
	// Resume in a "new process": another Queue handle.
	q2 := qtOpen(t, QueueOptions{Dir: q.Dir()})
	it2 := qtNamed(t, q2, "billing", IteratorOptions{StartCursor: 12345})
	if got, _ := qtReadAll(t, it2, 300); got != 200 {
		t.Fatalf("resumed reader read %d frames, want 200", got)
	}
	rs, _ = q2.Readers()
	if r := rs[0]; r.LagFrames != 0 || r.Lag != 0 || r.CaughtUp.IsZero() {
		t.Fatalf("caught-up reader: %+v", r)
	}
	if err := q2.RemoveReader("billing"); !errors.Is(err, ErrLocked) {
		t.Fatalf("RemoveReader of an active reader: %v", err)
	}
	it2.Close()
	if err := q2.RemoveReader("billing"); err != nil {
		t.Fatal(err)
	}
	if rs, _ := q2.Readers(); len(rs) != 0 {
		t.Fatalf("readers after removal: %+v", rs)
	}
}

// TestQueueRetentionSlowReader: soft limits keep what a slow named reader needs; a hard limit
// removes it and the reader gets ErrCursor naming the first available cursor.
func TestQueueRetentionSlowReader(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := qtOpen(t, QueueOptions{Dir: dir, Writable: true, Retention: RetentionPolicy{MaxSegments: 3}})
	w := qtWriter(t, q)
	slow := qtNamed(t, q, "slow", IteratorOptions{})
	fast := qtIter(t, q, IteratorOptions{})
	qtAppend(t, w, 0, 10)
	for i := 0; i < 10; i++ {
		if f, _ := slow.Next(); f == nil {
			t.Fatal("slow reader got nothing")
		}
	}
	next := 10
	for w.Segment() < 20 {
		qtAppend(t, w, next, 10)
		next += 10
	}
	qtReadAll(t, fast, 0)
	removed, err := q.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	segs, _ := q.Segments()
	if segs[0].Number != 1 || len(removed) != 0 {
		t.Fatalf("segments from %d (removed %v): the slow reader's segment 1 must stay", segs[0].Number, removed)
	}
	// The slow reader moves to segment 12: segments before it may go, down to the limit.
	for {
		if seg, _ := SplitQueueCursor(slow.Cursor()); seg >= 12 {
			break
		}
		if f, err := slow.Next(); f == nil || err != nil {
			t.Fatal("slow reader ran out", err)
		}
	}
	slow.Next() // store the cursor
	if _, err := q.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	segs, _ = q.Segments()
	if segs[0].Number != 12 {
		t.Fatalf("first segment %d, want 12 (the slow reader's)", segs[0].Number)
	}
	// With no named reader behind, the soft limit applies: 3 segments up to the head.
	slow.Close()
	q.RemoveReader("slow")
	q.ApplyRetention()
	segs, _ = q.Segments()
	if segs[0].Number != w.Segment()-2 {
		t.Fatalf("first segment %d with head %d and max 3 segments", segs[0].Number, w.Segment())
	}
	// The background pass after each roll does the same without being asked.
	slow = qtNamed(t, q, "slow", IteratorOptions{})
	for w.Segment() < 40 {
		qtAppend(t, w, next, 10)
		next += 10
	}
	first := segs[0].Number
	testproc.WaitFor(t, 20*time.Second, "the slow reader's segment kept", func() bool { s, _ := q.Segments(); return len(s) > 0 && s[0].Number == first })
	w.Close()
	q.Close()

	// Hard limit: the reader's segment goes, and it gets a clear error.
	q = qtOpen(t, QueueOptions{Dir: dir, Writable: true, Retention: RetentionPolicy{MaxSegments: 3, HardMaxSegments: 8}})
	w = qtWriter(t, q)
	slow = qtNamed(t, q, "slow2", IteratorOptions{})
	if f, _ := slow.Next(); f == nil {
		t.Fatal("nothing to read")
	}
	slowSeg := slow.Segment()
	for w.Segment() < slowSeg+15 {
		qtAppend(t, w, next, 10)
		next += 10
	}
	removed, err = q.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	segs, _ = q.Segments()
	if w.Segment()-segs[0].Number+1 > 8 || segs[0].Number <= slowSeg+1 {
		t.Fatalf("hard limit 8: segments %d..%d (removed %v)", segs[0].Number, segs[len(segs)-1].Number, removed)
	}
	var err2 error
	for range 10000 {
		var f []byte
		if f, err2 = slow.Next(); err2 != nil || f == nil {
			break
		}
	}
	want := fmt.Sprintf("the first available cursor is %d", QueueCursor(segs[0].Number, 0))
	if !errors.Is(err2, ErrCursor) || !strings.Contains(err2.Error(), want) {
		t.Fatalf("reader past a removed segment: %v, want ErrCursor saying %q", err2, want)
	}
	slow.Close()
	if _, err := q.NamedIterator("slow2", IteratorOptions{}); !errors.Is(err, ErrCursor) || !strings.Contains(err.Error(), want) {
		t.Fatalf("reopening the reader: %v, want ErrCursor saying %q", err, want)
	}
	if _, err := q.NewIterator(IteratorOptions{StartCursor: QueueCursor(1, 0)}); !errors.Is(err, ErrCursor) {
		t.Fatalf("cursor in segment 1: %v", err)
	}
	if rs, _ := q.Readers(); len(rs) != 2 || !errors.Is(rs[1].Err, ErrCursor) {
		t.Fatalf("Readers: %+v, want slow2 with ErrCursor", rs)
	}
}

func TestQueueRetentionByAgeAndBytes(t *testing.T) {
	q := qtOpen(t, QueueOptions{Writable: true, Retention: RetentionPolicy{MaxBytes: 10 * 4096}})
	w := qtWriter(t, q)
	next := 0
	for w.Segment() < 30 {
		qtAppend(t, w, next, 10)
		next += 10
	}
	// The background pass runs after each roll (and its preparation of the next segment).
	testproc.WaitFor(t, 20*time.Second, "at most 40 KiB of 4 KiB segments", func() bool { s, _ := q.Segments(); return len(s) <= 10 && len(s) >= 9 })
	w.Close()
	q.Close()
	q = qtOpen(t, QueueOptions{Dir: q.Dir(), Writable: true, Retention: RetentionPolicy{MaxAge: 50 * time.Millisecond}})
	w = qtWriter(t, q)
	head := w.Segment()
	// The background pass runs on a timer too: everything sealed goes once it is 50 ms old.
	testproc.WaitFor(t, 20*time.Second, "segments older than 50ms removed", func() bool { s, _ := q.Segments(); return len(s) > 0 && s[0].Number == head })
	it := qtIter(t, q, IteratorOptions{})
	if f, err := it.Next(); f == nil || err != nil || it.Segment() != head {
		t.Fatalf("Next in the only segment left: %v, %v", f, err)
	}
}

// TestQueueWriterRecovery: what a dead writer can leave is repaired by the next one.
func TestQueueWriterRecovery(t *testing.T) {
	q := qtOpen(t, QueueOptions{Writable: true})
	w := qtWriter(t, q)
	qtAppend(t, w, 0, 100)
	head := w.Segment()
	w.Close()
	// A half-made segment (killed inside create) and a prepared one.
	tmp := filepath.Join(q.Dir(), "."+segName(head+2)+".tmp-99999-abcd")
	if err := os.WriteFile(tmp, make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(q.segPath(head + 1)); err != nil {
		t.Fatalf("the prepared segment should be there: %v", err)
	}
	w = qtWriter(t, q)
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	if w.Segment() != head {
		t.Fatalf("writer resumed in segment %d, want %d", w.Segment(), head)
	}
	qtAppend(t, w, 100, 100)
	it := qtIter(t, q, IteratorOptions{})
	if got, _ := qtReadAll(t, it, 0); got != 200 {
		t.Fatalf("read %d frames, want 200", got)
	}
	if _, err := q.Verify(); err != nil {
		t.Fatal(err)
	}
	// Frames after an unsealed segment are a corrupt queue: refuse to write.
	w.Close()
	head = w.Segment()
	l, err := Open(Options{Path: q.segPath(head + 1), Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	lw := utWriter(t, l)
	lw.Append([]byte("stray"))
	lw.Commit()
	l.Close()
	if _, err := q.Writer(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("writer over a frame after an unsealed segment: %v", err)
	}
	if _, err := q.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v", err)
	}
}

// TestQueueInterfaces: code written against FrameWriter and FrameIterator takes a Log or a Queue.
func TestQueueInterfaces(t *testing.T) {
	l := utOpen(t, Options{Capacity: 1 << 20})
	q := qtOpen(t, QueueOptions{Writable: true})
	lw := utWriter(t, l)
	lit := utIter(t, l)
	qw := qtWriter(t, q)
	qit := qtIter(t, q, IteratorOptions{})
	for _, c := range []struct {
		w  FrameWriter
		it FrameIterator
	}{{lw, lit}, {qw, qit}} {
		qtAppend(t, c.w, 0, 300)
		if got, _ := qtReadAll(t, c.it, 0); got != 300 {
			t.Fatalf("%T: read %d frames", c.it, got)
		}
		n := 0
		c.it.Seek(0, io.SeekStart)
		for f, err := range c.it.All() {
			if err != nil {
				t.Fatal(err)
			}
			qtCheck(t, f, n)
			n++
		}
		if n != 300 {
			t.Fatalf("%T: All gave %d frames", c.it, n)
		}
		c.it.Seek(0, io.SeekStart)
		var batch [][]byte
		n = 0
		for {
			var err error
			batch, err = c.it.NextBatch(batch[:0], BatchOptions{MaxFrames: 7})
			if err != nil {
				t.Fatal(err)
			}
			if len(batch) == 0 {
				break
			}
			for _, f := range batch {
				qtCheck(t, f, n)
				n++
			}
		}
		if n != 300 {
			t.Fatalf("%T: NextBatch gave %d frames", c.it, n)
		}
		if c.it.Cursor() != c.it.End() {
			t.Fatalf("%T: at the end, cursor %#x != committed %#x", c.it, c.it.Cursor(), c.it.End())
		}
		if err := c.w.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQueueClose(t *testing.T) {
	q := qtOpen(t, QueueOptions{Writable: true})
	w := qtWriter(t, q)
	qtAppend(t, w, 0, 100)
	it := qtNamed(t, q, "r", IteratorOptions{})
	it.Next()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := it.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Queue.Close: %v", err)
	}
	if err := w.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Queue.Close: %v", err)
	}
	if err := w.Commit(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Queue.Close: %v", err)
	}
	if _, err := q.NewIterator(IteratorOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewIterator after Close: %v", err)
	}
	// The reader's name was released with its cursor stored.
	q2 := qtOpen(t, QueueOptions{Dir: q.Dir()})
	it2 := qtNamed(t, q2, "r", IteratorOptions{})
	if got, _ := qtReadAll(t, it2, 1); got != 99 {
		t.Fatalf("resumed after Close: %d frames", got)
	}
}

func TestQueueStatusHelpers(t *testing.T) {
	q := qtOpen(t, QueueOptions{Writable: true, Retention: RetentionPolicy{MaxSegments: 5, HardMaxAge: time.Hour}})
	if !IsQueue(q.Dir()) || IsQueue(t.TempDir()) || IsQueue(filepath.Join(q.Dir(), segName(1))) {
		t.Fatal("IsQueue is wrong")
	}
	ro := qtOpen(t, QueueOptions{Dir: q.Dir()})
	if held, _, err := ro.WriterStatus(); held || err != nil {
		t.Fatalf("WriterStatus with no writer: %v, %v", held, err)
	}
	w := qtWriter(t, q)
	if held, pid, err := ro.WriterStatus(); !held || pid != os.Getpid() || err != nil {
		t.Fatalf("WriterStatus: %v, %d, %v", held, pid, err)
	}
	info, err := ro.Info()
	if err != nil || info.SegmentSize != 4096 || info.Retention != q.Retention() {
		t.Fatalf("Info: %+v, %v", info, err)
	}
	if s := info.Retention.String(); s != "max segments 5, hard max age 1h0m0s" {
		t.Fatalf("policy string %q", s)
	}
	qtAppend(t, w, 0, 100)
	w.CommitTagged(42)
	if tag, ok, err := ro.CommitTag(); tag != 42 || !ok || err != nil {
		t.Fatalf("CommitTag: %d, %v, %v", tag, ok, err)
	}
	// A batch across a roll: both segments carry the tag.
	seg := w.Segment()
	for i := 100; w.Segment() == seg; i++ {
		w.Append(qtFrame(i, qtSize(i)))
	}
	w.CommitTagged(43)
	if tag, ok, err := ro.CommitTag(); tag != 43 || !ok || err != nil {
		t.Fatalf("CommitTag after a roll: %d, %v, %v", tag, ok, err)
	}
	w.Close()
	if held, _, _ := ro.WriterStatus(); held {
		t.Fatal("WriterStatus after Close: held")
	}
	// The policy is the queue's: a writer that gives none applies the recorded one.
	q2 := qtOpen(t, QueueOptions{Dir: q.Dir(), Writable: true})
	if q2.Retention() != q.Retention() {
		t.Fatalf("reopened queue's policy %v, want the recorded %v", q2.Retention(), q.Retention())
	}
}

// qtExists reports whether segment n's file is in q's directory.
func qtExists(q *Queue, n int64) bool {
	_, err := os.Stat(q.segPath(n))
	return !errors.Is(err, fs.ErrNotExist)
}

// TestQueueRecycleNeverGarbage: retention recycles the files of removed segments, but never one
// that a reader maps. Readers that fall behind (anonymous: retention does not wait for them) get
// ErrCursor and start again from the first available frame; every frame any reader gets must be
// exactly the frame its sequence number says.
func TestQueueRecycleNeverGarbage(t *testing.T) {
	q := qtOpen(t, QueueOptions{Writable: true, Retention: RetentionPolicy{MaxSegments: 4}})
	w := qtWriter(t, q)
	// A reader parked in segment 1 keeps it mapped: it must survive, readable, whatever happens.
	parked := qtIter(t, q, IteratorOptions{})
	qtAppend(t, w, 0, 10)
	for i := 0; i < 5; i++ {
		f, _ := parked.Next()
		qtCheck(t, f, i)
	}
	segments := int64(300)
	if testing.Short() {
		segments = 60
	}
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var head atomic.Int64     // the writer's segment
	var behind [3]atomic.Bool // reader r got ErrCursor at least once
	for r := 0; r < 3; r++ {
		go func() {
			it, err := q.NewIterator(IteratorOptions{Spin: -1})
			if err != nil {
				errs <- err
				return
			}
			defer it.Close()
			next, resets, n := -1, 0, 0
			for {
				select {
				case <-stop:
					if resets == 0 && r > 0 {
						errs <- fmt.Errorf("reader %d never fell behind", r)
						return
					}
					errs <- nil
					return
				default:
				}
				f, err := it.Next()
				if errors.Is(err, ErrCursor) {
					resets++
					behind[r].Store(true)
					if _, err := it.Seek(0, io.SeekStart); err != nil && !errors.Is(err, ErrCursor) {
						errs <- err
						return
					}
					next = -1
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				if f == nil {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				seq := int(le.Uint64(f))
				if next >= 0 && seq != next {
					errs <- fmt.Errorf("reader %d: frame %d after %d", r, seq, next-1)
					return
				}
				if !bytes.Equal(f, qtFrame(seq, qtSize(seq))) {
					errs <- fmt.Errorf("reader %d: frame %d is garbage", r, seq)
					return
				}
				next = seq + 1
				// Readers 1 and 2 are slow: now and then they stop until retention has removed
				// the segment after their cursor's, so that they fall behind whatever the timing.
				if n++; r > 0 && n%(50*r) == 0 {
					seg, _ := SplitQueueCursor(it.Cursor())
					for head.Load() <= seg+1 || qtExists(q, seg+1) {
						select {
						case <-stop:
						case <-time.After(100 * time.Microsecond):
							continue
						}
						break
					}
				}
			}
		}()
	}
	next := 10
	// The writer goes on until the slow readers have fallen behind at least once (they wait for
	// it to lap them, so they do), within a bound.
	for w.Segment() < segments || !behind[1].Load() || !behind[2].Load() {
		if w.Segment() > 50*segments {
			t.Fatal("the slow readers never fell behind")
		}
		qtAppend(t, w, next, 10)
		next += 10
		head.Store(w.Segment())
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Recycling happens (how much of it a loaded machine's timing allows is for benchmarks): with
	// the readers gone, rolls reuse removed segments' files, within a bound.
	deadline := time.Now().Add(20 * time.Second)
	for w.Stats().Recycled == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: no segment made from a recycled file", w.Stats())
		}
		qtAppend(t, w, next, 10)
		next += 10
	}
	st := w.Stats()
	// The parked reader's segment was not recycled under it: the rest of it is intact.
	for i := 5; ; i++ {
		f, err := parked.Next()
		if errors.Is(err, ErrCursor) {
			if seg, _ := SplitQueueCursor(parked.Cursor()); seg != 2 || i < 10 {
				t.Fatalf("parked reader: ErrCursor at frame %d, cursor %#x", i, parked.Cursor())
			}
			break
		}
		if err != nil || f == nil {
			t.Fatalf("parked reader at frame %d: %v, %v", i, f, err)
		}
		qtCheck(t, f, i)
	}
	t.Logf("%d segments, %+v", w.Segment(), st)
}

// TestQueueID: a queue's identity is non-zero, survives reopening, is recorded in queue.json,
// differs between queues, and a queue whose queue.json predates it (even with segment 1 gone)
// derives the same one.
func TestQueueID(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	id := q.ID()
	if id == 0 {
		t.Fatal("ID is 0")
	}
	if other := qtOpen(t, QueueOptions{}); other.ID() == id {
		t.Fatalf("two queues share ID %016x", id)
	}
	metaPath := filepath.Join(q.Dir(), metaFile)
	readID := func() string {
		t.Helper()
		b, err := os.ReadFile(metaPath)
		if err != nil {
			t.Fatal(err)
		}
		var m queueMeta
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	if got, want := readID(), fmt.Sprintf("%016x", id); got != want {
		t.Fatalf("queue.json id %q, want %q", got, want)
	}
	if ro := qtOpen(t, QueueOptions{Dir: q.Dir()}); ro.ID() != id {
		t.Fatalf("reopened ID %016x, want %016x", ro.ID(), id)
	}
	w := qtWriter(t, q)
	for i := 0; w.Segment() < 4; i++ {
		if err := w.Append(qtFrame(i, qtSize(i))); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if readID() != fmt.Sprintf("%016x", id) {
		t.Fatal("the writer changed the recorded id")
	}

	// An older queue: queue.json without the id, and segment 1 removed by retention.
	legacy := `{"format":"shmio-queue","version":1,"segment_size":4096,"retention":{}}`
	if err := os.WriteFile(metaPath, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	if ro := qtOpen(t, QueueOptions{Dir: q.Dir()}); ro.ID() != id {
		t.Fatalf("legacy queue ID %016x, want segment 1's %016x", ro.ID(), id)
	}
	if readID() != "" {
		t.Fatal("a read-only open wrote queue.json")
	}
	if err := os.Remove(filepath.Join(q.Dir(), segName(1))); err != nil {
		t.Fatal(err)
	}
	if ro := qtOpen(t, QueueOptions{Dir: q.Dir()}); ro.ID() != id {
		t.Fatalf("legacy queue without segment 1: ID %016x, want %016x", ro.ID(), id)
	}
	// A writable open records it once.
	if rw := qtOpen(t, QueueOptions{Dir: q.Dir(), Writable: true}); rw.ID() != id || readID() != fmt.Sprintf("%016x", id) {
		t.Fatalf("writable open: ID %016x, queue.json %q; want %016x", rw.ID(), readID(), id)
	}
}
