package shmio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// QueueIterator reads a queue's committed frames with one cursor across its segments: the same
// methods as Iterator. At the end of a sealed segment it moves to the next one; Wait wakes for
// frames in the next segment as well; Prev and Seek cross segment boundaries. It is for one
// goroutine at a time.
//
// Frames are slices of a segment's mapping. A frame stays valid while the iterator is in its
// segment or the one after (the iterator keeps the previous segment mapped); once it has moved
// two segments on, or is closed, the frame's memory is gone: copy what you keep longer.
type QueueIterator struct {
	q     *Queue
	spin  time.Duration
	seg   int64
	log   *Log
	it    *Iterator
	prev  *Log // previous segment, kept mapped so that its frames stay valid a while
	prevN int64
	rd    *namedReader

	// Close from another goroutine: stop is set first, then users (methods in flight, see
	// Log.enter) drains before the segments are unmapped. segMu guards log and prev against
	// Close while moveTo swaps them.
	stop  atomic.Bool
	users atomic.Int64
	segMu sync.Mutex

	scratch [][]byte // NextFrames' batch of payloads
	ended   bool     // read to the end of a sealed queue
}

// NewIterator returns an iterator positioned at opts.StartCursor (0: the first frame still
// available; see Queue for the cursor layout). It gives ErrCursor for a cursor in a segment
// that retention removed, naming the first cursor still available.
func (q *Queue) NewIterator(opts IteratorOptions) (*QueueIterator, error) {
	return q.newIterator("", opts)
}

// NamedIterator returns a named reader: an iterator whose cursor lives in
// Dir/readers/NAME.reader, is stored (one atomic store to a small shared mapping, no system call)
// whenever the application asks for more (Next, NextBatch, Wait) or moves (Seek, Prev), and at
// Close; retention keeps every segment the reader has not finished, and Queue.Readers reports its
// lag. Asking for more acknowledges the frames returned before, so after a crash the reader
// resumes at the first frame it had not finished: delivery is at least once. A name that exists
// resumes from its stored cursor and ignores opts.StartCursor; one process at a time may use a
// name (ErrLocked otherwise). Names are 1 to 128 characters of letters, digits, '_', '-' and
// '.', not starting with '.'; the name "" gives an anonymous iterator, as NewIterator.
func (q *Queue) NamedIterator(name string, opts IteratorOptions) (*QueueIterator, error) {
	return q.newIterator(name, opts)
}

func (q *Queue) newIterator(name string, opts IteratorOptions) (*QueueIterator, error) {
	if q.closed.Load() {
		return nil, newError("iterator", q.dir, -1, ErrClosed)
	}
	qi := &QueueIterator{q: q, spin: opts.Spin}
	if qi.spin == 0 {
		qi.spin = DefaultSpin
	}
	start := opts.StartCursor
	if name != "" {
		rd, created, err := q.openNamedReader(name)
		if err != nil {
			return nil, err
		}
		qi.rd = rd
		if !created {
			start = int64(rd.cursor.Load())
		}
	}
	if err := qi.seekTo(start, "iterator"); err != nil {
		qi.rd.close()
		return nil, err
	}
	if err := qi.storeCursorGuarded(); err != nil {
		qi.release()
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		qi.closeLocked()
		return nil, newError("iterator", q.dir, -1, ErrClosed)
	}
	q.iters[qi] = struct{}{}
	return qi, nil
}

// storeCursor publishes a named reader's cursor.
func (qi *QueueIterator) storeCursor() {
	if qi.rd != nil {
		qi.rd.cursor.Store(uint64(qi.cursor()))
	}
}

// storeCursorGuarded is storeCursor outside the iterator's methods.
func (qi *QueueIterator) storeCursorGuarded() (err error) {
	defer qi.guard("iterator", debug.SetPanicOnFault(true), &err)
	qi.storeCursor()
	return nil
}

// enter counts a method in flight, as Log.enter does; false means the iterator is closed.
func (qi *QueueIterator) enter() bool {
	qi.users.Add(1)
	if qi.stop.Load() || qi.q.closed.Load() {
		qi.users.Add(-1)
		return false
	}
	return true
}

func (qi *QueueIterator) leave() { qi.users.Add(-1) }

// guard turns a fault on a segment's mapping (truncated by another process) into
// ErrMappingGone; deferred by every method that reads a mapping.
func (qi *QueueIterator) guard(op string, old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		*err = faultError(r, op, qi.log.Path(), -1)
	}
}

// caughtUp records that a named reader found nothing more to read.
func (qi *QueueIterator) caughtUp() {
	if qi.rd != nil {
		qi.rd.caughtUp.Store(uint64(time.Now().UnixNano()))
	}
}

func (qi *QueueIterator) checkOpen(op string) error {
	if qi.stop.Load() || qi.q.closed.Load() {
		return newError(op, qi.q.dir, -1, ErrClosed)
	}
	return nil
}

// Cursor returns the cursor of the next frame Next would return. At the end of a sealed segment
// that is the start of the next segment.
func (qi *QueueIterator) Cursor() (c int64) {
	if qi.it == nil {
		return 0
	}
	if !qi.enter() {
		return QueueCursor(qi.seg, qi.it.Cursor())
	}
	defer qi.leave()
	c = QueueCursor(qi.seg, qi.it.Cursor())
	var err error
	defer qi.guard("cursor", debug.SetPanicOnFault(true), &err)
	return qi.cursor()
}

// cursor is Cursor for methods already in flight.
func (qi *QueueIterator) cursor() int64 {
	if qi.it == nil {
		return 0
	}
	if qi.it.drainedAtEnd() && qi.log.sealedNow() {
		return QueueCursor(qi.seg+1, 0)
	}
	return QueueCursor(qi.seg, qi.it.Cursor())
}

// moveTo opens segment seg and positions at off (-1: its committed end), keeping the segment it
// leaves mapped as prev.
func (qi *QueueIterator) moveTo(op string, seg, off int64) error {
	if seg == qi.seg && qi.it != nil {
		if off < 0 {
			_, err := qi.it.Seek(0, io.SeekEnd)
			return err
		}
		_, err := qi.it.Seek(off, io.SeekStart)
		return err
	}
	var l *Log
	if seg == qi.prevN && qi.prev != nil {
		qi.segMu.Lock()
		l, qi.prev = qi.prev, nil // going back to the segment we just left
		qi.segMu.Unlock()
	} else {
		var err error
		if l, err = qi.q.openSegment(seg, qi.q.debug); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return qi.q.goneError(op, seg, QueueCursor(seg, max(off, 0)))
			}
			return err
		}
	}
	it, err := l.NewIterator(IteratorOptions{Spin: -1})
	if err == nil {
		if off < 0 {
			_, err = it.Seek(0, io.SeekEnd)
		} else {
			_, err = it.Seek(off, io.SeekStart)
		}
	}
	if err != nil {
		l.Close()
		if errors.Is(err, ErrCursor) {
			return newError(op, qi.q.dir, -1, fmt.Errorf("segment %d: %w", seg, err))
		}
		return err
	}
	qi.segMu.Lock()
	defer qi.segMu.Unlock()
	if qi.stop.Load() {
		// Close is waiting for this method to return: it must not find l.
		l.Close()
		return qi.checkOpen(op)
	}
	if qi.prev != nil {
		qi.prev.Close()
	}
	qi.prev, qi.prevN = qi.log, qi.seg
	qi.log, qi.it, qi.seg = l, it, seg
	return nil
}

// seekTo positions at queue cursor c, validating it.
func (qi *QueueIterator) seekTo(c int64, op string) error {
	if c < 0 {
		return errorf(op, qi.q.dir, -1, ErrCursor, "negative cursor %d", c)
	}
	seg, off := SplitQueueCursor(c)
	if c == 0 {
		// The first segment, unless retention removes it between the listing and the open.
		for tries := 0; ; tries++ {
			first, err := qi.q.firstSegment()
			if err != nil {
				return err
			}
			err = qi.moveTo(op, first, 0)
			if err == nil || tries == 100 || !errors.Is(err, ErrCursor) {
				return err
			}
			if _, serr := qi.q.segHeader(first); !errors.Is(serr, fs.ErrNotExist) {
				return err
			}
		}
	}
	if seg > 1 && seg != qi.seg {
		// The start of a segment is a position only once the one before is sealed: before, the
		// segment is prepared ahead and the position would skip the frames still to come.
		h, err := qi.q.segHeader(seg - 1)
		if err == nil && !h.sealed {
			return errorf(op, qi.q.dir, -1, ErrCursor, "cursor %d is beyond the committed end (segment %d is not sealed)", c, seg-1)
		}
	}
	err := qi.moveTo(op, seg, off)
	if err != nil && off > 0 && errors.Is(err, ErrCursor) && qi.endOfGone(seg, off) {
		// The end of a sealed segment is the start of the next one: a reader that stopped
		// there before the seal stored (seg, end), and retention may have removed seg since.
		return qi.moveTo(op, seg+1, 0)
	}
	return err
}

// endOfGone reports whether off is the final size of segment seg, which no longer exists, as
// recorded in the next segment's header (see offSegPrevEnd).
func (qi *QueueIterator) endOfGone(seg, off int64) bool {
	if _, err := qi.q.segHeader(seg); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	h, err := qi.q.segHeader(seg + 1)
	return err == nil && h.prevEnd == off
}

// advance moves to the next segment if the current one is sealed and read to its end. It
// reports whether the caller should look again.
func (qi *QueueIterator) advance(op string) (bool, error) {
	if !qi.log.Sealed() {
		return false, nil
	}
	// Seal follows the last commit: with the seal seen, the end loaded now is final.
	if qi.it.available() {
		return true, nil
	}
	if err := qi.moveTo(op, qi.seg+1, 0); err != nil {
		if errors.Is(err, ErrCursor) && qi.q.sealedAt(qi.seg) {
			qi.ended = true // a sealed queue (QueueWriter.Seal): no next segment will come
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Next returns the next committed frame, moving across segments, or nil, nil when nothing more
// is committed. A frame in a segment that retention removed gives ErrCursor.
func (qi *QueueIterator) Next() ([]byte, error) {
	if it := qi.it; qi.rd == nil && it.aheadi < len(it.ahead) && !qi.stop.Load() {
		// An anonymous iterator handing out a frame read ahead touches no mapping and nothing
		// Close reads or frees: no need to count itself in flight.
		return it.Next()
	}
	if !qi.enter() {
		return nil, qi.checkOpen("next")
	}
	if it := qi.it; it.aheadi < len(it.ahead) {
		// A frame read ahead by the segment's iterator: neither the cursor (below the committed
		// end) nor the frame needs the mapping, so no fault guard.
		qi.storeCursor()
		f, err := it.Next()
		qi.leave()
		return f, err
	}
	return qi.nextSlow()
}

func (qi *QueueIterator) nextSlow() (_ []byte, err error) {
	defer qi.leave()
	defer qi.guard("next", debug.SetPanicOnFault(true), &err)
	qi.storeCursor()
	for {
		f, err := qi.it.Next()
		if f != nil || err != nil {
			return f, err
		}
		again, err := qi.advance("next")
		if err != nil {
			return nil, err
		}
		if !again {
			qi.caughtUp()
			return nil, nil
		}
	}
}

// NextBatch appends committed frames to dst as Iterator.NextBatch does. A batch holds frames of
// one segment.
func (qi *QueueIterator) NextBatch(dst [][]byte, o BatchOptions) ([][]byte, error) {
	if it := qi.it; qi.rd == nil && it.pos < it.end && !qi.stop.Load() {
		// An anonymous iterator with frames known committed past its cursor reads only the
		// segment's mapping, which Close leaves inaccessible rather than unmapped (see
		// release): a racing read faults into the segment iterator's guard (ErrClosed).
		n := len(dst)
		if dst, err := it.NextBatch(dst, o); len(dst) > n || err != nil {
			return dst, err
		}
	}
	if !qi.enter() {
		return dst, qi.checkOpen("next batch")
	}
	if it := qi.it; it.pos < it.end {
		// Frames known to be committed past the cursor: the cursor needs no mapping, and the
		// segment's NextBatch guards its own reads.
		qi.storeCursor()
		n := len(dst)
		if dst, err := it.NextBatch(dst, o); len(dst) > n || err != nil {
			qi.leave()
			return dst, err
		}
	}
	return qi.nextBatchSlow(dst, o)
}

func (qi *QueueIterator) nextBatchSlow(dst [][]byte, o BatchOptions) (_ [][]byte, err error) {
	defer qi.leave()
	defer qi.guard("next batch", debug.SetPanicOnFault(true), &err)
	qi.storeCursor()
	for {
		n := len(dst)
		dst, err := qi.it.NextBatch(dst, o)
		if len(dst) > n || err != nil {
			return dst, err
		}
		again, err := qi.advance("next batch")
		if err != nil {
			return dst, err
		}
		if !again {
			qi.caughtUp()
			return dst, nil
		}
	}
}

// Prev returns the frame before the cursor and moves back to its start, crossing into earlier
// segments; nil, nil at the first frame still available.
func (qi *QueueIterator) Prev() (_ []byte, err error) {
	if !qi.enter() {
		return nil, qi.checkOpen("prev")
	}
	defer qi.leave()
	defer qi.guard("prev", debug.SetPanicOnFault(true), &err)
	defer qi.storeCursor()
	for {
		f, err := qi.it.Prev()
		if f != nil || err != nil {
			return f, err
		}
		if qi.seg <= 1 {
			return nil, nil
		}
		// At the start of a segment: the previous one, if retention left it.
		err = qi.moveTo("prev", qi.seg-1, -1)
		if errors.Is(err, ErrCursor) {
			if _, statErr := qi.q.segHeader(qi.seg - 1); errors.Is(statErr, fs.ErrNotExist) {
				return nil, nil
			}
		}
		if err != nil {
			return nil, err
		}
	}
}

// End returns the queue cursor of the committed end (a fresh load): Cursor() < End() means frames
// wait to be read. Differences of queue cursors are not byte counts across segments: see
// Queue.Distance.
func (qi *QueueIterator) End() (c int64) {
	if !qi.enter() {
		return qi.Cursor()
	}
	defer qi.leave()
	c = QueueCursor(qi.seg, qi.it.Cursor())
	var err error
	defer qi.guard("end", debug.SetPanicOnFault(true), &err)
	if !qi.log.Sealed() {
		return QueueCursor(qi.seg, qi.it.End())
	}
	c, err = qi.q.endCursor(qi.seg)
	if err != nil {
		return qi.cursor()
	}
	return c
}

// endCursor returns the queue cursor of the committed end, searching from segment from.
func (q *Queue) endCursor(from int64) (int64, error) {
	head, err := q.findHead(from)
	if err != nil {
		return 0, err
	}
	h, err := q.segHeader(head)
	if errors.Is(err, fs.ErrNotExist) {
		// The head is never removed; gone, it was damaged or the queue is being replaced.
		err = errorf("seek", q.segPath(head), -1, ErrCorrupt, "head segment %d vanished", head)
	}
	if err != nil {
		return 0, err
	}
	return QueueCursor(head, h.committed), nil
}

// Seek moves the cursor as io.Seeker does, on queue cursors: io.SeekStart takes a cursor (0: the
// first available frame), io.SeekEnd counts from the committed end and io.SeekCurrent from the
// cursor, both by adding to the packed value, so relative seeks make sense within one segment
// only. The target must be 0, the committed end, or a frame start in an available segment;
// otherwise ErrCursor and the cursor stays.
func (qi *QueueIterator) Seek(offset int64, whence int) (_ int64, err error) {
	if !qi.enter() {
		return qi.Cursor(), qi.checkOpen("seek")
	}
	defer qi.leave()
	defer qi.guard("seek", debug.SetPanicOnFault(true), &err)
	var target int64
	switch whence {
	case io.SeekStart:
		target = offset
	case io.SeekCurrent:
		target = qi.cursor() + offset
	case io.SeekEnd:
		end, err := qi.q.endCursor(qi.seg)
		if err != nil {
			return qi.cursor(), err
		}
		target = end + offset
	default:
		return qi.cursor(), errorf("seek", qi.q.dir, -1, ErrCursor, "bad whence %d", whence)
	}
	if err := qi.seekTo(target, "seek"); err != nil {
		return qi.cursor(), err
	}
	qi.storeCursor()
	return qi.cursor(), nil
}

// All returns the committed frames from the cursor on, across segments, without waiting.
func (qi *QueueIterator) All() iter.Seq2[[]byte, error] { return allFrames(qi.Next) }

// Segment returns the number of the segment the iterator is in.
func (qi *QueueIterator) Segment() int64 { return qi.seg }

// Name returns the reader's name, "" for an anonymous iterator.
func (qi *QueueIterator) Name() string {
	if qi.rd == nil {
		return ""
	}
	return qi.rd.name
}

// Close stores a named reader's cursor, releases the name and unmaps the iterator's segments.
// Frames it returned are invalid afterwards. A method of the iterator running in another
// goroutine (Wait included, which Close wakes) returns ErrClosed; the unmapping waits for it.
func (qi *QueueIterator) Close() error {
	qi.q.mu.Lock()
	defer qi.q.mu.Unlock()
	if qi.stop.Load() || qi.q.closed.Load() {
		return newError("close iterator", qi.q.dir, -1, ErrClosed)
	}
	return qi.closeLocked()
}

// closeLocked closes the iterator; methods in flight in other goroutines return ErrClosed, and
// the segments are unmapped once they have.
func (qi *QueueIterator) closeLocked() error {
	qi.stop.Store(true)
	qi.segMu.Lock()
	for _, l := range [2]*Log{qi.log, qi.prev} {
		if l != nil {
			l.interrupt() // fails their methods and wakes a Wait
		}
	}
	qi.segMu.Unlock()
	drainUsers(qi.users.Load)
	qi.storeCursorGuarded()
	delete(qi.q.iters, qi)
	return qi.release()
}

// release unmaps the iterator's segments and releases its name.
func (qi *QueueIterator) release() error {
	qi.stop.Store(true)
	var errs []error
	if qi.rd != nil {
		errs = append(errs, qi.rd.close())
	}
	// Anonymous iterators read without counting themselves in flight (see NextBatch): their
	// segments get Log.Close's inaccessible placeholder instead of an immediate unmap.
	if qi.prev != nil {
		qi.prev.private = qi.rd != nil
		errs = append(errs, qi.prev.Close())
		qi.prev = nil
	}
	if qi.log != nil {
		qi.log.private = qi.rd != nil
		errs = append(errs, qi.log.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return newError("close iterator", qi.q.dir, -1, err)
	}
	return nil
}
