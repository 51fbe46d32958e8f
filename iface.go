package shmio

import (
	"context"
	"iter"
)

// FrameWriter is the writing side of a log: what *Writer does, as an interface so that code
// written against it takes any frame store with the same semantics.
type FrameWriter interface {
	Allocate(n int) ([]byte, error)
	Append(p []byte) error
	Commit() error
	Sync() error
	Close() error
}

// FrameIterator is the reading side of a log: what *Iterator does.
type FrameIterator interface {
	Next() ([]byte, error)
	NextBatch(dst [][]byte, o BatchOptions) ([][]byte, error)
	Prev() ([]byte, error)
	Cursor() int64
	CommittedSize() int64
	Seek(offset int64, whence int) (int64, error)
	Wait(ctx context.Context) error
	All() iter.Seq2[[]byte, error]
	Close() error
}

var (
	_ FrameWriter   = (*Writer)(nil)
	_ FrameIterator = (*Iterator)(nil)
)
