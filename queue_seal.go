package shmio

import "time"

// Seal ends the queue: it commits the frames allocated so far, removes the segments prepared
// ahead and seals the last segment, so that no frame will ever follow (a queue is sealed when its
// last segment is). Iterators that have read everything get ErrSealed from Wait, and Next returns
// nil; Queue.Writer refuses the queue from then on (ErrSealed), and this writer's Allocate too.
// Close the writer afterwards as usual.
func (w *QueueWriter) Seal() error {
	if w.closed {
		return newError("seal", w.q.dir, -1, ErrClosed)
	}
	if w.ended {
		return nil
	}
	if err := w.Commit(); err != nil {
		return err
	}
	// Nothing may appear after the last segment: hand the collected preparations to the
	// background (so that each one finishes) and remove every prepared segment.
	w.flush()
	w.discardAhead()
	s := w.cur
	s.log.word64(offSegSealedAt).Store(uint64(time.Now().UnixNano()))
	if err := s.w.Seal(); err != nil {
		return err
	}
	w.ended = true
	w.sw = closedSegWriter // Allocate takes its slow path, which refuses
	return nil
}

// sealedAt reports whether the queue ends at segment n: n is sealed and no later segment
// exists (QueueWriter.Seal). A roll makes the next segment before it seals the last one.
func (q *Queue) sealedAt(n int64) bool {
	h, err := q.segHeader(n)
	if err != nil || !h.sealed {
		return false
	}
	nums, err := q.listSegments()
	return err == nil && len(nums) > 0 && nums[len(nums)-1] == n
}
