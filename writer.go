package shmio

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"unsafe"

	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/futex"
	"github.com/shmio/shmio/internal/mmap"
)

// Writer appends frames to a log. There is at most one per log across all processes (an
// exclusive flock on the file, released by the kernel if the process dies). A Writer is for one
// goroutine at a time.
//
// Frames are allocated in place with Allocate, filled by the caller, and published together by
// Commit: one atomic store of the committed end. Readers never see a frame before its Commit,
// and never see frames that were allocated but not committed when the writer closed or died.
type Writer struct {
	log       *Log
	mem       []byte // the writable mapping; nil once closed
	end       int    // end of the last allocated frame (absolute)
	committed int    // committed end as last published by this writer
	capacity  int
	lenSize   int
	overhead  int
	maxLen    int // largest payload
	fastMax   int // maxLen when Allocate's fast path (place) applies, else 0
	wide      bool
	debug     bool
	last      int // start of the last allocated frame, for DebugChecks; -1 when none
}

// Writer opens the log's single writer. It resumes at the committed end: frames that a previous
// writer allocated but did not commit are overwritten. It returns ErrReadOnly unless the log was
// opened Writable, ErrLocked while another writer (in this or another process) is open, ErrSealed
// on a sealed log, and ErrCorrupt when the committed end is not the end of a frame (FORMAT.md).
func (l *Log) Writer() (*Writer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil, newError("writer", l.path, -1, ErrClosed)
	}
	if !l.writable {
		return nil, newError("writer", l.path, -1, ErrReadOnly)
	}
	if l.writer != nil {
		return nil, errorf("writer", l.path, -1, ErrLocked, "this Log already has an open writer")
	}
	switch err := flock.TryLock(int(l.file.Fd())); {
	case errors.Is(err, flock.ErrWouldBlock):
		return nil, l.lockedError("writer")
	case err != nil:
		return nil, newError("writer", l.path, -1, fmt.Errorf("flock: %w", err))
	}
	maxLen := MaxPayload
	if l.lo.wide {
		maxLen = MaxWidePayload
	}
	w := &Writer{
		log: l, mem: l.mem, capacity: len(l.mem),
		lenSize: l.lo.lenSize, overhead: l.lo.overhead(), maxLen: maxLen, wide: l.lo.wide,
		debug: l.debug, last: -1,
	}
	if !w.wide && !w.debug {
		w.fastMax = maxLen
	}
	if err := w.claim(); err != nil {
		flock.Unlock(int(l.file.Fd()))
		return nil, err
	}
	l.writer = w
	return w, nil
}

// claim starts the writer at the committed end, records this process as the writer and clears
// stale commit-tag slots.
func (w *Writer) claim() (err error) {
	l := w.log
	defer recoverFault(debug.SetPanicOnFault(true), "writer", l.path, -1, &err)
	end := int(l.size.Load())
	if end < int(l.lo.dataOffset) || end > len(l.mem) {
		return errorf("writer", l.path, int64(end), ErrCorrupt, "committed end %d outside [%d, %d]", end, l.lo.dataOffset, len(l.mem))
	}
	if !l.lo.nodeFormat && u32at(l.mem, offFlags).Load()&flagSealed != 0 {
		return l.sealedError("writer", -1)
	}
	// Frames appended after an end that is not a frame boundary could never be reached by
	// reading forward: refuse such a log rather than add to it.
	if err := checkBoundary(l.mem, int(l.lo.dataOffset), end, l.lo.lenSize); err != nil {
		return errorf("writer", l.path, int64(end), ErrCorrupt, "committed end %d is not the end of a frame: %v", end, err)
	}
	w.end, w.committed = end, end
	if !l.lo.nodeFormat {
		u32at(l.mem, offWriterPID).Store(uint32(os.Getpid()))
		// A tag slot whose end lies beyond the committed end was written by a writer that died
		// before its commit; clear it so that a later commit reaching that end cannot adopt it.
		for _, s := range [2]int{offTag0End, offTag1End} {
			if u64at(l.mem, s).Load() > uint64(end) {
				u64at(l.mem, s).Store(0)
			}
		}
	}
	return nil
}

// boundaryFrames is how many frames checkBoundary walks back from the committed end.
const boundaryFrames = 8

// checkBoundary verifies that end is the end of a frame: walking back from it by trailing lengths,
// each frame's leading length must agree, up to boundaryFrames frames or the data offset. A
// committed end inside a frame would have to hit matching lengths by chance boundaryFrames
// times in a row (or land exactly on the data offset).
func checkBoundary(mem []byte, base, end, lsize int) error {
	for p, n := end, 0; p > base && n < boundaryFrames; n++ {
		if p-base < 2*lsize+1 {
			return fmt.Errorf("%d bytes before it, too few for a frame", p-base)
		}
		t := trailerLen(mem, p, lsize)
		if t < 2*lsize+1 || t > p-base {
			return fmt.Errorf("trailing length %d at %d does not fit after the data offset", t, p-lsize)
		}
		if l, err := frameLen(mem, p-t, p, lsize); err != nil || l != t {
			return fmt.Errorf("trailing length %d at %d, leading length %d at %d", t, p-lsize, l, p-t)
		}
		p -= t
	}
	return nil
}

// clearPID forgets this process as the writer, unless the file is already gone.
func clearPID(mem []byte, path string) {
	var err error
	defer recoverFault(debug.SetPanicOnFault(true), "close writer", path, -1, &err)
	u32at(mem, offWriterPID).CompareAndSwap(uint32(os.Getpid()), 0)
}

// Allocate reserves a frame of n payload bytes after the last allocated one and returns its
// payload, a slice of the mapping to fill in place before Commit. Its capacity is n, so append
// cannot spill into the next frame. It returns ErrEmptyFrame for n <= 0, ErrFrameTooLarge beyond
// the format's maximum, and ErrFull when the rest of the file cannot hold the frame; none of
// these changes the log.
//
// The common case (u16 lengths, no DebugChecks) is place, inlined here; everything else is
// allocateSlow. Allocate itself is over the compiler's inlining budget (any function with a
// call is), so it costs one call per frame, about 20 instructions; a build with profile-guided
// optimization inlines it into a hot loop (cmd/shmio ships default.pgo for that).
func (w *Writer) Allocate(n int) ([]byte, error) {
	if p := w.place(n); p != nil {
		return p, nil
	}
	return w.allocateSlow(n)
}

// place is Allocate's fast path: it allocates the frame and returns its payload, or returns nil
// (changing nothing) when the frame does not fit, n is out of range, or the writer is not on the
// fast path at all (fastMax 0: closed, wide lengths or DebugChecks).
func (w *Writer) place(n int) []byte {
	start := w.end
	flen := n + 4 // two u16 lengths
	if uint(n-1) >= uint(w.fastMax) || flen > w.capacity-start {
		return nil
	}
	w.end = start + flen
	// The checks above prove 0 <= start < start+flen <= len(mem): store the two lengths and cut
	// the payload without the compiler's five further bounds checks. Native-endian stores are
	// little-endian here, as the header's atomics already assume.
	f := unsafe.Add(unsafe.Pointer(unsafe.SliceData(w.mem)), start)
	*(*uint16)(f) = uint16(flen)
	*(*uint16)(unsafe.Add(f, flen-2)) = uint16(flen)
	return unsafe.Slice((*byte)(unsafe.Add(f, 2)), n)
}

// allocateSlow allocates wide frames and frames under DebugChecks, and explains refusals.
func (w *Writer) allocateSlow(n int) ([]byte, error) {
	if uint(n-1) >= uint(w.maxLen) || w.mem == nil {
		return nil, w.allocError(n)
	}
	start := w.end
	flen := n + w.overhead
	if flen > w.capacity-start {
		return nil, w.allocError(n)
	}
	if w.debug {
		if err := w.checkLast(); err != nil {
			return nil, err
		}
		w.last = start
	}
	w.end = start + flen
	mem := w.mem
	p := start + w.lenSize
	if w.wide {
		le.PutUint32(mem[start:], uint32(flen))
		le.PutUint32(mem[p+n:], uint32(flen))
	} else {
		le.PutUint16(mem[start:], uint16(flen))
		le.PutUint16(mem[p+n:], uint16(flen))
	}
	return mem[p : p+n : p+n], nil
}

// allocError explains why Allocate refused; it is off the fast path.
func (w *Writer) allocError(n int) error {
	path, off := w.log.path, int64(w.end)
	switch {
	case w.mem == nil || w.log.closed.Load():
		return newError("allocate", path, -1, ErrClosed)
	case n <= 0:
		return errorf("allocate", path, off, ErrEmptyFrame, "got %d", n)
	case n > w.maxLen:
		return errorf("allocate", path, off, ErrFrameTooLarge, "%d bytes, the most a frame holds here is %d", n, w.maxLen)
	case n+w.overhead > w.capacity-int(w.log.lo.dataOffset):
		return errorf("allocate", path, off, ErrFrameTooLarge, "%d bytes cannot fit even in an empty log of capacity %d", n, w.capacity)
	default:
		return errorf("allocate", path, off, ErrFull, "while allocating frame of %d bytes (%d bytes left of %d)", n, w.capacity-w.end, w.capacity)
	}
}

// checkLast verifies the previous frame still has symmetric lengths (DebugChecks only): it
// catches a caller that wrote past its payload slice through unsafe means.
func (w *Writer) checkLast() error {
	if w.last < 0 {
		return nil
	}
	flen, err := frameLen(w.mem, w.last, w.end, w.lenSize)
	if err == nil && flen != w.end-w.last {
		err = fmt.Errorf("length %d does not reach the next frame at %d", flen, w.end)
	}
	// Writing past the payload lands on the trailing length.
	if t := trailerLen(w.mem, w.end, w.lenSize); err == nil && t != flen {
		err = fmt.Errorf("leading length %d, trailing length %d", flen, t)
	}
	if err != nil {
		return errorf("allocate", w.log.path, int64(w.last), ErrCorrupt, "previous frame damaged: %v", err)
	}
	return nil
}

// Append allocates a frame of len(p) bytes and copies p into it.
func (w *Writer) Append(p []byte) error {
	b, err := w.Allocate(len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Commit publishes every frame allocated since the last commit with one atomic store of the
// committed end, then wakes readers sleeping in Wait (only if the header says some sleep, so a
// commit with no sleepers costs one store and one load). If the committed end is not where this
// writer last stored it, a writer that ignores the lock (Node shmio) appended meanwhile: Commit
// then publishes nothing and returns ErrConflict, as every later Commit does; close the writer.
func (w *Writer) Commit() (err error) {
	if w.mem == nil {
		return newError("commit", w.log.path, -1, ErrClosed)
	}
	defer recoverFault(debug.SetPanicOnFault(true), "commit", w.log.path, int64(w.end), &err)
	if w.end == w.committed || w.debug || w.log.size.Load() != uint64(w.committed) {
		return w.publish()
	}
	// publish's common case, inline: a call costs the exclusive writer ~1 ns per commit.
	w.log.size.Store(uint64(w.end))
	w.committed = w.end
	w.wakeReaders()
	return nil
}

// publish is Commit under the caller's fault guard (SharedWriter.Commit guards it with its release).
func (w *Writer) publish() error {
	if w.end == w.committed {
		return nil
	}
	if got := w.log.size.Load(); got != uint64(w.committed) {
		return w.conflict(got)
	}
	if w.debug {
		if err := w.checkLast(); err != nil {
			return err
		}
	}
	w.log.size.Store(uint64(w.end))
	w.committed = w.end
	w.wakeReaders()
	return nil
}

// CommitTagged commits like Commit and stores tag with the new committed end, in the same atomic
// step: after a crash, Log.CommitTag returns the tag of exactly the frames that are committed.
// Replication stores a stream sequence here to resume exactly once. The tag goes into whichever
// of two header slots does not describe the current end, before the end itself is published;
// with no frames to commit the current slot's tag is replaced (one atomic store). Node-made files
// have no room for tags: CommitTagged returns an error wrapping errors.ErrUnsupported there.
func (w *Writer) CommitTagged(tag uint64) (err error) {
	if w.mem == nil {
		return newError("commit", w.log.path, -1, ErrClosed)
	}
	defer recoverFault(debug.SetPanicOnFault(true), "commit", w.log.path, int64(w.end), &err)
	if w.log.lo.nodeFormat {
		return newError("commit", w.log.path, -1, fmt.Errorf("commit tags need a file made by shmio-go: %w", errors.ErrUnsupported))
	}
	cur := uint64(w.committed)
	if got := w.log.size.Load(); got != cur {
		return w.conflict(got)
	}
	slot := offTag0End
	if u64at(w.mem, offTag0End).Load() == cur {
		slot = offTag1End
	}
	if w.end == w.committed {
		other := offTag0End + offTag1End - slot
		if u64at(w.mem, other).Load() == cur {
			u64at(w.mem, other+8).Store(tag)
			return nil
		}
	}
	if w.debug {
		if err := w.checkLast(); err != nil {
			return err
		}
	}
	u64at(w.mem, slot+8).Store(tag)
	u64at(w.mem, slot).Store(uint64(w.end))
	w.log.size.Store(uint64(w.end))
	w.committed = w.end
	w.wakeReaders()
	return nil
}

// conflict reports (and counts in the header, for Header.Conflicts) a commit refused because the
// committed end is no longer where this writer left it: a process that ignores the writer lock
// (Node shmio writers take none) appended or rewound the log. Storing our end would move the
// committed end under the other writer's feet, so nothing is committed, now or later.
func (w *Writer) conflict(got uint64) error {
	l := w.log
	if !l.lo.nodeFormat {
		u32at(w.mem, offConflicts).Add(1)
	}
	return errorf("commit", l.path, int64(got), ErrConflict,
		"committed end moved from %d to %d under this writer (a writer that takes no lock, such as Node shmio?); nothing committed, and frames of both writers past %d may be damaged: close this writer",
		w.committed, got, min(uint64(w.committed), got))
}

// wakeReaders wakes every reader asleep in Wait, if any may be: the writer's side of the wake
// protocol (FORMAT.md, "Waking"; the reader's side is Iterator.sleepFutex). It runs after the
// store of the committed end or of the seal.
func (w *Writer) wakeReaders() {
	if wake := w.log.wake; wake != nil && w.log.sleepers.Load() != 0 {
		w.log.sleepers.Store(0)
		wake.Add(1)
		futex.Wake(wake)
	}
}

// Sync flushes committed frames to the file's storage (msync). On /dev/shm there is no storage
// and Sync is cheap; on a disk-backed file it makes committed data durable.
func (w *Writer) Sync() error {
	if w.mem == nil {
		return newError("sync", w.log.path, -1, ErrClosed)
	}
	if err := mmap.Sync(w.mem[:w.committed]); err != nil {
		return newError("sync", w.log.path, -1, fmt.Errorf("msync: %w", err))
	}
	return nil
}

// Close releases the writer lock. It does not commit: frames allocated since the last Commit are
// discarded (never published; the next writer overwrites them), and then Close returns an error
// wrapping ErrUncommitted that says how many, after releasing the lock all the same. Commit
// before Close to keep them.
func (w *Writer) Close() error {
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	if w.mem == nil {
		return newError("close writer", w.log.path, -1, ErrClosed)
	}
	return w.closeLocked()
}

func (w *Writer) closeLocked() error {
	l := w.log
	var lost error
	if w.end != w.committed {
		lost = errorf("close writer", l.path, int64(w.committed), ErrUncommitted, "%s (%d bytes) allocated after the last Commit were discarded", w.uncommittedFrames(), w.end-w.committed)
	}
	if !l.lo.nodeFormat {
		clearPID(w.mem, l.path)
	}
	w.mem, w.fastMax = nil, 0
	l.writer = nil
	if err := flock.Unlock(int(l.file.Fd())); err != nil {
		return errors.Join(lost, newError("close writer", l.path, -1, fmt.Errorf("unlock: %w", err)))
	}
	return lost
}

// uncommittedFrames describes the frames between the committed end and the allocated end.
func (w *Writer) uncommittedFrames() (desc string) {
	var err error
	defer func() {
		if err != nil {
			desc = "frames (the file was truncated: count unknown)"
		}
	}()
	defer recoverFault(debug.SetPanicOnFault(true), "close writer", w.log.path, -1, &err)
	n := 0
	for p := w.committed; p < w.end; n++ {
		flen, err := frameLen(w.mem, p, w.end, w.lenSize)
		if err != nil {
			return fmt.Sprintf("%d or more frames (damaged lengths)", n+1)
		}
		p += flen
	}
	if n == 1 {
		return "1 frame"
	}
	return fmt.Sprintf("%d frames", n)
}

// Seal commits any allocated frames and marks the file sealed: the writer is done with it and no
// frame will ever follow (a segmented queue seals a segment before it moves to the next). Readers
// see it through Log.Sealed and are woken. Sealing a Node-made file returns an error wrapping
// errors.ErrUnsupported: it has no flags word. The writer stays open; Allocate keeps working,
// but a reader that saw the seal may already have moved on, so do not.
func (w *Writer) Seal() (err error) {
	if err := w.Commit(); err != nil {
		return err
	}
	defer recoverFault(debug.SetPanicOnFault(true), "seal", w.log.path, -1, &err)
	if w.log.lo.nodeFormat {
		return newError("seal", w.log.path, -1, fmt.Errorf("sealing needs a file made by shmio-go: %w", errors.ErrUnsupported))
	}
	u32at(w.mem, offFlags).Or(flagSealed)
	w.wakeReaders()
	return nil
}
