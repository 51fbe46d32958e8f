package shmio

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// Tests for the queue side of issue 11 (hardening).

// hqWaitFirstSegment waits (bounded) until retention has removed every segment before want.
func hqWaitFirstSegment(t *testing.T, q *Queue, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		first, err := q.firstSegment()
		if err != nil {
			t.Fatal(err)
		}
		if first >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention kept segment %d for 10 s", first)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueReaderAtSegmentEndSurvivesRetention (issue 11 point 1): a named reader that stopped
// at the end of the head segment before it was sealed stored (segment, end); once the writer
// rolled and retention removed that segment, the reader must resume at the start of the next.
func TestQueueReaderAtSegmentEndSurvivesRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 1 << 10, Retention: RetentionPolicy{MaxSegments: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	frame := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 100) }
	for i := range 8 { // 8 × 104 bytes: segment 1 exactly full
		if err := w.Append(frame(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if w.Segment() != 1 {
		t.Fatalf("eight frames went to segment %d", w.Segment())
	}
	r, err := q.NewIterator(IteratorOptions{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		f, err := r.Next()
		if err != nil || !bytes.Equal(f, frame(i)) {
			t.Fatalf("frame %d: %q, %v", i, f, err)
		}
	}
	if f, err := r.Next(); f != nil || err != nil {
		t.Fatalf("a ninth frame: %q, %v", f, err)
	}
	stored := r.Cursor()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if seg, off := SplitQueueCursor(stored); seg != 1 || off != 8*104 {
		t.Fatalf("stored cursor %#x, want segment 1 at its end", stored)
	}
	if err := w.Append(frame(8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	hqWaitFirstSegment(t, q, 2)
	infos, err := q.Readers()
	if err != nil || len(infos) != 1 || infos[0].Err != nil || infos[0].LagFrames != 1 {
		t.Fatalf("Readers: %+v, %v; want reader r one frame behind", infos, err)
	}
	if n, _, err := q.Lag(stored); err != nil || n != 1 {
		t.Fatalf("Lag(%#x) = %d, %v; want 1 frame", stored, n, err)
	}
	r, err = q.NewIterator(IteratorOptions{Name: "r"})
	if err != nil {
		t.Fatalf("reopening reader r: %v", err)
	}
	defer r.Close()
	if f, err := r.Next(); err != nil || !bytes.Equal(f, frame(8)) {
		t.Fatalf("reader r resumed with %q, %v; want the new frame", f, err)
	}
	// Seek accepts the old cursor too; a cursor inside the removed segment stays an error.
	if c, err := r.Seek(stored, 0); err != nil || c != QueueCursor(2, 0) {
		t.Fatalf("Seek(%#x) = %#x, %v; want the start of segment 2", stored, c, err)
	}
	if _, err := r.Seek(QueueCursor(1, 104), 0); !errors.Is(err, ErrCursor) {
		t.Fatalf("Seek into the removed segment: %v, want ErrCursor", err)
	}
}
