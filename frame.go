package shmio

import "unsafe"

// Frame is a committed frame with its place in the log or queue: what a reader needs to
// acknowledge, checkpoint or replicate it without deriving cursors from frame lengths.
type Frame struct {
	// Data is the payload, a slice of the mapping: read-only, valid as long as the slices
	// Next returns (see the package doc, "Slice validity").
	Data []byte
	// Cursor is where the frame starts: Seek(Cursor, io.SeekStart) makes it the next frame.
	Cursor int64
	// End is the cursor just past the frame, where reading resumes after it. In a queue, the
	// End of a sealed segment's last frame is that segment's end, which Seek and StartCursor
	// take as the start of the next segment.
	End int64
}

// frameStart returns the file offset of the frame whose payload is p, a slice of mem.
func frameStart(mem, p []byte, lsize int) int {
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(p)))-uintptr(unsafe.Pointer(unsafe.SliceData(mem)))) - lsize
}

// frameAt describes the frame whose payload p an iterator just returned.
func (it *Iterator) frameAt(p []byte) Frame {
	c := int64(frameStart(it.mem, p, it.lsize) - it.base)
	return Frame{Data: p, Cursor: c, End: c + int64(len(p)+2*it.lsize)}
}

// NextFrame is Next with the frame's cursors; a zero Frame (Data nil) when nothing more is
// committed.
func (it *Iterator) NextFrame() (Frame, error) {
	p, err := it.Next()
	if p == nil {
		return Frame{}, err
	}
	return it.frameAt(p), err
}

// PrevFrame is Prev with the frame's cursors: afterwards Cursor() is the frame's Cursor.
func (it *Iterator) PrevFrame() (Frame, error) {
	p, err := it.Prev()
	if p == nil {
		return Frame{}, err
	}
	return it.frameAt(p), err
}

// NextFrames is NextBatch with each frame's cursors: it appends to dst and returns it, with the
// same bounds, errors and cursor movement. Passing the previous batch as dst[:0] makes reading
// allocation-free.
func (it *Iterator) NextFrames(dst []Frame, o BatchOptions) ([]Frame, error) {
	var err error
	it.scratch, err = it.NextBatch(it.scratch[:0], o)
	for _, p := range it.scratch {
		dst = append(dst, it.frameAt(p))
	}
	clear(it.scratch) // hold no references to the mapping past the call
	return dst, err
}

// queueFrame turns a frame of the iterator's current segment into a queue frame.
func (qi *QueueIterator) queueFrame(f Frame) Frame {
	f.Cursor = QueueCursor(qi.seg, f.Cursor)
	f.End = QueueCursor(qi.seg, f.End)
	return f
}

// NextFrame is Next with the frame's queue cursors; a zero Frame when nothing more is committed.
func (qi *QueueIterator) NextFrame() (Frame, error) {
	p, err := qi.Next()
	if p == nil {
		return Frame{}, err
	}
	return qi.queueFrame(qi.it.frameAt(p)), err
}

// PrevFrame is Prev with the frame's queue cursors.
func (qi *QueueIterator) PrevFrame() (Frame, error) {
	p, err := qi.Prev()
	if p == nil {
		return Frame{}, err
	}
	return qi.queueFrame(qi.it.frameAt(p)), err
}

// NextFrames is NextBatch with each frame's queue cursors. A batch holds frames of one segment.
func (qi *QueueIterator) NextFrames(dst []Frame, o BatchOptions) ([]Frame, error) {
	var err error
	qi.scratch, err = qi.NextBatch(qi.scratch[:0], o)
	for _, p := range qi.scratch {
		dst = append(dst, qi.queueFrame(qi.it.frameAt(p)))
	}
	clear(qi.scratch)
	return dst, err
}
