package shmio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
)

// StoreOptions configure OpenStore.
type StoreOptions struct {
	Writable    bool // the store may give a writer (and, for a queue, apply retention)
	DebugChecks bool // see Options.DebugChecks
	Prefault    bool // see Options.Prefault
}

// OpenStore opens the existing log file or queue directory at path: a directory is opened with
// OpenQueue, anything else with Open. It never creates one: use Open or OpenQueue for that.
func OpenStore(path string, o StoreOptions) (Store, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, newError("open", path, -1, err)
	}
	if fi.IsDir() {
		if _, err := os.Lstat(path + string(os.PathSeparator) + metaFile); errors.Is(err, fs.ErrNotExist) {
			return nil, errorf("open", path, -1, ErrBadHeader, "a directory without %s: not a shmio queue", metaFile)
		}
		q, err := OpenQueue(QueueOptions{Dir: path, Writable: o.Writable, DebugChecks: o.DebugChecks, Prefault: o.Prefault})
		if err != nil {
			return nil, err
		}
		return q, nil
	}
	l, err := Open(Options{Path: path, Writable: o.Writable, DebugChecks: o.DebugChecks, Prefault: o.Prefault})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// OpenReader returns NewIterator(opts) as a FrameIterator.
func (l *Log) OpenReader(opts IteratorOptions) (FrameIterator, error) {
	it, err := l.NewIterator(opts)
	if err != nil {
		return nil, err
	}
	return it, nil
}

// OpenWriter returns Writer() as a FrameWriter.
func (l *Log) OpenWriter() (FrameWriter, error) {
	w, err := l.Writer()
	if err != nil {
		return nil, err
	}
	return w, nil
}

// EndCursor returns the cursor of the committed end: the committed bytes after DataOffset.
func (l *Log) EndCursor() (end int64, err error) {
	if l.closed.Load() {
		return 0, newError("end cursor", l.path, -1, ErrClosed)
	}
	defer recoverFault(debug.SetPanicOnFault(true), "end cursor", l.path, -1, &err)
	return int64(l.size.Load()) - l.lo.dataOffset, nil
}

// Distance counts the frames and bytes from cursor from to cursor to (to < 0: the committed
// end). Both must be valid cursors (ErrCursor otherwise) with from <= to. In a log the bytes are
// to - from; the frames are counted by walking them, about 5 ns each.
func (l *Log) Distance(from, to int64) (frames, bytes int64, err error) {
	it, err := l.NewIterator(IteratorOptions{StartCursor: from, Spin: -1})
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	if to < 0 {
		to = it.End()
	}
	return countFrames(it, from, to)
}

// countFrames walks it from cursor from up to cursor to, which must lie on the frame chain.
func countFrames(it FrameIterator, from, to int64) (frames, bytes int64, err error) {
	if to < from {
		return 0, 0, fmt.Errorf("distance from cursor %d back to %d: %w", from, to, ErrCursor)
	}
	batch := make([]Frame, 0, 256)
	for {
		batch, err = it.NextFrames(batch[:0], BatchOptions{MaxFrames: 256, MaxBytes: 1 << 20})
		for _, f := range batch {
			if f.Cursor >= to {
				return frames, bytes, nil
			}
			if f.End > to {
				return frames, bytes, fmt.Errorf("cursor %d is inside the frame at %d: %w", to, f.Cursor, ErrCursor)
			}
			frames++
			bytes += f.End - f.Cursor
		}
		if err != nil || len(batch) == 0 {
			return frames, bytes, err
		}
	}
}

// OpenReader returns NewIterator(opts) as a FrameIterator.
func (q *Queue) OpenReader(opts IteratorOptions) (FrameIterator, error) {
	it, err := q.NewIterator(opts)
	if err != nil {
		return nil, err
	}
	return it, nil
}

// OpenWriter returns Writer() as a FrameWriter.
func (q *Queue) OpenWriter() (FrameWriter, error) {
	w, err := q.Writer()
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Path returns the queue's directory (as Dir).
func (q *Queue) Path() string { return q.dir }

// EndCursor returns the queue cursor of the committed end.
func (q *Queue) EndCursor() (int64, error) {
	if q.closed.Load() {
		return 0, newError("end cursor", q.dir, -1, ErrClosed)
	}
	return q.endCursor(1)
}

// Distance counts the frames and bytes (length fields included) committed from queue cursor from
// up to cursor to (to < 0: the committed end), across segments, by walking them.
func (q *Queue) Distance(from, to int64) (frames, bytes int64, err error) {
	it, err := q.NewIterator(IteratorOptions{StartCursor: from, Spin: -1})
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	if to < 0 {
		to = it.End()
	}
	return countFrames(it, it.Cursor(), to)
}

// Lag counts the frames and bytes committed after cursor c: Distance(c, -1).
func (q *Queue) Lag(c int64) (frames, bytes int64, err error) { return q.Distance(c, -1) }
