package shmio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// utFill writes frames of payloads filled with b (0xab never looks like a plausible length, so
// offsets inside these frames are never mistaken for frame starts).
func utFill(t *testing.T, w *Writer, b byte, sizes ...int) {
	t.Helper()
	for _, n := range sizes {
		if err := w.Append(bytes.Repeat([]byte{b}, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestIteratorNextPrev(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	it := utIter(t, l)
	if f, err := it.Next(); f != nil || err != nil {
		t.Fatalf("Next on an empty log = %v, %v", f, err)
	}
	if f, err := it.Prev(); f != nil || err != nil {
		t.Fatalf("Prev on an empty log = %v, %v", f, err)
	}
	utAppend(t, w, 0, 1, 2, 3)
	step := func(what string, f []byte, err error, i, n int, cursor int64) {
		t.Helper()
		if err != nil || !bytes.Equal(f, utPayload(i, n)) || it.Cursor() != cursor {
			t.Fatalf("%s = %v, %v at cursor %d; want frame %d at cursor %d", what, f, err, it.Cursor(), i, cursor)
		}
	}
	f, err := it.Next()
	step("Next", f, err, 0, 1, 5)
	f, err = it.Next()
	step("Next", f, err, 1, 2, 11)
	f, err = it.Prev()
	step("Prev", f, err, 1, 2, 5)
	f, err = it.Next()
	step("Next again", f, err, 1, 2, 11)
	f, err = it.Next()
	step("Next", f, err, 2, 3, 18)
	if f, err := it.Next(); f != nil || err != nil {
		t.Fatalf("Next at the end = %v, %v", f, err)
	}
	// Frames committed later are picked up by the same iterator.
	utAppend(t, w, 3, 4)
	f, err = it.Next()
	step("Next after a new commit", f, err, 3, 4, 26)
	f, err = it.Prev()
	step("Prev", f, err, 3, 4, 18)
	// Frames are capped slices: appending to one cannot overwrite the next frame.
	f, _ = it.Prev()
	if cap(f) != len(f) {
		t.Fatalf("frame cap %d, len %d", cap(f), len(f))
	}
	// Frames stay valid after the iterator closes (until the Log closes).
	it.Close()
	if !bytes.Equal(f, utPayload(2, 3)) {
		t.Fatalf("frame changed after Iterator.Close: %v", f)
	}
}

func TestIteratorSeek(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	utFill(t, w, 0xab, 10, 20, 30) // frames at cursors 0, 14, 38; end 72
	it := utIter(t, l)
	seek := func(off int64, whence int, want int64) {
		t.Helper()
		got, err := it.Seek(off, whence)
		if err != nil || got != want || it.Cursor() != want {
			t.Fatalf("Seek(%d, %d) = %d, %v (cursor %d); want %d", off, whence, got, err, it.Cursor(), want)
		}
	}
	bad := func(off int64, whence int) {
		t.Helper()
		before := it.Cursor()
		got, err := it.Seek(off, whence)
		e := utIs(t, err, ErrCursor, "Seek to a bad cursor")
		if got != before || it.Cursor() != before {
			t.Fatalf("failed Seek(%d, %d) moved the cursor from %d to %d (returned %d)", off, whence, before, it.Cursor(), got)
		}
		if ErrorCode(err) != "ERR_SHM_CURSOR" {
			t.Fatalf("code %q", ErrorCode(err))
		}
		if whence == io.SeekStart && e.Offset != 192+off {
			t.Fatalf("Seek(%d): error offset %d, want the absolute target %d", off, e.Offset, 192+off)
		}
	}
	seek(14, io.SeekStart, 14)
	if f, _ := it.Next(); len(f) != 20 {
		t.Fatalf("frame at 14 has %d bytes", len(f))
	}
	seek(0, io.SeekCurrent, 38)
	seek(-24, io.SeekCurrent, 14)
	seek(24, io.SeekCurrent, 38)
	seek(0, io.SeekEnd, 72)
	if f, err := it.Next(); f != nil || err != nil {
		t.Fatalf("Next at SeekEnd = %v, %v", f, err)
	}
	seek(-34, io.SeekEnd, 38)
	seek(-72, io.SeekEnd, 0)
	seek(72, io.SeekStart, 72)
	seek(0, io.SeekStart, 0)

	seek(14, io.SeekStart, 14)
	for _, off := range []int64{-1, -14, 1, 2, 13, 15, 37, 39, 71, 73, 1 << 40, -1 << 40} {
		bad(off, io.SeekStart)
	}
	bad(1, io.SeekCurrent)
	bad(-1, io.SeekCurrent)
	bad(-15, io.SeekCurrent)
	bad(1, io.SeekEnd)
	bad(-1, io.SeekEnd)
	bad(-73, io.SeekEnd)
	bad(0, 3)
	bad(0, -1)

	// The committed end moves: Seek and SeekEnd follow it.
	utFill(t, w, 0xab, 5)
	seek(0, io.SeekEnd, 81)
	seek(72, io.SeekStart, 72)
	if f, _ := it.Next(); len(f) != 5 {
		t.Fatalf("frame after the old end has %d bytes", len(f))
	}
	// Uncommitted frames are not valid targets.
	utAppendNoCommit(t, w, 0, 5)
	bad(81+9, io.SeekStart)
	seek(81, io.SeekStart, 81)
}

// With DebugChecks, Seek proves a target is on the frame chain even when payload bytes look
// exactly like frames.
func TestIteratorSeekFakeFrameInPayload(t *testing.T) {
	for _, debug := range []bool{false, true} {
		l := utOpen(t, Options{DebugChecks: debug})
		w := utWriter(t, l)
		// A 20-byte payload (cursors 2..21) holding two fake frames: [8 0]fake[8 0] at cursor 6
		// and [5 0]x[5 0] at cursor 14, so cursor 14 passes the local length checks.
		p := make([]byte, 20)
		copy(p[4:], []byte{8, 0, 'f', 'a', 'k', 'e', 8, 0, 5, 0, 'x', 5, 0})
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		utAppend(t, w, 1, 3)
		it := utIter(t, l)
		_, err := it.Seek(14, io.SeekStart)
		if debug {
			utIs(t, err, ErrCursor, "DebugChecks: Seek to a fake frame inside a payload")
			continue
		}
		// Without DebugChecks a frame start is recognised by its lengths only (documented), so
		// this crafted payload may pass; the iterator still stays within the committed range.
		if err == nil {
			t.Log("without DebugChecks, Seek accepted a fake frame start crafted inside a payload")
			for _, err := range it.All() {
				if err == nil && it.Cursor() > it.CommittedSize() {
					t.Fatalf("read %d bytes beyond the committed end", it.Cursor()-it.CommittedSize())
				}
			}
		}
	}
}

func TestIteratorStartCursor(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	utFill(t, w, 0xab, 10, 20)
	for _, c := range []int64{0, 14, 38} {
		it, err := l.NewIterator(IteratorOptions{StartCursor: c})
		if err != nil {
			t.Fatalf("StartCursor %d: %v", c, err)
		}
		if it.Cursor() != c {
			t.Fatalf("StartCursor %d: cursor %d", c, it.Cursor())
		}
	}
	for _, c := range []int64{-1, 1, 13, 15, 37, 39, 1 << 40} {
		it, err := l.NewIterator(IteratorOptions{StartCursor: c})
		utIs(t, err, ErrCursor, "bad StartCursor")
		if it != nil {
			t.Fatalf("StartCursor %d: got an iterator with the error", c)
		}
	}
	_, err := l.NewIterator(IteratorOptions{Name: "x"})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("named iterator on a Log: %v, want errors.ErrUnsupported", err)
	}
}

func TestNextBatchLimits(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	sizes := make([]int, 10)
	for i := range sizes {
		sizes[i] = 10 // 14 bytes per frame
	}
	utAppend(t, w, 0, sizes...)
	it := utIter(t, l)
	batches := func(o BatchOptions) []int {
		t.Helper()
		if _, err := it.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var counts []int
		i := 0
		for {
			b, err := it.NextBatch(nil, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 {
				return counts
			}
			for _, f := range b {
				if !bytes.Equal(f, utPayload(i, 10)) {
					t.Fatalf("%+v: frame %d differs", o, i)
				}
				i++
			}
			if it.Cursor() != int64(14*i) {
				t.Fatalf("%+v: cursor %d after %d frames", o, it.Cursor(), i)
			}
			counts = append(counts, len(b))
		}
	}
	for _, tc := range []struct {
		o    BatchOptions
		want []int
	}{
		{BatchOptions{}, []int{10}},
		{BatchOptions{MaxMessages: 3}, []int{3, 3, 3, 1}},
		{BatchOptions{MaxMessages: 1}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{BatchOptions{MaxBytes: 28}, []int{2, 2, 2, 2, 2}},                // 2 frames of 10+4
		{BatchOptions{MaxBytes: 27}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}, // the length fields count
		{BatchOptions{MaxBytes: 42, MaxMessages: 2}, []int{2, 2, 2, 2, 2}},
		{BatchOptions{MaxBytes: 70, MaxMessages: 4}, []int{4, 4, 2}},
		{BatchOptions{MaxBytes: 1}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}, // too small: one frame anyway
		{BatchOptions{MaxBytes: 140}, []int{10}},
		{BatchOptions{MaxBytes: 139}, []int{9, 1}},
	} {
		got := batches(tc.o)
		if len(got) != len(tc.want) {
			t.Fatalf("%+v: batches %v, want %v", tc.o, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%+v: batches %v, want %v", tc.o, got, tc.want)
			}
		}
	}
	// The default of 64 frames.
	more := make([]int, 100)
	for i := range more {
		more[i] = 1
	}
	utAppend(t, w, 0, more...)
	it.Seek(14*10, io.SeekStart)
	if b, _ := it.NextBatch(nil, BatchOptions{}); len(b) != 64 {
		t.Fatalf("default batch: %d frames, want 64", len(b))
	}
	// A frame larger than MaxBytes and than the default comes alone.
	big := utOpen(t, Options{Capacity: 1 << 20})
	bw := utWriter(t, big)
	utAppend(t, bw, 0, 60000, 60000, 60000, 60000, 60000, 3)
	bit := utIter(t, big)
	var counts []int
	for {
		b, err := bit.NextBatch(nil, BatchOptions{MaxBytes: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			break
		}
		counts = append(counts, len(b))
	}
	if len(counts) != 6 {
		t.Fatalf("large frames with MaxBytes 100: batches %v, want 6 of 1", counts)
	}
	bit.Seek(0, io.SeekStart)
	if b, _ := bit.NextBatch(nil, BatchOptions{}); len(b) != 4 { // 256 KiB default: 4 x 60004
		t.Fatalf("default MaxBytes: %d frames of 60000 bytes, want 4", len(b))
	}
}

func TestNextBatchWideMaxBytes(t *testing.T) {
	l := utOpen(t, Options{WideFrames: true})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10, 10, 10, 10) // 18 bytes per frame
	it := utIter(t, l)
	if b, err := it.NextBatch(nil, BatchOptions{MaxBytes: 36}); err != nil || len(b) != 2 {
		t.Fatalf("wide MaxBytes 36: %d frames, %v; want 2", len(b), err)
	}
	if b, err := it.NextBatch(nil, BatchOptions{MaxBytes: 35}); err != nil || len(b) != 1 || !bytes.Equal(b[0], utPayload(2, 10)) {
		t.Fatalf("wide MaxBytes 35: %d frames, %v; want frame 2 alone", len(b), err)
	}
	if it.Cursor() != 54 {
		t.Fatalf("wide cursor %d, want 54", it.Cursor())
	}
}

func TestNextBatchAppendsAndReuses(t *testing.T) {
	l := utOpen(t, Options{Capacity: 1 << 20})
	w := utWriter(t, l)
	sizes := make([]int, 200)
	for i := range sizes {
		sizes[i] = 32
	}
	utAppend(t, w, 0, sizes...)
	it := utIter(t, l)
	marker := []byte("keep")
	dst, err := it.NextBatch([][]byte{marker}, BatchOptions{MaxMessages: 5})
	if err != nil || len(dst) != 6 || !bytes.Equal(dst[0], marker) || !bytes.Equal(dst[5], utPayload(4, 32)) {
		t.Fatalf("NextBatch appending to dst: %d frames, %v", len(dst), err)
	}
	// Nothing new: dst comes back unchanged.
	it.Seek(0, io.SeekEnd)
	got, err := it.NextBatch(dst, BatchOptions{})
	if err != nil || len(got) != 6 || &got[0] != &dst[0] {
		t.Fatalf("NextBatch at the end: %d frames, %v", len(got), err)
	}
	// Reusing dst[:0] allocates nothing.
	dst = make([][]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := it.Seek(0, io.SeekStart); err != nil {
			panic(err)
		}
		var err error
		dst, err = it.NextBatch(dst[:0], BatchOptions{MaxMessages: 64})
		if err != nil || len(dst) != 64 {
			panic("short batch")
		}
	})
	if allocs != 0 {
		t.Fatalf("NextBatch with a reused dst: %v allocations, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := it.Seek(0, io.SeekStart); err != nil {
			panic(err)
		}
		for range 10 {
			if f, err := it.Next(); err != nil || f == nil {
				panic("Next failed")
			}
		}
		if f, err := it.Prev(); err != nil || f == nil {
			panic("Prev failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("Next/Prev/Seek: %v allocations, want 0", allocs)
	}
}

func TestIteratorAllAndFollow(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	utAppend(t, w, 0, 1, 2, 3, 4)
	it := utIter(t, l)
	i := 0
	for f, err := range it.All() {
		if err != nil || !bytes.Equal(f, utPayload(i, i+1)) {
			t.Fatalf("All frame %d: %v", i, err)
		}
		i++
	}
	if i != 4 || it.Cursor() != 5+6+7+8 {
		t.Fatalf("All yielded %d frames, cursor %d", i, it.Cursor())
	}
	// Breaking out leaves the cursor after the last frame taken.
	it.Seek(0, io.SeekStart)
	for range it.All() {
		break
	}
	if it.Cursor() != 5 {
		t.Fatalf("cursor %d after breaking out of All, want 5", it.Cursor())
	}
	for range it.All() {
	}
	for range it.All() {
		t.Fatal("All at the committed end yielded a frame")
	}

	// Follow waits for frames a writer commits later, in another goroutine.
	const more = 50
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := range more {
			if err := w.Append(utPayload(4+k, 9)); err != nil {
				t.Error(err)
				return
			}
			if k%5 == 4 {
				if err := w.Commit(); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
	n := 0
	for f, err := range it.Follow(ctx) {
		if err != nil {
			t.Fatalf("Follow after %d frames: %v", n, err)
		}
		if !bytes.Equal(f, utPayload(4+n, 9)) {
			t.Fatalf("Follow frame %d differs", n)
		}
		if n++; n == more {
			break
		}
	}
	wg.Wait()
	// At the end, Follow ends with the context's error once ctx is done.
	short, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	start := time.Now()
	var last error
	count := 0
	for _, err := range it.Follow(short) {
		last = err
		count++
	}
	if count != 1 || !errors.Is(last, context.DeadlineExceeded) {
		t.Fatalf("Follow at the end: %d values, last error %v; want one DeadlineExceeded", count, last)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Follow took %v to notice its deadline", d)
	}
}

// utCorruptLog writes frames of 10 bytes (14 with lengths) at cursors 0, 14, 28, 42 and returns
// the log, for tests that damage them through the writable mapping.
func utCorruptLog(t *testing.T, debug bool) *Log {
	t.Helper()
	l := utOpen(t, Options{DebugChecks: debug})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10, 10, 10, 10)
	w.Close()
	return l
}

func TestIteratorAsymmetricFrame(t *testing.T) {
	// Frame 2 (cursor 28, file offset 220) gets trailing length 15 instead of 14.
	for _, debug := range []bool{true, false} {
		l := utCorruptLog(t, debug)
		le.PutUint16(l.mem[192+28+12:], 15)
		it := utIter(t, l)
		if got := utNextN(t, it, 2); got != 2 {
			t.Fatal(got)
		}
		if !debug {
			// Without DebugChecks the trailer is not read going forward (documented cost model).
			f, err := it.Next()
			if err != nil || !bytes.Equal(f, utPayload(2, 10)) {
				t.Fatalf("no DebugChecks: Next = %v, %v", f, err)
			}
			continue
		}
		for range 3 { // the iterator stays on the corrupt frame, however often asked
			f, err := it.Next()
			e := utIs(t, err, ErrCorrupt, "Next on an asymmetric frame")
			if f != nil || e.Offset != 192+28 || it.Cursor() != 28 {
				t.Fatalf("Next = %v, error offset %d, cursor %d; want nil, 220, 28", f, e.Offset, it.Cursor())
			}
			if ErrorCode(err) != "ERR_SHM_FRAME_CORRUPT" {
				t.Fatalf("code %q", ErrorCode(err))
			}
		}
		// NextBatch returns the frames before the damage along with the error.
		it.Seek(0, io.SeekStart)
		b, err := it.NextBatch(nil, BatchOptions{})
		utIs(t, err, ErrCorrupt, "NextBatch over an asymmetric frame")
		if len(b) != 2 || !bytes.Equal(b[1], utPayload(1, 10)) || it.Cursor() != 28 {
			t.Fatalf("NextBatch: %d frames, cursor %d; want 2 and 28", len(b), it.Cursor())
		}
		b, err = it.NextBatch(b[:0], BatchOptions{})
		utIs(t, err, ErrCorrupt, "NextBatch on the asymmetric frame")
		if len(b) != 0 || it.Cursor() != 28 {
			t.Fatalf("NextBatch on the bad frame: %d frames, cursor %d", len(b), it.Cursor())
		}
		// Going backward onto it from the frame after.
		if _, err := it.Seek(42, io.SeekStart); err == nil {
			t.Fatal("Seek to the frame after an asymmetric frame accepted")
		}
		it.Seek(0, io.SeekEnd)
		if f, err := it.Prev(); err != nil || !bytes.Equal(f, utPayload(3, 10)) {
			t.Fatalf("Prev over frame 3: %v", err)
		}
		_, err = it.Prev()
		utIs(t, err, ErrCorrupt, "Prev onto an asymmetric frame")
		if it.Cursor() != 42 {
			t.Fatalf("Prev moved to %d on error", it.Cursor())
		}
		// All stops with the error.
		it.Seek(0, io.SeekStart)
		n := 0
		var last error
		for _, err := range it.All() {
			n++
			last = err
		}
		if n != 3 || !errors.Is(last, ErrCorrupt) {
			t.Fatalf("All: %d values, last %v", n, last)
		}
	}
}

func utNextN(t *testing.T, it *Iterator, n int) int {
	t.Helper()
	for i := range n {
		f, err := it.Next()
		if err != nil || f == nil {
			t.Fatalf("Next %d: %v, %v", i, f, err)
		}
	}
	return n
}

func TestIteratorBadLengths(t *testing.T) {
	for _, tc := range []struct {
		name string
		lead uint16
	}{
		{"past the committed end", 14 + 14 + 1}, // frames 2 and 3 are 28 bytes: one more runs past
		{"far past the end", 60000},
		{"zero", 0},
		{"below the minimum", 4},
	} {
		for _, debug := range []bool{false, true} {
			l := utCorruptLog(t, debug)
			le.PutUint16(l.mem[192+28:], tc.lead)
			it := utIter(t, l)
			utNextN(t, it, 2)
			f, err := it.Next()
			e := utIs(t, err, ErrCorrupt, tc.name)
			if f != nil || it.Cursor() != 28 || e.Offset != 220 {
				t.Fatalf("%s: Next = %v, cursor %d, offset %d", tc.name, f, it.Cursor(), e.Offset)
			}
			it.Seek(0, io.SeekStart)
			b, err := it.NextBatch(nil, BatchOptions{})
			utIs(t, err, ErrCorrupt, tc.name+" (NextBatch)")
			if len(b) != 2 || it.Cursor() != 28 {
				t.Fatalf("%s: NextBatch %d frames, cursor %d", tc.name, len(b), it.Cursor())
			}
			if _, err := it.Seek(28, io.SeekStart); !errors.Is(err, ErrCursor) {
				t.Fatalf("%s: Seek onto the bad frame: %v", tc.name, err)
			}
			l.Close()
		}
	}
	// A bad trailing length backward.
	for _, trailer := range []uint16{0, 3, 60000} {
		l := utCorruptLog(t, false)
		le.PutUint16(l.mem[192+56-2:], trailer)
		it := utIter(t, l)
		it.Seek(0, io.SeekEnd)
		_, err := it.Prev()
		utIs(t, err, ErrCorrupt, "Prev with a bad trailing length")
		if it.Cursor() != 56 {
			t.Fatalf("Prev moved to %d", it.Cursor())
		}
		l.Close()
	}
}

func TestIteratorCommittedEndDamaged(t *testing.T) {
	l := utCorruptLog(t, false)
	it := utIter(t, l)
	utNextN(t, it, 1)
	// Committed end beyond the file, after Open.
	l.size.Store(uint64(len(l.mem) + 100))
	_, err := it.Next()
	// The cursor is inside the old committed range: it reads frame 1 without refreshing.
	if err != nil {
		t.Fatalf("Next below the old end: %v", err)
	}
	utNextN(t, it, 2)
	_, err = it.Next()
	e := utIs(t, err, ErrCorrupt, "Next with the committed end beyond the file")
	if e.Offset != int64(len(l.mem)+100) {
		t.Fatalf("offset %d, want the bad end %d", e.Offset, len(l.mem)+100)
	}
	_, err = it.NextBatch(nil, BatchOptions{})
	utIs(t, err, ErrCorrupt, "NextBatch with the committed end beyond the file")
	_, err = it.Seek(0, io.SeekStart)
	utIs(t, err, ErrCorrupt, "Seek with the committed end beyond the file")
	if it.Cursor() != 56 {
		t.Fatalf("cursor moved to %d", it.Cursor())
	}
	// Committed end moving backward.
	l.size.Store(192 + 28)
	_, err = it.Next()
	utIs(t, err, ErrCorrupt, "Next with the committed end moved backward")
	_, err = it.NextBatch(nil, BatchOptions{})
	utIs(t, err, ErrCorrupt, "NextBatch with the committed end moved backward")
	// Restored: reading resumes.
	l.size.Store(192 + 56)
	if _, err := it.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if got := utReadAll(t, it); len(got) != 4 {
		t.Fatalf("%d frames after repair", len(got))
	}
}

func TestIteratorClose(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	utAppend(t, w, 0, 3, 4)
	it := utIter(t, l)
	f, _ := it.Next()
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	utIterClosed(t, it, func(what string, err error) {
		t.Helper()
		utIs(t, err, ErrClosed, what)
	})
	if it.Cursor() != 7 || it.CommittedSize() != 15 {
		t.Fatalf("closed iterator: cursor %d, committed %d", it.Cursor(), it.CommittedSize())
	}
	if !bytes.Equal(f, utPayload(0, 3)) {
		t.Fatal("frame changed after Iterator.Close")
	}
	// Other iterators of the log are unaffected.
	if got := utReadAll(t, utIter(t, l)); len(got) != 2 {
		t.Fatalf("%d frames", len(got))
	}
}

// A writer and a reader in two goroutines: the reader sees every frame once, in order, whole.
func TestIteratorConcurrentWriter(t *testing.T) {
	l := utOpen(t, Options{Capacity: 4 << 20})
	w := utWriter(t, l)
	const n = 20000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			p, err := w.Allocate(8 + i%50)
			if err != nil {
				t.Error(err)
				return
			}
			le.PutUint64(p, uint64(i))
			for j := 8; j < len(p); j++ {
				p[j] = byte(i)
			}
			if i%97 == 96 || i == n-1 {
				if err := w.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	it, err := l.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dst [][]byte
	for next := 0; next < n; {
		dst, err = it.NextBatch(dst[:0], BatchOptions{MaxMessages: 37})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range dst {
			if len(f) != 8+next%50 || le.Uint64(f) != uint64(next) {
				t.Fatalf("frame %d: %d bytes, seq %d", next, len(f), le.Uint64(f))
			}
			for _, b := range f[8:] {
				if b != byte(next) {
					t.Fatalf("frame %d torn", next)
				}
			}
			next++
		}
		if len(dst) == 0 {
			if err := it.Wait(ctx); err != nil {
				t.Fatalf("Wait after %d frames: %v", next, err)
			}
		}
	}
	wg.Wait()
}

// SHMIO_DEBUG turns DebugChecks on for every Log opened while it is set: readers then check
// the trailing length of every frame.
func TestDebugChecksFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     string
		checked bool
	}{{"1", true}, {"true", true}, {"", false}, {"0", false}, {"yes", false}} {
		t.Setenv("SHMIO_DEBUG", tc.env)
		l := utCorruptLog(t, false)
		le.PutUint16(l.mem[192+28+12:], 15) // frame 2: trailing length 15, leading 14
		it := utIter(t, l)
		utNextN(t, it, 2)
		f, err := it.Next()
		if tc.checked {
			utIs(t, err, ErrCorrupt, "SHMIO_DEBUG="+tc.env)
			if it.Cursor() != 28 {
				t.Fatalf("SHMIO_DEBUG=%s: cursor %d", tc.env, it.Cursor())
			}
		} else if err != nil || !bytes.Equal(f, utPayload(2, 10)) {
			t.Fatalf("SHMIO_DEBUG=%q: Next = %v, %v; want the frame unchecked", tc.env, f, err)
		}
		l.Close()
	}
}
