package shmio

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// Shared writers' rolls (FORMAT.md, "Shared writers on queues"): the writer holding the head
// segment's lock moves the queue to the next segment; every step is redone, harmlessly, by the
// next holder if the roller dies.

func (w *QueueSharedWriter) allocateSlow(n int) ([]byte, error) {
	q := w.qs.q
	if w.closed || q.closed.Load() {
		return nil, newError("allocate", q.dir, -1, ErrClosed)
	}
	switch {
	case n <= 0:
		return nil, errorf("allocate", q.dir, -1, ErrEmptyFrame, "got %d", n)
	case n > q.MaxPayload():
		return nil, errorf("allocate", q.dir, -1, ErrFrameTooLarge, "%d bytes cannot fit even in an empty segment of %d bytes", n, q.segSize)
	}
	for {
		if !w.cur.held() {
			err := w.cur.sw.acquire("allocate")
			if errors.Is(err, ErrSealed) {
				if err := w.moveOn(); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, err
			}
			// The first segment is stamped right after it is made; a process killed in
			// between left 0 (as QueueWriter.recover).
			if seg := w.cur.e.log.word64(offSegNum); seg.Load() == 0 {
				seg.CompareAndSwap(0, uint64(w.cur.e.num))
			}
		}
		sw := w.cur.sw.w
		p, err := sw.Allocate(n)
		if err == nil {
			w.hot = sw
			return p, nil
		}
		if errors.Is(err, ErrFull) {
			if err = w.roll(); err == nil {
				continue
			}
		}
		w.releaseIfEmpty()
		return nil, err
	}
}

// releaseIfEmpty lets the others in when this writer holds a lock with nothing allocated.
func (w *QueueSharedWriter) releaseIfEmpty() {
	if len(w.pending) == 0 && w.cur.held() && !w.cur.sw.w.uncommitted() {
		w.hot = closedSegWriter
		w.cur.sw.release(true)
	}
}

// roll moves this writer, holding the head segment's lock, to the next segment: make or find
// it, stamp it, take its lock, carry the commit tag, and then seal the old head, now if nothing
// of it is allocated, else at Commit. Until that seal nobody else can reach the new segment.
func (w *QueueSharedWriter) roll() error {
	q := w.qs.q
	old := w.cur
	num := old.e.num + 1
	next, err := w.qs.attach(num, true)
	if err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrBadHeader) {
			return err
		}
		return errorf("roll", q.dir, -1, ErrFull, "cannot make segment %d: %w", num, err)
	}
	l := next.e.log
	// Nothing is committed after the unsealed head: the segment is new, prepared ahead by an
	// exclusive writer, or left by a roller that died before sealing the head.
	if h := l.Header(); h.Sealed || h.Size != h.DataOffset {
		w.detach(next)
		return errorf("roll", l.path, -1, ErrCorrupt, "segment %d after unsealed segment %d is not empty", num, old.e.num)
	}
	l.word64(offSegNum).Store(uint64(num))
	testHook("roll-got-next")
	l.word64(offSegPrevID).Store(old.e.id)
	l.word64(offSegPrevEnd).Store(uint64(old.sw.w.endCursor())) // every frame of old is allocated
	testHook("roll-stamped")
	if err := next.sw.acquire("roll"); err != nil { // a dead roller's lock is taken over
		w.detach(next)
		return err
	}
	testHook("roll-locked")
	carryTagShared(old, next)
	testHook("roll-carried")
	if old.sw.w.uncommitted() {
		w.pending = append(w.pending, old)
	} else if err := w.sealSeg(old); err != nil {
		w.detach(next)
		return err
	}
	w.cur = next
	// No kick here: the seal's (now, or at Commit) runs retention first, so that the spare for
	// this process's next roll is a recycled file rather than fresh memory made, mapped and
	// faulted in by every process (and another file removed).
	return nil
}

// carryTagShared gives the new segment the tag of the old one's committed end, which the old
// one's final commit keeps (see carryTag), or no tag: it overwrites what a dead roller carried.
func carryTagShared(old, next qsSeg) {
	mem, dataOff := next.e.log.mem, uint64(next.e.log.dataOff())
	u64at(mem, offTag1End).Store(0)
	if tag, ok, err := old.e.log.CommitTag(); err == nil && ok {
		u64at(mem, offTag0Tag).Store(tag)
		u64at(mem, offTag0End).Store(dataOff)
	} else {
		u64at(mem, offTag0End).Store(0)
	}
}

// sealSeg publishes a held segment's allocated frames (keeping its tag), dates and seals it,
// releases its lock and lets go of it. Writers waiting for it then move on to the next segment,
// which the roll made and stamped before.
func (w *QueueSharedWriter) sealSeg(s qsSeg) error {
	l := s.e.log
	if err := (&wseg{num: s.e.num, log: l, w: s.sw.w}).commitKeepingTag(); err != nil {
		return err
	}
	l.word64(offSegSealedAt).Store(uint64(time.Now().UnixNano()))
	testHook("seal-before")
	if err := s.sw.w.Seal(); err != nil {
		return err
	}
	testHook("seal-after")
	s.sw.release(true)
	w.detach(s)
	w.qs.kick() // retention, then the spare for this process's next roll
	return nil
}

// sealPending seals the segments rolls left behind in this commit, oldest first.
func (w *QueueSharedWriter) sealPending() error {
	for len(w.pending) > 0 {
		if err := w.sealSeg(w.pending[0]); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	w.pending = nil
	return nil
}

// moveOn follows the queue from this writer's segment, found sealed, to the head: the next
// segment (a roll makes it before it seals the old one), or, when retention removed that one
// too, the first unsealed segment. A sealed segment with nothing after it ends the queue.
func (w *QueueSharedWriter) moveOn() error {
	q := w.qs.q
	k := w.cur.e.num
	s, err := w.qs.attach(k+1, false)
	if err == nil {
		w.detach(w.cur)
		s.sw.patient = true // its roller holds it, most likely, with others waiting there too
		w.cur = s
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	nums, err := q.listSegments()
	if err != nil {
		return err
	}
	if len(nums) == 0 || nums[len(nums)-1] <= k {
		return errorf("allocate", q.dir, -1, ErrSealed, "the queue was sealed (its last segment, %d, is sealed)", k)
	}
	return w.attachHead(k + 1)
}

// Seal ends the queue: it commits the frames allocated so far, removes the (empty) segments made
// after the head and seals the head, holding its lock, so that no frame will ever follow (see
// QueueWriter.Seal). Every shared writer's later Allocate returns ErrSealed. Sealing a sealed
// queue does nothing.
func (w *QueueSharedWriter) Seal() error {
	q := w.qs.q
	if w.closed {
		return newError("seal", q.dir, -1, ErrClosed)
	}
	if err := w.sealPending(); err != nil {
		return err
	}
	for !w.cur.held() {
		err := w.cur.sw.acquire("seal")
		if errors.Is(err, ErrSealed) {
			if err := w.moveOn(); errors.Is(err, ErrSealed) {
				return nil
			} else if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	w.hot = closedSegWriter
	head := w.cur.e.num
	nums, err := q.listSegments()
	if err != nil {
		w.cur.sw.release(true)
		return err
	}
	for _, n := range nums {
		if n <= head {
			continue
		}
		// Made by a roll that died before sealing the head, or prepared ahead by an exclusive
		// writer: nothing can be committed there while the head is unsealed.
		if h, err := q.segHeader(n); err == nil && (h.sealed || h.committed != 0) {
			w.cur.sw.release(true)
			return errorf("seal", q.segPath(n), -1, ErrCorrupt, "segment %d after unsealed segment %d is not empty", n, head)
		}
		if err := os.Remove(q.segPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.cur.sw.release(true)
			return newError("seal", q.dir, -1, err)
		}
	}
	w.cur.e.log.word64(offSegSealedAt).Store(uint64(time.Now().UnixNano()))
	err = w.cur.sw.w.Seal()
	w.cur.sw.release(true)
	return err
}
