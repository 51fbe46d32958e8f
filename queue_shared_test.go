package shmio

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// qsOpen opens (creating) a writable queue with small segments for shared-writer tests.
func qsOpen(t testing.TB, dir string, segSize int64) *Queue {
	t.Helper()
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func qsWriter(t testing.TB, q *Queue) *QueueSharedWriter {
	t.Helper()
	w, err := q.SharedWriter()
	if err != nil {
		t.Fatalf("SharedWriter: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// qsReadAll checks every committed frame of the queue (each writer's frames once, in order,
// whole) and that each commit's frames are contiguous when commits holds each writer's commit
// sizes; it returns the tracker.
func qsReadAll(t testing.TB, q *Queue) shTracker {
	t.Helper()
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	return shTrackAll(t, it)
}

// TestQueueSharedGoroutines: goroutines of one process, each with its own QueueSharedWriter on
// one Queue and others on a second handle, append commits of 1 to 200 frames (many straddle a
// roll of the 4 KiB segments); every frame arrives once, in its writer's order, every commit's
// frames are contiguous, and the queue verifies.
func TestQueueSharedGoroutines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	qa := qsOpen(t, dir, 4096)
	qb := qsOpen(t, dir, 4096)
	const writers, per = 6, 3000
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for id := range uint32(writers) {
		q := qa
		if id%2 == 1 {
			q = qb
		}
		w := qsWriter(t, q)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(0); seq < per; {
				k := min(1+xpMix(seq^uint64(id)<<20)%200, per-seq)
				for i := range k {
					p, err := w.Allocate(shSize(id, seq+i))
					if err != nil {
						errs <- err
						return
					}
					shFill(p, id, seq+i)
				}
				if err := w.Commit(); err != nil {
					errs <- err
					return
				}
				seq += k
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tr := qsReadAll(t, qa)
	for id := range uint32(writers) {
		if tr[id] != per {
			t.Fatalf("writer %d: %d frames, want %d", id, tr[id], per)
		}
	}
	// Contiguity: a writer's commit of k frames shows as a run of k of its frames.
	it, _ := qa.NewIterator(IteratorOptions{})
	defer it.Close()
	runs := map[uint32]uint64{} // frames of the current run expected still
	var last uint32 = 1 << 31
	next := map[uint32]uint64{}
	for {
		p, err := it.Next()
		if err != nil || p == nil {
			break
		}
		id, seq, _ := shCheck(p)
		if id != last && last != 1<<31 && runs[last] != 0 {
			t.Fatalf("writer %d's commit interrupted by writer %d at its frame %d", last, id, seq)
		}
		if runs[id] == 0 {
			runs[id] = min(1+xpMix(next[id]^uint64(id)<<20)%200, per-next[id])
			next[id] += runs[id]
		}
		runs[id]--
		last = id
	}
	if res, err := qa.Verify(); err != nil || res.Segments < 20 {
		t.Fatalf("Verify: %+v, %v (want a clean queue of many segments)", res, err)
	}
}

// TestQueueSharedModes: the exclusive QueueWriter and shared writers exclude each other, in one
// Queue and across handles, each refused with ErrLocked naming the mode; read-only, closed and
// sealed queues and bad frame sizes are refused with their errors.
func TestQueueSharedModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q := qsOpen(t, dir, 4096)
	other := qsOpen(t, dir, 4096)
	sw := qsWriter(t, q)
	shAppend(t, sw, 1, 0, 3)
	if _, err := q.Writer(); !errors.Is(err, ErrLocked) {
		t.Fatalf("Writer beside shared writers of this Queue: %v, want ErrLocked", err)
	}
	_, err := other.Writer()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Writer beside shared writers: %v, want ErrLocked", err)
	}
	if !errorsContain(err, "shared writers hold it") {
		t.Fatalf("Writer's error does not name the mode: %v", err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	ew, err := other.Writer()
	if err != nil {
		t.Fatalf("Writer after the shared writers closed: %v", err)
	}
	_, err = q.SharedWriter()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("SharedWriter beside the exclusive writer: %v, want ErrLocked", err)
	}
	if !errorsContain(err, "an exclusive writer holds it") {
		t.Fatalf("SharedWriter's error does not name the mode: %v", err)
	}
	if _, err := other.SharedWriter(); !errors.Is(err, ErrLocked) {
		t.Fatalf("SharedWriter beside this Queue's exclusive writer: %v, want ErrLocked", err)
	}
	shAppend(t, ew, 2, 0, 2)
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := OpenQueue(QueueOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.SharedWriter(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only queue: %v, want ErrReadOnly", err)
	}
	ro.Close()

	w := qsWriter(t, q)
	for _, n := range []int{0, -1} {
		if _, err := w.Allocate(n); !errors.Is(err, ErrEmptyFrame) {
			t.Fatalf("Allocate(%d): %v, want ErrEmptyFrame", n, err)
		}
	}
	if _, err := w.Allocate(4096); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Allocate beyond a segment: %v, want ErrFrameTooLarge", err)
	}
	w2 := qsWriter(t, other)
	shAppend(t, w2, 3, 0, 1) // the lock is free: the refusals above released it
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{w.Commit(), w.Append([]byte("x")), w.Sync(), w.Seal(), w.Close()} {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("closed writer: %v, want ErrClosed", err)
		}
	}

	// Uncommitted frames are discarded at Close, which says so.
	w3 := qsWriter(t, q)
	if err := w3.Append([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if err := w3.Close(); !errors.Is(err, ErrUncommitted) {
		t.Fatalf("Close with an allocated frame: %v, want ErrUncommitted", err)
	}

	// Seal: every shared writer's Allocate, new shared writers and the exclusive writer refuse.
	shAppend(t, w2, 3, 1, 100) // a few rolls first
	if _, err := q.Verify(); err != nil {
		t.Fatal(err)
	}
	w4 := qsWriter(t, q)
	if err := w4.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := w4.Seal(); err != nil {
		t.Fatalf("second Seal: %v", err)
	}
	if _, err := w2.Allocate(10); !errors.Is(err, ErrSealed) {
		t.Fatalf("Allocate after Seal: %v, want ErrSealed", err)
	}
	if _, err := other.SharedWriter(); !errors.Is(err, ErrSealed) {
		t.Fatalf("SharedWriter on a sealed queue: %v, want ErrSealed", err)
	}
	w2.Close()
	w4.Close()
	if _, err := q.Writer(); !errors.Is(err, ErrSealed) {
		t.Fatalf("Writer on a sealed queue: %v, want ErrSealed", err)
	}
	tr := qsReadAll(t, q)
	if tr[1] != 3 || tr[2] != 2 || tr[3] != 101 || len(tr) != 3 {
		t.Fatalf("frames per writer %v", tr)
	}
	// Queue.Close closes the shared writers.
	q2 := qsOpen(t, filepath.Join(t.TempDir(), "q2"), 4096)
	w5 := qsWriter(t, q2)
	shAppend(t, w5, 1, 0, 1)
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w5.Allocate(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Allocate after Queue.Close: %v, want ErrClosed", err)
	}
}

// TestQueueSharedTags: tagged commits of shared writers, straddling rolls, leave Queue.CommitTag
// naming the last one.
func TestQueueSharedTags(t *testing.T) {
	q := qsOpen(t, filepath.Join(t.TempDir(), "q"), 4096)
	a, b := qsWriter(t, q), qsWriter(t, q)
	seq := map[uint32]uint64{}
	for i := range uint64(200) {
		w, id := a, uint32(1)
		if i%3 == 0 {
			w, id = b, 2
		}
		k := int(1 + xpMix(i)%90)
		for j := range k {
			p, err := w.Allocate(shSize(id, seq[id]+uint64(j)))
			if err != nil {
				t.Fatal(err)
			}
			shFill(p, id, seq[id]+uint64(j))
		}
		seq[id] += uint64(k)
		if err := w.CommitTagged(i); err != nil {
			t.Fatal(err)
		}
		if tag, ok, err := q.CommitTag(); err != nil || !ok || tag != i {
			t.Fatalf("commit %d: CommitTag %d, %v, %v", i, tag, ok, err)
		}
	}
	if err := a.Commit(); err != nil { // nothing allocated: no change
		t.Fatal(err)
	}
	shAppend(t, a, 1, seq[1], 1)
	if _, ok, err := q.CommitTag(); ok || err != nil {
		t.Fatalf("after an untagged commit: ok %v, %v", ok, err)
	}
	tr := qsReadAll(t, q)
	if tr[1] != seq[1]+1 || tr[2] != seq[2] {
		t.Fatalf("frames %v, want %v (+1)", tr, seq)
	}
	if res, err := q.Verify(); err != nil || res.Segments < 10 {
		t.Fatalf("Verify: %+v, %v", res, err)
	}
}

// TestQueueSharedCloseMidRoll: a writer closed with a commit that straddles rolls (segments
// left behind, locked, frames allocated in each) publishes nothing, says so, and leaves the
// locks free: another writer goes on at the committed end, and the queue verifies.
func TestQueueSharedCloseMidRoll(t *testing.T) {
	q := qsOpen(t, filepath.Join(t.TempDir(), "q"), 4096)
	a, b := qsWriter(t, q), qsWriter(t, q)
	shAppend(t, a, 1, 0, 10)
	for i := range uint64(200) { // about 3 segments' worth
		p, err := a.Allocate(shSize(1, 10+i))
		if err != nil {
			t.Fatal(err)
		}
		shFill(p, 1, 10+i)
	}
	if len(a.pending) < 2 {
		t.Fatalf("%d segments pending: want a commit straddling rolls", len(a.pending))
	}
	if err := a.Close(); !errors.Is(err, ErrUncommitted) {
		t.Fatalf("Close: %v, want ErrUncommitted", err)
	}
	if tr := qsReadAll(t, q); tr[1] != 10 {
		t.Fatalf("%d frames of the closed writer visible, want the 10 committed", tr[1])
	}
	shAppend(t, b, 2, 0, 300) // rolls over the segments the closed writer made
	if tr := qsReadAll(t, q); tr[1] != 10 || tr[2] != 300 {
		t.Fatalf("frames %v", tr)
	}
	if _, err := q.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestQueueSharedRetentionByAge: a policy with an age removes sealed segments once they are old
// enough even when no writer seals another one meanwhile.
func TestQueueSharedRetentionByAge(t *testing.T) {
	q, err := OpenQueue(QueueOptions{Dir: filepath.Join(t.TempDir(), "q"), Writable: true, SegmentSize: 4096,
		Retention: RetentionPolicy{MaxAge: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w := qsWriter(t, q)
	shAppend(t, w, 1, 0, 400) // several segments, then nothing more
	deadline := time.Now().Add(time.Minute)
	for {
		segs, err := q.Segments()
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) == 1 && !segs[0].Sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d segments still there a minute later", len(segs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
