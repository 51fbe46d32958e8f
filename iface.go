package shmio

import (
	"context"
	"iter"
)

// The interfaces below are the one reader/writer abstraction over logs and queues: the command,
// the agent and replication are written against them.

// Store is a log or a queue, as code that takes either sees it: the shmio command, the agent and
// replication work through it. *Log and *Queue implement it, and OpenStore opens either by path.
// Cursors are those of the store: byte offsets for a log, segment<<32|offset for a queue; use
// Distance, never a difference of cursors, to count what lies between two of them.
type Store interface {
	// Path is the log file or the queue directory.
	Path() string
	// OpenReader is NewIterator for code written against FrameIterator.
	OpenReader(opts IteratorOptions) (FrameIterator, error)
	// OpenWriter is Writer for code written against FrameWriter.
	OpenWriter() (FrameWriter, error)
	// EndCursor is the cursor of the committed end (a fresh load).
	EndCursor() (int64, error)
	// Distance counts the committed frames and their bytes (length fields included) from cursor
	// from up to cursor to; to < 0 means the committed end. It walks the frames between.
	Distance(from, to int64) (frames, bytes int64, err error)
	// CommitTag is the tag of the last tagged commit, ok only while it names the committed end.
	CommitTag() (tag uint64, ok bool, err error)
	// WriterStatus reports whether a writer holds the store, and its pid where the system tells.
	WriterStatus() (held bool, pid int, err error)
	// MaxPayload is the largest frame payload the store takes.
	MaxPayload() int
	// Verify checks every committed frame (and a queue's segments and chain); see Log.Verify
	// and Queue.Verify.
	Verify() (VerifyResult, error)
	// Close releases the store; readers and writers opened from it must be closed first.
	Close() error
}

// FrameWriter is the writing side of a log or a queue: what *Writer and *QueueWriter do.
type FrameWriter interface {
	Allocate(n int) ([]byte, error)
	Append(p []byte) error
	Commit() error
	CommitTagged(tag uint64) error
	// Seal commits and marks the end: no frame will follow, and readers that have read
	// everything get ErrSealed from Wait.
	Seal() error
	Sync() error
	Close() error
}

// FrameIterator is the reading side of a log or a queue: what *Iterator and *QueueIterator do.
type FrameIterator interface {
	Next() ([]byte, error)
	NextFrame() (Frame, error)
	NextBatch(dst [][]byte, o BatchOptions) ([][]byte, error)
	NextFrames(dst []Frame, o BatchOptions) ([]Frame, error)
	Prev() ([]byte, error)
	PrevFrame() (Frame, error)
	Cursor() int64
	End() int64
	Seek(offset int64, whence int) (int64, error)
	Wait(ctx context.Context) error
	All() iter.Seq2[[]byte, error]
	Follow(ctx context.Context) iter.Seq2[[]byte, error]
	Close() error
}

var (
	_ FrameWriter   = (*Writer)(nil)
	_ FrameIterator = (*Iterator)(nil)
	_ FrameWriter   = (*QueueWriter)(nil)
	_ FrameIterator = (*QueueIterator)(nil)
	_ Store         = (*Log)(nil)
	_ Store         = (*Queue)(nil)
)
