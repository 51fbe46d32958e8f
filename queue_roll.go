package shmio

import (
	"time"
)

// Rolling: moving the writer to the next segment when a frame does not fit, and sealing the
// one it leaves once everything in it is committed.

func (w *QueueWriter) allocateSlow(n int) ([]byte, error) {
	if w.closed || w.q.closed.Load() {
		return nil, newError("allocate", w.q.dir, -1, ErrClosed)
	}
	if w.ended {
		return nil, errorf("allocate", w.q.dir, -1, ErrSealed, "the queue was sealed")
	}
	sw := w.sw
	if n <= 0 || n > sw.maxLen || n+sw.overhead <= sw.capacity-sw.end {
		return sw.Allocate(n) // not a matter of space: let the segment's writer explain
	}
	if n+sw.overhead > int(w.q.segSize)-goHeaderSize {
		return nil, errorf("allocate", w.q.dir, -1, ErrFrameTooLarge, "%d bytes cannot fit even in an empty segment of %d bytes", n, w.q.segSize)
	}
	if err := w.roll(); err != nil {
		return nil, err
	}
	return w.sw.Allocate(n)
}

// roll moves to the next segment. The current one is sealed now if everything in it is
// committed, else at the next Commit (it joins pending).
func (w *QueueWriter) roll() error {
	start := time.Now()
	want := w.cur.num + 1
	var next *wseg
	stalled := false
	if len(w.ahead) > 0 && w.ahead[0].num == want {
		f := w.ahead[0]
		select {
		case <-f.done:
		default:
			stalled = true
			<-f.done
		}
		w.ahead = w.ahead[1:]
		next = f.seg
	}
	if next == nil {
		// Preparing it failed (or was not started): try here, so the caller gets the reason
		// and a freed filesystem is noticed at once. Segments prepared after it may hold the
		// very space it lacks (the filesystem filled up while they were made): nothing is or
		// can be published in them yet, so give them back first.
		w.discardAhead()
		stalled = true
		var err error
		if next, err = w.prepare(want); err != nil {
			return errorf("roll", w.q.dir, -1, ErrFull, "cannot make segment %d: %w", want, err)
		}
	}
	testHook("roll-got-next")
	old := w.cur
	next.log.word64(offSegPrevID).Store(old.id)
	// Every frame of old is allocated now: its final size, for cursors stored at its end (see
	// seekTo) once it is gone.
	next.log.word64(offSegPrevEnd).Store(uint64(old.w.endCursor()))
	carryTag(old, next)
	if old.w.uncommitted() {
		w.pending = append(w.pending, old)
	} else if err := w.seal(old); err != nil {
		next.close() // stays on disk, empty: the next roll or writer takes it
		return err
	}
	w.setCur(next)
	// Hand work to the background in batches, when half the segments prepared ahead are used:
	// each hand-off wakes an idle core, which costs the writer most of a roll (about 6 µs here,
	// against 1.5 µs for the rest). The retirements since the last batch go with it.
	if len(w.ahead) <= w.q.prepareDepth()/2 {
		w.prepareAhead()
		w.flush()
	}
	testHook("roll-done")
	d := time.Since(start)
	w.stats.Rolls++
	if stalled {
		w.stats.Stalls++
	}
	w.stats.TotalTime += d
	w.stats.MaxTime = max(w.stats.MaxTime, d)
	return nil
}

// seal dates, seals and retires a segment whose frames are all allocated.
func (w *QueueWriter) seal(s *wseg) error {
	if err := s.commitKeepingTag(); err != nil {
		return err
	}
	s.log.word64(offSegSealedAt).Store(uint64(time.Now().UnixNano()))
	testHook("seal-before")
	if err := s.w.Seal(); err != nil {
		return err
	}
	testHook("seal-after")
	r := retired{s, segHeader{num: s.num, fileSize: s.log.fileSize(), sealed: true,
		committed: s.w.committedCursor(), sealedAt: int64(s.log.word64(offSegSealedAt).Load())}}
	w.retMu.Lock()
	w.retQ = append(w.retQ, r)
	w.retMu.Unlock()
	return nil
}

// sealPending publishes the frames of segments left behind by rolls, oldest first.
func (w *QueueWriter) sealPending() error {
	for len(w.pending) > 0 {
		if err := w.seal(w.pending[0]); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	w.pending = nil
	return nil
}
