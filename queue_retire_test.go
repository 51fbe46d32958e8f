package shmio

import (
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

// The writer hands sealed segments to the background in batches (see QueueWriter.roll); a
// writer that stops rolling must not leave the last ones out of retention for long.
func TestQueueRetentionAfterWriterStops(t *testing.T) {
	q := qtOpen(t, QueueOptions{Retention: RetentionPolicy{MaxSegments: 3}})
	if d := q.prepareDepth(); d != 8 {
		t.Fatalf("prepareDepth for 4 KiB segments = %d, want 8 (the batching this test covers)", d)
	}
	w := qtWriter(t, q)
	next := 0
	write := func(seg int64) {
		for w.Segment() < seg {
			qtAppend(t, w, next, 10)
			next += 10
		}
	}
	queued := func() int {
		w.retMu.Lock()
		defer w.retMu.Unlock()
		return len(w.retQ)
	}
	// From segment 1, 12 rolls: the 12th hands the batch over. Let the background take it, then
	// roll once more: that retirement waits for the next batch, which does not come.
	write(13)
	testproc.WaitFor(t, 20*time.Second, "the background to take the batch", func() bool { return queued() == 0 })
	write(14)
	if n := queued(); n > 1 { // 0 if the retention tick came in between
		t.Fatalf("%d retirements queued after the 13th roll, want 1", n)
	}
	// Only the retention tick can take it now (the wait gives up after 20 s).
	testproc.WaitFor(t, 20*time.Second, "3 segments up to the head after the writer stopped", func() bool {
		s, _ := q.Segments()
		return len(s) > 0 && s[0].Number == w.Segment()-2
	})
	// The frames left are intact, in order, and run to the last one written.
	peek := qtIter(t, q, IteratorOptions{})
	f, err := peek.Next()
	if err != nil || len(f) < 8 {
		t.Fatalf("first frame left: %v, %v", f, err)
	}
	first := int(le.Uint64(f))
	peek.Close()
	if n, _ := qtReadAll(t, qtIter(t, q, IteratorOptions{}), first); first+n != next {
		t.Fatalf("frames %d..%d left, want them to end at %d", first, first+n-1, next-1)
	}
}
