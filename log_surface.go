package shmio

import "sync/atomic"

// The queue is built on logs through this small surface, not through their fields: a segment is
// a Log, its writer a Writer and its reader an Iterator; the queue adds only header words of its
// own (see FORMAT.md, "Segment words") and the knowledge of where a writer's frames end.

// word64 is the header word at offset off (a format.Off* constant) of a file made here.
func (l *Log) word64(off int) *atomic.Uint64 { return u64at(l.mem, off) }

// dataOff is the file offset of the first frame.
func (l *Log) dataOff() int64 { return l.lo.dataOffset }

// fileSize is the size of the mapped file.
func (l *Log) fileSize() int64 { return int64(len(l.mem)) }

// uncommitted reports whether the writer has allocated frames it has not committed.
func (w *Writer) uncommitted() bool { return w.end != w.committed }

// endCursor is the cursor after the writer's last allocated frame.
func (w *Writer) endCursor() int64 { return int64(w.end) - w.log.lo.dataOffset }

// committedCursor is the cursor of the writer's committed end.
func (w *Writer) committedCursor() int64 { return int64(w.committed) - w.log.lo.dataOffset }

// drainedAtEnd reports whether the iterator has read every frame of the end it last loaded, and
// that end is the log's committed end now: at a sealed segment's end, the queue moves on.
func (it *Iterator) drainedAtEnd() bool {
	return it.pos == it.end && it.pos != it.base && int(it.log.size.Load()) == it.pos
}
