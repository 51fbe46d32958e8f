package shmio

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"

	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/mmap"
	"golang.org/x/sys/unix"
)

var _ FrameWriter = (*SharedWriter)(nil)

// SharedWriter appends frames to a log that other writers, in this and other processes, append
// to at the same time (FORMAT.md, "Shared writers"). Each Commit's frames are contiguous and
// become visible together; commits of different writers are ordered, and readers see one
// stream and need no change. A SharedWriter is for one goroutine at a time; open one per
// goroutine.
//
// The first Allocate of a commit takes the log's append lock (a word in the header, taken over
// within milliseconds if its holder dies); frames are then allocated and filled in place, with
// the exclusive Writer's code, and Commit publishes them with one atomic store and releases the
// lock. Other writers wait from a commit's first Allocate to its Commit: fill frames promptly,
// and do not keep frames allocated while waiting for something else. A writer that dies at any
// point has published nothing it had not committed, and holds nothing the others need.
type SharedWriter struct {
	log    *Log
	sh     *sharedLog
	w      *Writer // the log's commit state while this writer holds the lock, else nil
	closed bool
	// patient makes the next acquire sleep at once if the word is held (see shareLock.lock):
	// a queue's writers moving on to a new segment find its roller there, with a quantum to run.
	patient bool
}

// sharedLog is a Log's side of shared writing: its own descriptor (holding the shared flock and
// the token's lock), the lock word, and the Writer state that the SharedWriter holding the lock
// uses. The turn is held from a commit's first Allocate to its Commit: the writers of one Log
// contend for the word one at a time.
type sharedLog struct {
	turn     turn
	lock     *shareLock
	w        Writer // the exclusive writer's code, run under the lock
	writers  int    // open SharedWriters (under the Log's mu)
	repaired bool   // stale tag slots were cleared under the lock (under the turn)
	closed   atomic.Bool
	yield    bool // the last release found a request (or woke every sleeper): let them in before taking the word again
}

// SharedWriter opens a writer that shares the log with other shared writers, in any process.
// It returns ErrReadOnly unless the log was opened Writable, ErrLocked while an exclusive Writer
// (in any process) has the log, and an error wrapping errors.ErrUnsupported on a Node-made file
// (its header has no room for the lock). While any shared writer is open, Log.Writer returns
// ErrLocked.
func (l *Log) SharedWriter() (*SharedWriter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed.Load():
		return nil, newError("shared writer", l.path, -1, ErrClosed)
	case !l.writable:
		return nil, newError("shared writer", l.path, -1, ErrReadOnly)
	case l.lo.nodeFormat:
		return nil, newError("shared writer", l.path, -1, fmt.Errorf("shared writers need a file made by shmio-go: %w", errors.ErrUnsupported))
	case l.writer != nil:
		return nil, errorf("shared writer", l.path, -1, ErrLocked, "this Log has the exclusive writer open")
	}
	if l.shared == nil {
		sh, err := openShared(l)
		if err != nil {
			return nil, err
		}
		l.shared = sh
	}
	l.shared.writers++
	return &SharedWriter{log: l, sh: l.shared}, nil
}

// openShared opens the log's file again for this Log's shared-writer locks: a flock on the Log's
// own descriptor would convert the exclusive Writer's lock instead of conflicting with it.
func openShared(l *Log) (*sharedLog, error) {
	fd, err := openRetry(l.path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, newError("shared writer", l.path, -1, fmt.Errorf("reopen: %w", err))
	}
	f := os.NewFile(uintptr(fd), l.path)
	var a, b unix.Stat_t
	if err := unix.Fstat(int(l.file.Fd()), &a); err == nil {
		err = unix.Fstat(fd, &b)
	}
	if err != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		f.Close()
		return nil, errorf("shared writer", l.path, -1, ErrLocked, "the path no longer names the open log (replaced or removed)")
	}
	switch err := flock.TryLockShared(fd); {
	case errors.Is(err, flock.ErrWouldBlock):
		f.Close()
		return nil, l.lockedError("shared writer")
	case err != nil:
		f.Close()
		return nil, newError("shared writer", l.path, -1, fmt.Errorf("flock: %w", err))
	}
	lk, err := newShareLock(l.mem, f)
	if err != nil {
		f.Close()
		return nil, newError("shared writer", l.path, -1, err)
	}
	maxLen := MaxPayload
	if l.lo.wide {
		maxLen = MaxWidePayload
	}
	sh := &sharedLog{lock: lk, turn: turn{wake: make(chan struct{}, 1)}}
	sh.w = Writer{
		log: l, mem: l.mem, capacity: len(l.mem),
		lenSize: l.lo.lenSize, overhead: l.lo.overhead(), maxLen: maxLen, wide: l.lo.wide,
		debug: l.debug, last: -1,
	}
	if !sh.w.wide && !sh.w.debug {
		sh.w.fastMax = maxLen // as Log.Writer: Allocate's fast path (used by the in-place benchmark)
	}
	return sh, nil
}

// lockedError is ErrLocked naming the mode of the writers that hold the log.
func (l *Log) lockedError(op string) error {
	switch mode, pid := flock.Mode(l.path); mode {
	case "exclusive":
		return errorf(op, l.path, -1, ErrLocked, "an exclusive writer holds it (pid %d); shared writers must wait for it to close", pid)
	case "shared":
		return errorf(op, l.path, -1, ErrLocked, "shared writers hold it (pid %d among them); open a SharedWriter to write beside them", pid)
	}
	return newError(op, l.path, -1, ErrLocked)
}

// closeLocked releases the Log's shared-writer locks; the Log's mu is held.
func (sh *sharedLog) closeLocked() {
	if sh.closed.Swap(true) {
		return
	}
	sh.lock.close()
	sh.lock.fd.Close() // drops the shared flock
}

// closeShared ends shared writing on the log (Log.Close, after every method in flight
// returned; the mapping is still there); the Log's mu is held. A SharedWriter may hold the lock
// between an Allocate and its Commit (even in the goroutine calling Close): the lock word is
// released for it, its frames discarded, and its next call returns ErrClosed.
func (l *Log) closeShared() {
	sh := l.shared
	if sh == nil {
		return
	}
	if sh.turn.try() {
		sh.closeLocked()
		sh.turn.release()
	} else {
		var err error
		func() {
			defer recoverFault(debug.SetPanicOnFault(true), "close", l.path, -1, &err)
			sh.lock.unlock(true)
		}()
		sh.w.mem, sh.w.fastMax = nil, 0 // the holder's Allocate now returns ErrClosed
		sh.closeLocked()
	}
	l.shared = nil
}

// Allocate reserves a frame of n payload bytes after the last allocated one and returns its
// payload, a slice of the mapping to fill in place before Commit, as Writer.Allocate does. The
// first Allocate of a commit takes the append lock, waiting for other writers' commits; it
// returns ErrLocked if the lock word stays held by a live process far beyond any commit's time
// (a damaged header) and ErrSealed on a sealed log. Other errors are Writer.Allocate's.
func (sw *SharedWriter) Allocate(n int) ([]byte, error) {
	// Writer.Allocate's fast path inlined here: one call per frame, as for the exclusive Writer.
	if w := sw.w; w != nil {
		if p := w.place(n); p != nil {
			return p, nil
		}
		return w.allocateSlow(n)
	}
	return sw.allocateFirst(n)
}

func (sw *SharedWriter) allocateFirst(n int) ([]byte, error) {
	if err := sw.acquire("allocate"); err != nil {
		return nil, err
	}
	p, err := sw.w.Allocate(n)
	if err != nil && sw.w.end == sw.w.committed {
		sw.release(true) // nothing allocated: do not keep the others waiting
	}
	return p, err
}

// acquire takes this Log's turn and the lock word and starts the commit at the committed end.
func (sw *SharedWriter) acquire(op string) error {
	l, sh := sw.log, sw.sh
	if sw.closed {
		return newError(op, l.path, -1, ErrClosed)
	}
	if !sh.turn.take(l.closing) {
		return newError(op, l.path, -1, ErrClosed)
	}
	if sh.closed.Load() || !l.enter() {
		sh.turn.release()
		return newError(op, l.path, -1, ErrClosed)
	}
	locked, err := sw.lockWord(op)
	if err != nil && locked {
		sh.unlock(true)
	}
	l.leave()
	if err != nil {
		sh.turn.release()
	}
	return err
}

// lockWord is acquire's part in the mapping, under one fault guard: it takes the word (locked
// reports whether it did, also on an error) and checks the committed end.
func (sw *SharedWriter) lockWord(op string) (locked bool, err error) {
	l, sh := sw.log, sw.sh
	defer recoverFault(debug.SetPanicOnFault(true), op, l.path, -1, &err)
	patient := sw.patient
	sw.patient = false
	if sh.yield {
		patient = sh.lock.yieldTo() || patient
		sh.yield = false
	}
	if l.sealedNow() { // for good: no need to wait for the word
		return false, l.sealedError(op, -1)
	}
	stolen, err := sh.lock.lock(&l.closed, patient)
	if errors.Is(err, ErrSealed) {
		return false, l.sealedError(op, -1)
	}
	if err != nil {
		return false, newError(op, l.path, -1, err)
	}
	end := int(l.size.Load())
	if end < int(l.lo.dataOffset) || end > len(l.mem) {
		return true, errorf(op, l.path, int64(end), ErrCorrupt, "committed end %d outside [%d, %d]", end, l.lo.dataOffset, len(l.mem))
	}
	if !sh.repaired {
		// As Writer.claim: frames after an end that is not a frame boundary could never be read.
		if err := checkBoundary(l.mem, int(l.lo.dataOffset), end, l.lo.lenSize); err != nil {
			return true, errorf(op, l.path, int64(end), ErrCorrupt, "committed end %d is not the end of a frame: %v", end, err)
		}
	}
	if stolen || !sh.repaired {
		sh.repair(end)
	}
	if l.sealedNow() {
		return true, l.sealedError(op, int64(end))
	}
	w := &sh.w
	w.end, w.committed, w.last = end, end, -1
	sw.w = w
	return true, nil
}

// release discards what is not committed, releases the lock word and this Log's turn; force
// wakes sleeping writers at once (see shareLock.unlock).
func (sw *SharedWriter) release(force bool) {
	sh := sw.sh
	sw.w.end = sw.w.committed
	sw.w = nil
	if !sh.closed.Load() { // else Log.Close released the word already
		sh.unlock(force)
	}
	sh.turn.release()
}

// unlock releases the lock word under a fault guard and notes whether to yield it (see acquire).
func (sh *sharedLog) unlock(force bool) {
	var err error
	defer recoverFault(debug.SetPanicOnFault(true), "commit", sh.w.log.path, -1, &err)
	sh.yield = sh.lock.unlock(force)
}

// commitUnlock is Commit's fast path: publish and release the word under one fault guard.
// released is false when it did not get as far (a fault, or Log.Close took the word).
func (sh *sharedLog) commitUnlock(w *Writer) (released bool, err error) {
	if w.mem == nil {
		return false, newError("commit", w.log.path, -1, ErrClosed)
	}
	defer recoverFault(debug.SetPanicOnFault(true), "commit", w.log.path, int64(w.end), &err)
	err = w.publish()
	w.end = w.committed // on ErrConflict the frames are discarded
	if sh.closed.Load() {
		return false, err
	}
	sh.yield = sh.lock.unlock(false)
	return true, err
}

// repair clears what a writer that died holding the lock may have left: a tag slot naming an end
// beyond the committed one (see Writer.claim).
func (sh *sharedLog) repair(end int) {
	mem := sh.w.mem
	for _, s := range [2]int{offTag0End, offTag1End} {
		if u64at(mem, s).Load() > uint64(end) {
			u64at(mem, s).Store(0)
		}
	}
	sh.repaired = true
}

// Append allocates a frame of len(p) bytes and copies p into it.
func (sw *SharedWriter) Append(p []byte) error {
	b, err := sw.Allocate(len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Commit publishes the frames allocated since the last commit (Writer.Commit: one atomic store
// of the committed end, then a wake-up only if readers sleep) and releases the append lock. On
// an error the frames are discarded and the lock released all the same.
func (sw *SharedWriter) Commit() error {
	w := sw.w
	if w == nil {
		if sw.closed {
			return newError("commit", sw.log.path, -1, ErrClosed)
		}
		return nil
	}
	released, err := sw.sh.commitUnlock(w)
	if released {
		sw.w = nil
		sw.sh.turn.release()
	} else {
		sw.release(false)
	}
	return err
}

// CommitTagged commits like Commit and stores tag with the new committed end, as
// Writer.CommitTagged does (the tag is the log's: the last tagged commit of any writer names
// it). With nothing allocated it tags the current end, taking the lock for that.
func (sw *SharedWriter) CommitTagged(tag uint64) error {
	if sw.w == nil {
		if err := sw.acquire("commit"); err != nil {
			return err
		}
	}
	err := sw.w.CommitTagged(tag)
	sw.release(false)
	return err
}

// Seal commits the allocated frames and marks the log sealed (see Writer.Seal), holding the
// lock: every shared writer's later Allocate returns ErrSealed.
func (sw *SharedWriter) Seal() error {
	if sw.w == nil {
		if err := sw.acquire("seal"); err != nil {
			return err
		}
	}
	err := sw.w.Seal()
	sw.release(true)
	return err
}

// Sync flushes committed frames to the file's storage (msync), as Writer.Sync.
func (sw *SharedWriter) Sync() (err error) {
	l := sw.log
	if sw.closed || !l.enter() {
		return newError("sync", l.path, -1, ErrClosed)
	}
	defer l.leave()
	defer recoverFault(debug.SetPanicOnFault(true), "sync", l.path, -1, &err)
	if err := mmap.Sync(l.mem[:int(l.size.Load())]); err != nil {
		return newError("sync", l.path, -1, fmt.Errorf("msync: %w", err))
	}
	return nil
}

// Close closes the writer. Like Writer.Close it does not commit: frames allocated since the last
// Commit are discarded (and the lock released), and Close then returns an error wrapping
// ErrUncommitted that says how many. The last shared writer of the Log releases the Log's locks; an exclusive Writer
// may open once no process shares the log any more.
func (sw *SharedWriter) Close() error {
	l := sw.log
	var lost error
	if w := sw.w; w != nil {
		if w.end != w.committed && w.mem != nil {
			lost = errorf("close writer", l.path, int64(w.committed), ErrUncommitted, "%s (%d bytes) allocated after the last Commit were discarded", w.uncommittedFrames(), w.end-w.committed)
		}
		sw.release(true)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if sw.closed {
		return newError("close writer", l.path, -1, ErrClosed)
	}
	sw.closed = true
	sh := sw.sh
	if sh.writers--; sh.writers == 0 && l.shared == sh {
		sh.closeLocked() // no writer left to hold the turn
		l.shared = nil
	}
	return lost
}

// turn is a mutex whose waiters Log.Close can send away: a word for the uncontended case and a
// one-slot channel to wake a waiter.
type turn struct {
	held    atomic.Bool
	waiters atomic.Int32
	wake    chan struct{}
}

func (t *turn) try() bool { return t.held.CompareAndSwap(false, true) }

// take waits for the turn; false when closing is closed first.
func (t *turn) take(closing <-chan struct{}) bool {
	if t.try() {
		return true
	}
	t.waiters.Add(1)
	defer t.waiters.Add(-1)
	for {
		// A release after this try sees the waiter counted and leaves a token in wake.
		if t.try() {
			return true
		}
		select {
		case <-t.wake:
		case <-closing:
			return false
		}
	}
}

func (t *turn) release() {
	t.held.Store(false)
	if t.waiters.Load() != 0 {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}
