package shmio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/shmio/shmio/internal/flock"
)

var _ FrameWriter = (*QueueSharedWriter)(nil)

// QueueSharedWriter appends frames to a queue that other shared writers, in this and other
// processes, append to at the same time (FORMAT.md, "Shared writers on queues"). Each Commit's
// frames are contiguous (no other writer's frame between them) and commits of different writers
// are ordered; readers, named readers and retention see one queue and need no change. A
// QueueSharedWriter is for one goroutine at a time; open one per goroutine.
//
// Appending is Log.SharedWriter's on the head segment: the first Allocate of a commit takes the
// segment's append lock, and Commit publishes and releases it. The writer holding the lock when
// a frame does not fit rolls the queue: it makes (or finds) the next segment, takes that
// segment's lock too and goes on there; the segment left behind is sealed at Commit, with its
// frames. So nothing is visible before Commit, and a commit that straddles a roll becomes
// visible segment by segment, as with QueueWriter. Other writers wait from a commit's first
// Allocate to its Commit. A writer killed at any point, in a roll too, publishes nothing it had
// not committed, and the next writer to take the lock finishes or redoes its roll.
//
// The writer that rolls links its process's spare segment into place (made in the background,
// from a segment retention let go when nobody maps it, else from fresh memory), or creates the
// next segment itself; its process applies the retention policy in the background after a seal.
type QueueSharedWriter struct {
	qs      *queueShared
	hot     *Writer // the held segment's writer (Allocate's fast path), else closedSegWriter
	cur     qsSeg   // the segment this writer appends to (or last appended to)
	pending []qsSeg // earlier segments, still locked, holding this commit's first frames
	closed  bool
}

// qsSeg is one segment as a writer uses it: the process's mapping and this writer's own
// SharedWriter on it (holding the segment's lock between a commit's first Allocate and Commit).
type qsSeg struct {
	e  *qsLog
	sw *SharedWriter
}

func (s qsSeg) held() bool { return s.sw.w != nil }

// queueShared is a Queue's side of shared writing: the shared flock on writer.lock (which the
// exclusive QueueWriter's exclusive one excludes) and the segments its writers have open, one
// mapping per segment for the whole process, so that its writers share the segment's token.
type queueShared struct {
	q       *Queue
	lock    *os.File
	writers map[*QueueSharedWriter]struct{} // under q.mu
	bg      sync.WaitGroup                  // background work (queue_shared_prep.go) and unmapping
	tick    sync.WaitGroup                  // the ticker (queue_shared_prep.go)
	stop    chan struct{}                   // closed when the last writer closes

	mu      sync.Mutex // guards what follows
	segs    map[int64]*qsLog
	pool    map[fileKey]pooled // segment files still mapped, for reuse (queue_shared_prep.go)
	poolSeq uint64
	spares  []spareSeg // see queue_shared_prep.go
	busy    bool       // the background goroutine runs
	again   bool       // and is to run once more
	making  bool       // a spare of fresh memory is being made (makeSpare)
	warmed  bool       // see warm
	noSpare bool       // unnamed files cannot be made or linked here
	misses  int        // rolls of this process that found no spare (see background)
	closing bool
}

// qsLog is a segment mapped for this process's shared writers. anchor keeps the Log's
// shared-writer state (its token and descriptor) open while any writer uses the segment.
type qsLog struct {
	num    int64
	id     uint64
	log    *Log
	anchor *SharedWriter
	refs   int
}

// SharedWriter opens a writer that shares the queue with other shared writers, in any process
// (see QueueSharedWriter). It returns ErrReadOnly unless the queue was opened Writable, ErrLocked
// while an exclusive QueueWriter (in any process) has the queue, naming the mode of the writers
// that hold it, and ErrSealed on a sealed queue. While shared writers are open, Queue.Writer
// returns ErrLocked.
func (q *Queue) SharedWriter() (*QueueSharedWriter, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed.Load():
		return nil, newError("shared writer", q.dir, -1, ErrClosed)
	case !q.opts.Writable:
		return nil, newError("shared writer", q.dir, -1, ErrReadOnly)
	case q.writer != nil:
		return nil, errorf("shared writer", q.dir, -1, ErrLocked, "this Queue has the exclusive writer open")
	}
	qs := q.shared
	if qs == nil {
		lf, err := q.openLockFile()
		if err != nil {
			return nil, err
		}
		switch err := flock.TryLockShared(int(lf.Fd())); {
		case errors.Is(err, flock.ErrWouldBlock):
			lf.Close()
			return nil, q.lockedError("shared writer")
		case err != nil:
			lf.Close()
			return nil, newError("shared writer", q.dir, -1, fmt.Errorf("flock: %w", err))
		}
		qs = &queueShared{q: q, lock: lf, segs: map[int64]*qsLog{}, pool: map[fileKey]pooled{}, writers: map[*QueueSharedWriter]struct{}{}, stop: make(chan struct{})}
		removeStaleTemps(q.dir) // spares of dead processes (queue_shared_prep.go)
		if err := q.writeMeta(); err != nil {
			qs.closeLocked()
			return nil, err
		}
	}
	w := &QueueSharedWriter{qs: qs, hot: closedSegWriter}
	err := w.attachHead(1)
	if err == nil && q.sealedAt(w.cur.e.num) {
		w.detach(w.cur)
		err = errorf("shared writer", q.dir, -1, ErrSealed, "the queue was sealed (its last segment, %d, is sealed)", w.cur.e.num)
	}
	if err != nil {
		if len(qs.writers) == 0 {
			qs.closeLocked()
		}
		return nil, err
	}
	if q.shared == nil {
		qs.ticker()
	}
	q.shared = qs
	qs.writers[w] = struct{}{}
	qs.kick()
	return w, nil
}

// lockedError is ErrLocked naming the mode of the writers that hold the queue's writer.lock.
func (q *Queue) lockedError(op string) error {
	switch mode, pid := flock.Mode(filepath.Join(q.dir, lockFile)); mode {
	case "exclusive":
		return errorf(op, q.dir, -1, ErrLocked, "an exclusive writer holds it (pid %d); shared writers must wait for it to close", pid)
	case "shared":
		return errorf(op, q.dir, -1, ErrLocked, "shared writers hold it (pid %d among them); open a SharedWriter to write beside them", pid)
	}
	return newError(op, q.dir, -1, ErrLocked)
}

// attachHead makes the head segment (the first unsealed one at or after from) this writer's.
func (w *QueueSharedWriter) attachHead(from int64) error {
	q := w.qs.q
	var err error
	for range 10 { // retention removes sealed segments as we look
		var head int64
		if head, err = q.findHead(from); err != nil {
			return err
		}
		var s qsSeg
		if s, err = w.qs.attach(head, false); err == nil {
			if w.cur.sw != nil {
				w.detach(w.cur)
			}
			w.cur = s
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// attach opens segment num for a writer (creating it when create is set: a roll).
func (qs *queueShared) attach(num int64, create bool) (qsSeg, error) {
	e, err := qs.get(num, create)
	if err != nil {
		return qsSeg{}, err
	}
	sw, err := e.log.SharedWriter()
	if err != nil {
		qs.put(e)
		return qsSeg{}, err
	}
	return qsSeg{e, sw}, nil
}

// detach closes a writer's SharedWriter on a segment (discarding what it did not commit and
// releasing the lock) and drops its reference.
func (w *QueueSharedWriter) detach(s qsSeg) error {
	err := s.sw.Close()
	w.qs.put(s.e)
	return err
}

// get maps segment num for this process, or shares the mapping its writers have. A segment that
// records another number (damaged) is refused; a missing one is fs.ErrNotExist unless create.
func (qs *queueShared) get(num int64, create bool) (*qsLog, error) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if e := qs.segs[num]; e != nil {
		e.refs++
		return e, nil
	}
	q := qs.q
	if num > maxSegNum {
		return nil, errorf("roll", q.dir, -1, ErrFull, "segment numbers exhausted (%d)", num)
	}
	opts := Options{Path: q.segPath(num), Writable: true, DebugChecks: q.debug}
	var l *Log
	var err error
	if create {
		// The spare is linked into place, or Open creates atomically (a full file linked into
		// place): racing rollers end with one file, the loser opening it.
		opts.Capacity, opts.Mode = q.segSize, q.opts.Mode
		if l = qs.takeSpare(num); l == nil {
			qs.misses++
			// Populated at once: this writer fills it next, holding the lock, and faulting
			// page by page costs about twice as much.
			opts.Prefault = q.opts.Prefault
			l, err = Open(opts)
		}
	} else {
		opts.Prefault = q.opts.Prefault
		var f *os.File
		if f, err = openExisting(opts.Path, true); err == nil {
			// A file this process mapped before (recycled since, under another number) comes
			// back with its page tables: no mmap, no faults.
			if l = qs.takePooled(f, opts.Path); l != nil {
				f.Close()
			} else if l, err = mapLog(f, opts); err != nil {
				f.Close()
			}
		}
	}
	if err != nil {
		return nil, err
	}
	l.private = true // only this queue uses it: Close unmaps at once
	if l.lo.nodeFormat {
		l.Close()
		return nil, errorf("shared writer", opts.Path, -1, ErrBadHeader, "segment %d was not made by a shmio-go queue", num)
	}
	// The lock readers hold: retention recycles no segment a writer maps either.
	if !segReadLock(l.file) {
		l.Close()
		return nil, &fs.PathError{Op: "open", Path: opts.Path, Err: fs.ErrNotExist}
	}
	if s := l.word64(offSegNum).Load(); s != 0 && s != uint64(num) {
		l.Close()
		return nil, q.misnumbered(num)
	}
	anchor, err := l.SharedWriter()
	if err != nil {
		l.Close()
		if errors.Is(err, ErrLocked) && !segExists(opts.Path) {
			return nil, &fs.PathError{Op: "open", Path: opts.Path, Err: fs.ErrNotExist} // removed meanwhile
		}
		return nil, err
	}
	e := &qsLog{num: num, id: l.Header().ID, log: l, anchor: anchor, refs: 1}
	qs.segs[num] = e
	return e, nil
}

func (qs *queueShared) put(e *qsLog) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(qs.segs, e.num)
		qs.bg.Add(1)
		go func() { // unmapping a segment costs about as much as mapping it: not in Commit
			defer qs.bg.Done()
			e.anchor.Close()
			qs.keep(e)
			qs.pruneKept() // files retention removed since: their memory goes with the mapping
		}()
	}
}

// closeLocked releases the shared flock once no writer is left; q.mu is held.
func (qs *queueShared) closeLocked() error {
	qs.mu.Lock()
	qs.closing = true
	qs.mu.Unlock()
	close(qs.stop)
	qs.tick.Wait()
	qs.bg.Wait()
	qs.mu.Lock()
	qs.dropSpares()
	for _, p := range qs.pool {
		p.l.Close()
	}
	qs.pool = nil
	qs.mu.Unlock()
	err := flock.Unlock(int(qs.lock.Fd()))
	qs.lock.Close()
	if qs.q.shared == qs {
		qs.q.shared = nil
	}
	if err != nil {
		return newError("close writer", qs.q.dir, -1, fmt.Errorf("unlock: %w", err))
	}
	return nil
}

// Allocate reserves a frame of n payload bytes and returns its payload to fill in place before
// Commit, as QueueWriter.Allocate does. The first Allocate of a commit waits for the head
// segment's lock; a frame that does not fit rolls the queue (see QueueSharedWriter). A roll that
// cannot make the next segment returns an error wrapping ErrFull and the cause, leaving the
// allocated frames as they were. ErrSealed once the queue is sealed, ErrLocked if a lock stays
// held by a live process far beyond any commit's time (a damaged header).
func (w *QueueSharedWriter) Allocate(n int) ([]byte, error) {
	if p := w.hot.place(n); p != nil {
		return p, nil
	}
	return w.allocateSlow(n)
}

// Append allocates a frame of len(p) bytes and copies p into it.
func (w *QueueSharedWriter) Append(p []byte) error {
	b, err := w.Allocate(len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Commit publishes every frame allocated since the last Commit (sealing the segments a roll left
// behind first, oldest first) and releases the locks.
func (w *QueueSharedWriter) Commit() error {
	if w.closed {
		return newError("commit", w.qs.q.dir, -1, ErrClosed)
	}
	if len(w.pending) > 0 {
		if err := w.sealPending(); err != nil {
			return err
		}
	}
	w.hot = closedSegWriter
	return w.cur.sw.Commit()
}

// CommitTagged commits like Commit and stores tag with the new end (see
// QueueWriter.CommitTagged; Queue.CommitTag reads it back). The tag is the queue's: the last
// tagged commit of any writer names it. With nothing allocated it tags the current end.
func (w *QueueSharedWriter) CommitTagged(tag uint64) error {
	if w.closed {
		return newError("commit", w.qs.q.dir, -1, ErrClosed)
	}
	if len(w.pending) > 0 {
		if err := w.sealPending(); err != nil {
			return err
		}
		testHook("commit-between")
	}
	w.hot = closedSegWriter
	for {
		err := w.cur.sw.CommitTagged(tag)
		if !errors.Is(err, ErrSealed) || w.cur.held() {
			return err
		}
		if err := w.moveOn(); err != nil {
			return err
		}
	}
}

// Sync flushes committed frames to storage (msync of the segments this writer holds or last
// wrote).
func (w *QueueSharedWriter) Sync() error {
	if w.closed {
		return newError("sync", w.qs.q.dir, -1, ErrClosed)
	}
	for _, s := range w.pending {
		if err := s.sw.Sync(); err != nil {
			return err
		}
	}
	return w.cur.sw.Sync()
}

// Segment returns the number of the segment this writer appends to (or last appended to).
func (w *QueueSharedWriter) Segment() int64 { return w.cur.e.num }

// Close closes the writer. Like QueueWriter.Close it does not commit: frames allocated since the
// last Commit are discarded (and the locks released), and Close then returns an error wrapping
// ErrUncommitted. The last shared writer of the Queue releases its share of writer.lock.
func (w *QueueSharedWriter) Close() error {
	q := w.qs.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.closed {
		return newError("close writer", q.dir, -1, ErrClosed)
	}
	return w.closeLocked()
}

func (w *QueueSharedWriter) closeLocked() error {
	w.closed = true
	w.hot = closedSegWriter
	var errs []error
	errs = append(errs, w.detach(w.cur)) // newest first: nothing of this commit was published
	for i := len(w.pending) - 1; i >= 0; i-- {
		errs = append(errs, w.detach(w.pending[i]))
	}
	w.pending = nil
	qs := w.qs
	delete(qs.writers, w)
	if len(qs.writers) == 0 {
		errs = append(errs, qs.closeLocked())
	}
	for _, err := range errs {
		if errors.Is(err, ErrUncommitted) {
			return errorf("close writer", qs.q.dir, -1, ErrUncommitted, "frames allocated after the last Commit were discarded")
		}
	}
	return errors.Join(errs...)
}

// closeAll closes every shared writer of the queue (Queue.Close); q.mu is held.
func (qs *queueShared) closeAll() error {
	var errs []error
	for w := range qs.writers {
		if err := w.closeLocked(); err != nil && !errors.Is(err, ErrUncommitted) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
