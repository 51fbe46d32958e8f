package shmio

import (
	"context"
	"fmt"
	"io"
	"iter"
	"runtime/debug"
	"time"
	"unsafe"
)

// IteratorOptions configure NewIterator.
type IteratorOptions struct {
	// StartCursor is where reading starts, as returned by Cursor (relative to DataOffset, as in
	// Node shmio). It must be 0, the committed end, or the start of a committed frame.
	StartCursor int64
	// Spin is how long Wait polls the committed end before it sleeps: spinning answers within
	// nanoseconds but burns a core. 0 means DefaultSpin; a negative value never spins.
	Spin time.Duration
}

// DefaultSpin is how long Wait spins before sleeping when IteratorOptions.Spin is 0.
const DefaultSpin = 20 * time.Microsecond

// BatchOptions bound one NextBatch call. Zero values mean 64 frames and 256 KiB. MaxBytes counts
// each frame's length fields (4 bytes, or 8 for wide frames) along with its payload. A batch always
// holds at least one frame when one is committed, however large.
type BatchOptions struct{ MaxFrames, MaxBytes int }

// Iterator reads committed frames with its own cursor, forward and backward. Iterators never take
// locks and never write to the log (Wait only announces itself in the header: FORMAT.md, "Waking"). An Iterator is
// for one goroutine at a time; open one per goroutine.
//
// Frames are returned as slices of the mapping, not copies: they stay valid until the Log is
// closed, and must not be modified (a reader's mapping is read-only: writing faults).
type Iterator struct {
	log    *Log
	mem    []byte
	pos    int // absolute offset of the next frame
	end    int // committed end as last loaded
	base   int // data offset
	lsize  int // bytes per length field
	debug  bool
	spin   time.Duration
	closed bool

	// ahead holds frames NextBatch already read past pos, for Next to hand out one by one: one
	// fault guard per batch instead of per frame. Every other method drops it (pos is exact).
	ahead  [][]byte
	aheadi int

	scratch [][]byte // NextFrames' batch of payloads

	// Wait's checks that cost a system call, made at most so often (wait.go).
	probe   writerProbe
	fstatAt time.Time
}

// nextAhead is how many frames Next reads at once.
const nextAhead = 32

// NewIterator returns an iterator positioned at opts.StartCursor.
func (l *Log) NewIterator(opts IteratorOptions) (*Iterator, error) {
	if l.closed.Load() {
		return nil, newError("iterator", l.path, -1, ErrClosed)
	}
	it := &Iterator{
		log: l, mem: l.mem, base: int(l.lo.dataOffset), lsize: l.lo.lenSize,
		debug: l.debug, spin: opts.Spin,
	}
	if it.spin == 0 {
		it.spin = DefaultSpin
	}
	it.pos = it.base
	if _, err := it.Seek(opts.StartCursor, io.SeekStart); err != nil {
		return nil, err
	}
	return it, nil
}

// frameLen reads the leading length of the frame at off and checks that the frame lies within
// [off, end). It does not look at the trailing length.
func frameLen(mem []byte, off, end, lsize int) (int, error) {
	if end-off < 2*lsize+1 {
		return 0, fmt.Errorf("%d bytes before the end at %d: too few for a frame", end-off, end)
	}
	flen := lenAt(mem, off, lsize)
	if flen < 2*lsize+1 {
		return 0, fmt.Errorf("length %d is smaller than the smallest frame (%d)", flen, 2*lsize+1)
	}
	if flen > end-off {
		return 0, fmt.Errorf("length %d runs past the committed end at %d", flen, end)
	}
	return flen, nil
}

// trailerLen reads the trailing length field of a frame that ends at off.
func trailerLen(mem []byte, off, lsize int) int { return lenAt(mem, off-lsize, lsize) }

// checkOpen returns ErrClosed for a closed iterator or log.
func (it *Iterator) checkOpen(op string) error {
	if it.closed || it.log.closed.Load() {
		return newError(op, it.log.path, -1, ErrClosed)
	}
	return nil
}

// refresh loads the committed end. It never moves backwards and never leaves the mapping, so a
// damaged header cannot send reads out of bounds.
func (it *Iterator) refresh(op string) error {
	e := int(it.log.size.Load())
	if e < it.end || e > len(it.mem) {
		return errorf(op, it.log.path, int64(e), ErrCorrupt, "committed end %d outside [%d, %d]", e, it.end, len(it.mem))
	}
	it.end = e
	return nil
}

// corrupt reports a bad frame at the cursor, which stays where it is.
func (it *Iterator) corrupt(op string, off int, err error) error {
	return errorf(op, it.log.path, int64(off), ErrCorrupt, "frame at cursor %d: %v", off-it.base, err)
}

// guard turns a fault on the mapping (the file was truncated by another process) into
// ErrMappingGone; it is deferred by every method that reads the mapping.
func (it *Iterator) guard(op string, old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		*err = faultError(r, op, it.log.path, int64(it.pos))
		if it.log.closed.Load() { // the fault was Close's, not a truncation
			*err = newError(op, it.log.path, -1, ErrClosed)
		}
	}
}

// beforeNonFrame reports whether off, the end of a frame, is the committed end or the start of
// bytes that cannot be a frame (such as the zeros of a file truncated inside its last mapped
// page). Without DebugChecks only such a frame has its trailing length checked: the check then
// does not depend on where a batch ends, and costs one load per batch.
func (it *Iterator) beforeNonFrame(off, end int) bool {
	_, err := frameLen(it.mem, off, end, it.lsize)
	return err != nil
}

// next reads the frame at the cursor, which must be below it.end.
func (it *Iterator) next(op string) ([]byte, error) {
	pos := it.pos
	flen, err := frameLen(it.mem, pos, it.end, it.lsize)
	if err != nil {
		return nil, it.corrupt(op, pos, err)
	}
	if it.debug || it.beforeNonFrame(pos+flen, it.end) {
		if t := trailerLen(it.mem, pos+flen, it.lsize); t != flen {
			return nil, it.corrupt(op, pos, fmt.Errorf("leading length %d, trailing length %d", flen, t))
		}
	}
	it.pos = pos + flen
	return it.mem[pos+it.lsize : pos+flen-it.lsize : pos+flen-it.lsize], nil
}

// Next returns the next committed frame and advances the cursor past it, or nil, nil when no
// frame is committed beyond the cursor. A corrupt frame gives ErrCorrupt and the cursor stays
// on it, so the caller can report where the damage is.
func (it *Iterator) Next() (frame []byte, err error) {
	if it.closed || it.log.closed.Load() {
		return nil, it.checkOpen("next")
	}
	if it.aheadi < len(it.ahead) {
		f := it.ahead[it.aheadi]
		it.aheadi++
		it.pos = it.after(f)
		return f, nil
	}
	pos := it.pos
	it.ahead, err = it.NextBatch(it.ahead[:0], BatchOptions{MaxFrames: nextAhead})
	it.aheadi = 0
	if len(it.ahead) == 0 {
		return nil, err
	}
	// Hand out the first frame now; an error behind the read frames comes back when Next
	// reaches it (NextBatch leaves the cursor on a bad frame).
	f := it.ahead[0]
	it.aheadi = 1
	it.pos = pos
	it.pos = it.after(f)
	return f, nil
}

// after returns the offset just past the frame whose payload is f (a slice of the mapping).
func (it *Iterator) after(f []byte) int {
	return frameStart(it.mem, f, it.lsize) + len(f) + 2*it.lsize
}

// dropAhead forgets frames read ahead for Next; pos is already exact.
func (it *Iterator) dropAhead() {
	it.ahead = it.ahead[:0]
	it.aheadi = 0
}

// NextBatch appends committed frames after the cursor to dst and returns it, loading the
// committed end once. It stops at o.MaxFrames frames or o.MaxBytes bytes (see BatchOptions),
// or at the committed end; with nothing new it returns dst unchanged. On a corrupt frame it
// returns the frames before it along with the error. Passing the previous batch as dst[:0]
// makes reading allocation-free.
func (it *Iterator) NextBatch(dst [][]byte, o BatchOptions) (batch [][]byte, err error) {
	// No enter/leave here: a per-call atomic pair would cost about 9% of a 64-frame batch. A
	// Close racing with this call leaves the mapping inaccessible, not unmapped (see
	// Log.Close), so the read faults into guard, which says ErrClosed.
	if it.closed || it.log.closed.Load() {
		return dst, it.checkOpen("next batch")
	}
	it.dropAhead()
	defer it.guard("next batch", debug.SetPanicOnFault(true), &err)
	maxMsgs, maxBytes := o.MaxFrames, o.MaxBytes
	if maxMsgs <= 0 {
		maxMsgs = 64
	}
	if maxBytes <= 0 {
		maxBytes = 256 << 10
	}
	if err := it.refresh("next batch"); err != nil {
		return dst, err
	}
	mem, pos, end := it.mem, it.pos, it.end
	if end-pos < maxBytes {
		maxBytes = end - pos
	}
	limit := pos + maxBytes // frames must end by here, except the first
	n := 0
	if it.lsize == 2 && !it.debug {
		// The common case, kept lean: one length load and two comparisons per frame. refresh
		// keeps end <= len(mem), and the loop keeps pos+flen <= end, so every access is in
		// bounds without the compiler's checks (native-endian loads are little-endian here).
		base := unsafe.Pointer(unsafe.SliceData(mem))
		for ; n < maxMsgs && end-pos >= 5; n++ {
			flen := int(*(*uint16)(unsafe.Add(base, pos)))
			if flen < 5 || flen > end-pos {
				break
			}
			if flen > limit-pos && n > 0 {
				it.pos = pos // stopped before a frame: the last one is not followed by a non-frame
				return dst, nil
			}
			dst = append(dst, unsafe.Slice((*byte)(unsafe.Add(base, pos+2)), flen-4))
			pos += flen
		}
		// One trailing length per batch, not per frame (which costs more than 5%: README.md):
		// that of a last frame followed by the committed end or by bytes that are no frame. A
		// file truncated inside its last mapped page reads as zeros from the cut on, so the one
		// frame whose leading length survives the cut but not its other bytes is such a frame.
		if n > 0 {
			nonFrame := end-pos < 5 // beforeNonFrame, inlined: a few loads per batch
			if !nonFrame {
				next := int(*(*uint16)(unsafe.Add(base, pos)))
				nonFrame = next < 5 || next > end-pos
			}
			if flen := len(dst[len(dst)-1]) + 4; nonFrame && int(*(*uint16)(unsafe.Add(base, pos-2))) != flen {
				dst, pos, n = dst[:len(dst)-1], pos-flen, n-1
			}
		}
	} else if it.lsize == 2 {
		// DebugChecks: the same loop with every frame's trailing length checked.
		base := unsafe.Pointer(unsafe.SliceData(mem))
		for ; n < maxMsgs && end-pos >= 5; n++ {
			flen := int(*(*uint16)(unsafe.Add(base, pos)))
			if flen < 5 || flen > end-pos || int(*(*uint16)(unsafe.Add(base, pos+flen-2))) != flen {
				break
			}
			if flen > limit-pos && n > 0 {
				it.pos = pos
				return dst, nil
			}
			dst = append(dst, unsafe.Slice((*byte)(unsafe.Add(base, pos+2)), flen-4))
			pos += flen
		}
	} else {
		for ; n < maxMsgs && pos < end; n++ {
			flen, err := frameLen(mem, pos, end, it.lsize)
			if err != nil || (it.debug || it.beforeNonFrame(pos+flen, end)) && trailerLen(mem, pos+flen, it.lsize) != flen {
				break
			}
			if flen > limit-pos && n > 0 {
				it.pos = pos
				return dst, nil
			}
			dst = append(dst, mem[pos+it.lsize:pos+flen-it.lsize:pos+flen-it.lsize])
			pos += flen
		}
	}
	it.pos = pos
	if n < maxMsgs && pos < end {
		// Stopped on a bad frame: re-read it slowly for the precise error; the cursor stays on it.
		_, err := it.next("next batch")
		return dst, err
	}
	return dst, nil
}

// Prev returns the frame before the cursor and moves the cursor back to its start, or nil, nil
// at the start of the log.
func (it *Iterator) Prev() (frame []byte, err error) {
	if err := it.checkOpen("prev"); err != nil {
		return nil, err
	}
	it.dropAhead()
	defer it.guard("prev", debug.SetPanicOnFault(true), &err)
	pos := it.pos
	if pos <= it.base {
		return nil, nil
	}
	flen := trailerLen(it.mem, pos, it.lsize)
	if flen < 2*it.lsize+1 || flen > pos-it.base {
		return nil, it.corrupt("prev", pos-it.lsize, fmt.Errorf("trailing length %d of the frame ending at cursor %d does not fit after the data offset", flen, pos-it.base))
	}
	start := pos - flen
	if it.debug {
		if l, err := frameLen(it.mem, start, pos, it.lsize); err != nil || l != flen {
			return nil, it.corrupt("prev", start, fmt.Errorf("trailing length %d, leading length %d", flen, l))
		}
	}
	it.pos = start
	return it.mem[start+it.lsize : pos-it.lsize : pos-it.lsize], nil
}

// Cursor returns the position of the next frame Next would return, relative to DataOffset.
// Store it to resume later with IteratorOptions.StartCursor or Seek.
func (it *Iterator) Cursor() int64 { return int64(it.pos - it.base) }

// End returns the cursor of the committed end (a fresh atomic load): the committed bytes after
// DataOffset, Node shmio's committedSize. On a closed iterator, or a file truncated under it, it
// returns the last end it loaded.
func (it *Iterator) End() (size int64) {
	size = int64(it.end - it.base)
	if it.closed || !it.log.enter() {
		return size
	}
	defer it.log.leave()
	var err error
	defer recoverFault(debug.SetPanicOnFault(true), "end", it.log.path, -1, &err)
	return int64(it.log.size.Load()) - int64(it.base)
}

// Seek moves the cursor as io.Seeker does (io.SeekEnd counts from the committed end) and returns
// the new cursor. The target must be 0, the committed end, or the start of a committed frame;
// anything else gives ErrCursor and leaves the cursor where it was. A frame start is recognised by
// its lengths: the frame there and the one before it must each have matching leading and trailing
// lengths. With DebugChecks the frame chain is also walked from the start to prove it.
func (it *Iterator) Seek(offset int64, whence int) (cur int64, err error) {
	if it.closed || !it.log.enter() {
		return it.Cursor(), it.checkOpen("seek")
	}
	defer it.log.leave()
	it.dropAhead()
	defer it.guard("seek", debug.SetPanicOnFault(true), &err)
	if err := it.refresh("seek"); err != nil {
		return it.Cursor(), err
	}
	var target int64
	switch whence {
	case io.SeekStart:
		target = offset
	case io.SeekCurrent:
		target = int64(it.pos-it.base) + offset
	case io.SeekEnd:
		target = int64(it.end-it.base) + offset
	default:
		return it.Cursor(), errorf("seek", it.log.path, -1, ErrCursor, "bad whence %d", whence)
	}
	if err := it.validCursor(target); err != nil {
		return it.Cursor(), err
	}
	it.pos = it.base + int(target)
	return target, nil
}

func (it *Iterator) validCursor(c int64) error {
	committed := int64(it.end - it.base)
	bad := func(why string) error {
		return errorf("seek", it.log.path, c+int64(it.base), ErrCursor, "cursor %d: %s", c, why)
	}
	if c < 0 || c > committed {
		return bad(fmt.Sprintf("outside the committed range [0, %d]", committed))
	}
	if c == 0 || c == committed {
		return nil
	}
	off := it.base + int(c)
	flen, err := frameLen(it.mem, off, it.end, it.lsize)
	if err != nil || trailerLen(it.mem, off+flen, it.lsize) != flen {
		return bad("not the start of a frame")
	}
	plen := trailerLen(it.mem, off, it.lsize)
	if plen < 2*it.lsize+1 || plen > off-it.base {
		return bad("not the start of a frame")
	}
	if l, err := frameLen(it.mem, off-plen, off, it.lsize); err != nil || l != plen {
		return bad("not the start of a frame")
	}
	if it.debug {
		for p := it.base; p < off; {
			l, err := frameLen(it.mem, p, it.end, it.lsize)
			if err != nil {
				return bad(fmt.Sprintf("frame chain broken at cursor %d: %v", p-it.base, err))
			}
			p += l
			if p > off {
				return bad("not on the frame chain")
			}
		}
	}
	return nil
}

// All returns the committed frames from the cursor on, for a range loop; it stops at the
// committed end (it does not wait) or after yielding an error.
//
//	for frame, err := range it.All() { ... }
func (it *Iterator) All() iter.Seq2[[]byte, error] { return allFrames(it.Next) }

// Follow is All that waits: at the committed end it blocks in Wait until more frames are
// committed, and ends when ctx is done (yielding ctx's error) or on the first error.
func (it *Iterator) Follow(ctx context.Context) iter.Seq2[[]byte, error] {
	return followFrames(ctx, it.Next, it.Wait)
}

// allFrames is All over any iterator's Next.
func allFrames(next func() ([]byte, error)) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for {
			f, err := next()
			if err != nil {
				yield(nil, err)
				return
			}
			if f == nil || !yield(f, nil) {
				return
			}
		}
	}
}

// followFrames is Follow over any iterator's Next and Wait.
func followFrames(ctx context.Context, next func() ([]byte, error), wait func(context.Context) error) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for {
			f, err := next()
			if err == nil && f == nil {
				if err = wait(ctx); err == nil {
					continue
				}
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(f, nil) {
				return
			}
		}
	}
}

// Close releases the iterator; its methods return ErrClosed afterwards. Frames it returned stay
// valid until the Log is closed.
func (it *Iterator) Close() error {
	if err := it.checkOpen("close iterator"); err != nil {
		return err
	}
	it.closed = true
	return nil
}
