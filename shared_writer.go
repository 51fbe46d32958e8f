package shmio

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/mmap"
	"golang.org/x/sys/unix"
)

var _ FrameWriter = (*SharedWriter)(nil)

// sharedChunk is the size of the private buffers a SharedWriter encodes frames into; a larger
// frame gets a chunk of its own.
const sharedChunk = 64 << 10

// SharedWriter appends frames to a log that other writers, in this and other processes, append
// to at the same time (FORMAT.md, "Shared writers"). Each Commit's frames land contiguously after
// the committed end and become visible together; commits of different writers are ordered, and
// readers see one stream and need no change. A SharedWriter is for one goroutine at a time; open
// one per goroutine.
//
// Allocate and Append encode frames into a private buffer of the writer; Commit takes the log's
// append lock (a word in the header, recovered within milliseconds if its holder dies), copies
// the buffer after the committed end, publishes it with one atomic store and releases the lock.
// The lock is thus held for one copy, however slowly the caller fills its frames, and a writer
// that dies before or during its Commit publishes nothing. The price is that copy (one memmove
// per commit) and a slice that points into the private buffer, not the mapping.
type SharedWriter struct {
	log      *Log
	sh       *sharedLog
	buf      []byte   // the chunk being filled: the pending commit's last frames
	full     [][]byte // the pending commit's earlier chunks, in order
	fullLen  int      // bytes in full
	spare    [][]byte // empty standard chunks for the next commits
	room     int      // bytes the log can take beyond the pending frames, as last seen
	seen     int      // committed end as last seen: it only grows, so room only shrinks meanwhile
	fastMax  int      // maxLen when Allocate's fast path (place) applies, else 0
	capacity int
	lenSize  int
	overhead int
	maxLen   int
	wide     bool
	closed   bool
}

// sharedLog is a Log's side of shared writing: its own descriptor (holding the shared flock and
// the token's lock), the lock word, and the commit state that every SharedWriter of the Log uses
// under mu. mu makes this Log's writers take the lock word one at a time.
type sharedLog struct {
	mu       sync.Mutex
	lock     *shareLock
	w        Writer // the exclusive writer's commit code, run under the lock
	writers  int
	repaired bool // stale tag slots were cleared under the lock
	closed   bool
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
	sh := l.shared
	sh.mu.Lock()
	sh.writers++
	sh.mu.Unlock()
	maxLen := MaxPayload
	if l.lo.wide {
		maxLen = MaxWidePayload
	}
	sw := &SharedWriter{
		log: l, sh: sh, buf: make([]byte, 0, sharedChunk),
		capacity: len(l.mem), lenSize: l.lo.lenSize, overhead: l.lo.overhead(), maxLen: maxLen, wide: l.lo.wide,
	}
	if !sw.wide {
		sw.fastMax = maxLen
	}
	return sw, nil
}

// openShared opens the log's file again for this Log's shared-writer locks: a flock on the Log's
// own descriptor would convert the exclusive Writer's lock instead of conflicting with it.
func openShared(l *Log) (*sharedLog, error) {
	fd, err := openRetry(l.path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK)
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
	sh := &sharedLog{lock: lk}
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

// closeLocked releases the Log's shared-writer locks; l.mu and sh.mu are held.
func (sh *sharedLog) closeLocked() {
	if sh.closed {
		return
	}
	sh.closed = true
	sh.lock.close()
	sh.lock.fd.Close() // drops the shared flock
}

// closeShared closes every shared writer of the log (Log.Close); l.mu is held.
func (l *Log) closeShared() {
	if sh := l.shared; sh != nil {
		sh.mu.Lock()
		sh.closeLocked()
		sh.mu.Unlock()
		l.shared = nil
	}
}

// Allocate reserves a frame of n payload bytes in the writer's pending commit and returns its
// payload to fill before Commit. The slice is the writer's private buffer (Commit copies it into
// the log) and stays the caller's until Commit. Errors are Writer.Allocate's: ErrEmptyFrame,
// ErrFrameTooLarge, and ErrFull when the log, as last seen, cannot hold the pending frames.
// Like Writer.Allocate, it is small enough to inline: the common case is place.
func (sw *SharedWriter) Allocate(n int) ([]byte, error) {
	if p := sw.place(n); p != nil {
		return p, nil
	}
	return sw.allocateSlow(n)
}

// place is Allocate's fast path (u16 lengths, room in the chunk and, as last seen, in the log):
// it encodes the frame's lengths and returns its payload, or returns nil changing nothing.
func (sw *SharedWriter) place(n int) []byte {
	start := len(sw.buf)
	flen := n + 4
	if uint(n-1) >= uint(sw.fastMax) || flen > sw.room || flen > cap(sw.buf)-start {
		return nil
	}
	sw.room -= flen
	sw.buf = sw.buf[:start+flen]
	// The checks above prove start+flen <= cap(buf): skip the bounds checks, as Writer.place.
	f := unsafe.Add(unsafe.Pointer(unsafe.SliceData(sw.buf)), start)
	*(*uint16)(f) = uint16(flen)
	*(*uint16)(unsafe.Add(f, flen-2)) = uint16(flen)
	return unsafe.Slice((*byte)(unsafe.Add(f, 2)), n)
}

// allocateSlow allocates wide frames, starts new chunks, and explains refusals.
func (sw *SharedWriter) allocateSlow(n int) ([]byte, error) {
	flen := n + sw.overhead
	if uint(n-1) >= uint(sw.maxLen) || sw.closed || flen > sw.room {
		if err := sw.allocCheck(n); err != nil {
			return nil, err
		}
	}
	if flen > cap(sw.buf)-len(sw.buf) {
		sw.nextChunk(flen)
	}
	c := sw.buf
	start := len(c)
	c = c[:start+flen]
	sw.buf = c
	sw.room -= flen
	p := start + sw.lenSize
	if sw.wide {
		le.PutUint32(c[start:], uint32(flen))
		le.PutUint32(c[p+n:], uint32(flen))
	} else {
		le.PutUint16(c[start:], uint16(flen))
		le.PutUint16(c[p+n:], uint16(flen))
	}
	return c[p : p+n : p+n], nil
}

// pending is the bytes of encoded frames waiting for Commit.
func (sw *SharedWriter) pending() int { return sw.fullLen + len(sw.buf) }

// allocCheck explains a refusal, after looking at the committed end again (other writers moved
// it: the frame may fit no longer, never better).
func (sw *SharedWriter) allocCheck(n int) (err error) {
	l := sw.log
	switch {
	case sw.closed || l.closed.Load():
		return newError("allocate", l.path, -1, ErrClosed)
	case n <= 0:
		return errorf("allocate", l.path, -1, ErrEmptyFrame, "got %d", n)
	case n > sw.maxLen:
		return errorf("allocate", l.path, -1, ErrFrameTooLarge, "%d bytes, the most a frame holds here is %d", n, sw.maxLen)
	case n+sw.overhead > sw.capacity-int(l.lo.dataOffset):
		return errorf("allocate", l.path, -1, ErrFrameTooLarge, "%d bytes cannot fit even in an empty log of capacity %d", n, sw.capacity)
	}
	if !l.enter() {
		return newError("allocate", l.path, -1, ErrClosed)
	}
	defer l.leave()
	defer recoverFault(debug.SetPanicOnFault(true), "allocate", l.path, -1, &err)
	sw.seen = max(sw.seen, int(l.size.Load()))
	sw.room = sw.capacity - sw.seen - sw.pending()
	if n+sw.overhead > sw.room {
		return errorf("allocate", l.path, int64(sw.seen), ErrFull, "while allocating frame of %d bytes (%d bytes left of %d after %d pending)", n, max(sw.room, 0), sw.capacity, sw.pending())
	}
	return nil
}

// nextChunk files the current chunk and starts one with room for flen bytes.
func (sw *SharedWriter) nextChunk(flen int) {
	if len(sw.buf) > 0 {
		sw.full = append(sw.full, sw.buf)
		sw.fullLen += len(sw.buf)
	} else if cap(sw.buf) == sharedChunk {
		sw.spare = append(sw.spare, sw.buf)
	}
	if k := len(sw.spare) - 1; k >= 0 && flen <= sharedChunk {
		sw.buf, sw.spare = sw.spare[k], sw.spare[:k]
		return
	}
	sw.buf = make([]byte, 0, max(sharedChunk, flen))
}

// reset empties the pending commit, keeping up to 16 standard chunks for the next ones.
func (sw *SharedWriter) reset() {
	for _, c := range sw.full {
		if cap(c) == sharedChunk && len(sw.spare) < 16 {
			sw.spare = append(sw.spare, c[:0])
		}
	}
	clear(sw.full)
	sw.full, sw.fullLen = sw.full[:0], 0
	if cap(sw.buf) != sharedChunk {
		sw.buf = make([]byte, 0, sharedChunk) // a large frame's chunk is not kept
	}
	sw.buf = sw.buf[:0]
	sw.room = sw.capacity - sw.seen
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

// Commit publishes the frames allocated since the last commit, contiguously after the committed
// end and all at once: it takes the log's append lock, copies them in, stores the committed end
// (Writer.Commit's code: one atomic store, then a wake-up only if readers sleep) and releases
// the lock. A failed commit discards its frames: ErrFull when other writers filled the log
// meanwhile, ErrLocked when the lock word stays held by a live owner far beyond any commit's
// time (a damaged header), ErrMappingGone when the file was truncated.
func (sw *SharedWriter) Commit() error {
	if len(sw.buf) == 0 && sw.fullLen == 0 && !sw.closed {
		return nil
	}
	return sw.commit(commitPlain, 0)
}

// CommitTagged commits like Commit and stores tag with the new committed end, as
// Writer.CommitTagged does (the tag is the log's: the last tagged commit of any writer names
// it). With nothing pending it tags the current end.
func (sw *SharedWriter) CommitTagged(tag uint64) error { return sw.commit(commitTagged, tag) }

// Seal commits the pending frames and marks the log sealed (see Writer.Seal), under the lock:
// every shared writer's later Commit returns ErrSealed and discards its frames.
func (sw *SharedWriter) Seal() error { return sw.commit(commitSeal, 0) }

// What commit does after copying the frames in.
const (
	commitPlain = iota
	commitTagged
	commitSeal
)

func (sw *SharedWriter) commit(how int, tag uint64) (err error) {
	l, sh := sw.log, sw.sh
	if sw.closed {
		return newError("commit", l.path, -1, ErrClosed)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.closed {
		return newError("commit", l.path, -1, ErrClosed)
	}
	defer sw.reset()
	defer recoverFault(debug.SetPanicOnFault(true), "commit", l.path, -1, &err)
	stolen, err := sh.lock.lock()
	if err != nil {
		return newError("commit", l.path, -1, err)
	}
	defer sh.lock.unlock()
	end := int(l.size.Load())
	if end < int(l.lo.dataOffset) || end > len(l.mem) {
		return errorf("commit", l.path, int64(end), ErrCorrupt, "committed end %d outside [%d, %d]", end, l.lo.dataOffset, len(l.mem))
	}
	if stolen || !sh.repaired {
		sh.repair(end)
	}
	if l.sealedNow() {
		return errorf("commit", l.path, int64(end), ErrSealed, "the log is sealed: %d bytes of frames discarded", sw.pending())
	}
	sw.seen = end
	if end+sw.pending() > len(l.mem) {
		return errorf("commit", l.path, int64(end), ErrFull, "%d bytes of frames pending, %d left: the commit is discarded", sw.pending(), len(l.mem)-end)
	}
	// Frames go past the committed end, where no reader looks, and become visible at the
	// store in Writer.Commit: a writer killed before it has published nothing (FORMAT.md).
	off := end
	for _, c := range sw.full {
		off += copy(l.mem[off:], c)
	}
	off += copy(l.mem[off:], sw.buf)
	w := &sh.w
	w.end, w.committed, w.last = off, end, -1
	switch how {
	case commitTagged:
		err = w.CommitTagged(tag)
	case commitSeal:
		err = w.Seal()
	default:
		err = w.Commit()
	}
	sw.seen = off
	return err
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

// Close discards frames not committed and closes the writer; the last shared writer of the Log
// releases its locks, and an exclusive Writer may then open once no other process shares the log.
func (sw *SharedWriter) Close() error {
	l := sw.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if sw.closed {
		return newError("close writer", l.path, -1, ErrClosed)
	}
	sw.closed, sw.fastMax = true, 0
	sw.buf, sw.full, sw.spare = nil, nil, nil
	sh := sw.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writers--; sh.writers == 0 && l.shared == sh {
		sh.closeLocked()
		l.shared = nil
	}
	return nil
}
