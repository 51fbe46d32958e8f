package shmio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio/internal/flock"
)

// QueueWriter appends frames to a queue: the same methods as Writer. There is at most one per
// queue across all processes (an flock on writer.lock, and each segment's own writer lock);
// Queue.SharedWriter lets many write together instead.
// A QueueWriter is for one goroutine at a time.
//
// Rolling: when a frame does not fit in the current segment, Allocate moves to the next one,
// prepared in the background. Commit publishes every frame allocated since the last Commit;
// frames allocated before a roll are published by sealing their segment first, so a batch
// that straddles a roll becomes visible segment by segment (readers cannot see a later segment's
// frames before an earlier one's), and nothing is visible before Commit.
type QueueWriter struct {
	q       *Queue
	lock    *os.File
	cur     *wseg
	sw      *Writer // cur.w: the hot path
	pending []*wseg // earlier segments holding allocated, uncommitted frames; oldest first
	seg     int64   // cur.num, kept after Close
	closed  bool
	ended   bool // Seal ended the queue
	stats   RollStats

	ahead []*prepFuture      // segments being prepared or ready, in order, each by its own goroutine
	bg    chan []*prepFuture // preparations for the background goroutine to start
	futs  []*prepFuture      // collected by prepareAhead, sent by flush as one message (one wake-up)

	// Sealed segments the writer is done with, for the background goroutine to retire. The
	// writer appends here without waking it: it takes them at its next wake-up (see roll).
	retMu sync.Mutex
	retQ  []retired

	// Sealed segments not yet removed, oldest first, for the background retention pass: it
	// then costs no directory scan however many segments there are. Only kept with a policy.
	segMu  sync.Mutex
	sealed []segHeader

	// Removed segments kept for reuse (see recycle), renamed out of sight and locked.
	poolMu   sync.Mutex
	pool     []recycledSeg
	kept     map[int64]*Log // mappings of sealed segments, for recycling
	recycled atomic.Int64
	stop     chan struct{}
	bgDone   sync.WaitGroup
}

// RollStats counts the writer's rolls and how long they kept Allocate.
type RollStats struct {
	Rolls     int64         // segments the writer moved past
	Stalls    int64         // rolls that had to wait for (or make) the next segment themselves
	Recycled  int64         // segments made from the files of removed ones
	TotalTime time.Duration // time spent in rolls, inside Allocate
	MaxTime   time.Duration // the longest roll
}

// wseg is a segment open for writing.
type wseg struct {
	num int64
	log *Log
	w   *Writer
	id  uint64
}

// queueTestHook, when set by a test, is called at each stage of a roll and at the writer's
// recovery, so that a test can kill the process exactly there.
var queueTestHook func(stage string)

func testHook(stage string) {
	if h := queueTestHook; h != nil {
		h(stage)
	}
}

// Writer opens the queue's single writer. Opening recovers from a writer that died, however it
// died: stale temporary files are removed, the writer resumes in the first unsealed segment at
// its committed end, and segments after it (prepared ahead, nothing committed) are removed.
// ErrReadOnly unless the queue was opened Writable; ErrLocked while another writer is open.
func (q *Queue) Writer() (*QueueWriter, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		return nil, newError("writer", q.dir, -1, ErrClosed)
	}
	if !q.opts.Writable {
		return nil, newError("writer", q.dir, -1, ErrReadOnly)
	}
	if q.writer != nil {
		return nil, errorf("writer", q.dir, -1, ErrLocked, "this Queue already has an open writer")
	}
	if q.shared != nil {
		return nil, errorf("writer", q.dir, -1, ErrLocked, "this Queue has shared writers open")
	}
	lf, err := q.openLockFile()
	if err != nil {
		return nil, err
	}
	switch err := flock.TryLock(int(lf.Fd())); {
	case errors.Is(err, flock.ErrWouldBlock):
		lf.Close()
		return nil, q.lockedError("writer")
	case err != nil:
		lf.Close()
		return nil, newError("writer", q.dir, -1, fmt.Errorf("flock: %w", err))
	}
	w := &QueueWriter{q: q, lock: lf, sw: closedSegWriter}
	if err := w.recover(); err != nil {
		w.closeSegs()
		flock.Unlock(int(lf.Fd()))
		lf.Close()
		return nil, err
	}
	if err := q.writeMeta(); err != nil {
		w.closeSegs()
		flock.Unlock(int(lf.Fd()))
		lf.Close()
		return nil, err
	}
	w.bg = make(chan []*prepFuture, 64)
	w.stop = make(chan struct{})
	w.bgDone.Add(1)
	go w.background()
	w.prepareAhead()
	w.flush()
	q.writer = w
	return w, nil
}

func permOr600(m os.FileMode) os.FileMode {
	if m = m.Perm(); m == 0 {
		return 0o600
	}
	return m
}

func (s *wseg) close() {
	s.w.Close()
	s.log.Close()
}

// Allocate reserves a frame of n payload bytes, rolling to the next segment when the current one
// cannot hold it; see Writer.Allocate. A roll that cannot get its next segment (a full
// filesystem, say) returns an error wrapping ErrFull and the cause; the frames committed so far
// and the allocated ones stay as they were, and a later Allocate tries again.
func (w *QueueWriter) Allocate(n int) ([]byte, error) {
	// The segment writer's fast path, inlined: a queue frame costs what a log frame costs.
	if p := w.sw.place(n); p != nil {
		return p, nil
	}
	return w.allocateSlow(n)
}

// closedSegWriter stands for the segment writer once the QueueWriter is closed, so that the fast
// path needs no nil check: its place always declines.
var closedSegWriter = &Writer{}

// Append allocates a frame of len(p) bytes and copies p into it.
func (w *QueueWriter) Append(p []byte) error {
	b, err := w.Allocate(len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Commit publishes every frame allocated since the last Commit and wakes sleeping readers.
func (w *QueueWriter) Commit() error {
	if w.closed {
		return newError("commit", w.q.dir, -1, ErrClosed)
	}
	if len(w.pending) > 0 {
		if err := w.sealPending(); err != nil {
			return err
		}
	}
	return w.sw.Commit()
}

// CommitTagged commits like Commit and stores tag with the new end, as Writer.CommitTagged;
// Queue.CommitTag reads it back. A tag names the batch's last frame, so it is stored only with
// the commit that makes that frame visible, in the current segment: the final commits of
// earlier segments the batch straddles keep the tag their end had before (see carryTag), and a
// kill between the commits leaves a tag that claims less than what is committed, never more.
func (w *QueueWriter) CommitTagged(tag uint64) error {
	if w.closed {
		return newError("commit", w.q.dir, -1, ErrClosed)
	}
	if len(w.pending) > 0 {
		if err := w.sealPending(); err != nil {
			return err
		}
		testHook("commit-between")
	}
	return w.sw.CommitTagged(tag)
}

// Sync flushes committed frames to storage (msync of the current and pending segments).
func (w *QueueWriter) Sync() error {
	if w.closed {
		return newError("sync", w.q.dir, -1, ErrClosed)
	}
	for _, s := range w.pending {
		if err := s.w.Sync(); err != nil {
			return err
		}
	}
	return w.sw.Sync()
}

// Segment returns the number of the segment being written.
func (w *QueueWriter) Segment() int64 { return w.seg }

// Stats returns the roll statistics since the writer opened.
func (w *QueueWriter) Stats() RollStats {
	st := w.stats
	st.Recycled = w.recycled.Load()
	return st
}

// Close releases the writer. Uncommitted frames are discarded; a prepared segment stays for the
// next writer to remove or use.
func (w *QueueWriter) Close() error {
	w.q.mu.Lock()
	defer w.q.mu.Unlock()
	if w.closed {
		return newError("close writer", w.q.dir, -1, ErrClosed)
	}
	return w.closeLocked()
}

func (w *QueueWriter) closeLocked() error {
	w.closed = true
	w.flush()
	close(w.stop)
	w.bgDone.Wait()
	for _, f := range w.ahead {
		<-f.done
		if f.seg != nil {
			f.seg.close()
		}
	}
	w.ahead = nil
	w.dropPool()
	w.closeSegs()
	w.q.writer = nil
	err := flock.Unlock(int(w.lock.Fd()))
	w.lock.Close()
	if err != nil {
		return newError("close writer", w.q.dir, -1, fmt.Errorf("unlock: %w", err))
	}
	return nil
}

func (w *QueueWriter) closeSegs() {
	for _, s := range w.pending {
		s.close()
	}
	w.pending = nil
	if w.cur != nil {
		w.cur.close()
	}
	w.cur, w.sw = nil, closedSegWriter
}
