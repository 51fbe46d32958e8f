package shmio

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
)

// codedError is the type of the sentinel errors: a message plus the Node shmio style code.
type codedError struct{ code, msg string }

func (e *codedError) Error() string { return e.msg }

// Sentinel errors. Errors returned by this package wrap one of these (match with errors.Is) in an
// *Error that adds the operation, the file and, where it matters, the offset.
var (
	// ErrFull: the frame does not fit in the remaining capacity of the log.
	ErrFull error = &codedError{"ERR_SHM_EXHAUSTED", "shared memory exhausted"}
	// ErrFrameTooLarge: the payload is larger than the format's maximum (65531 bytes for u16
	// frames) or than an empty log of this capacity could hold.
	ErrFrameTooLarge error = &codedError{"ERR_SHM_FRAME_TOO_LARGE", "frame too large"}
	// ErrEmptyFrame: zero-length payloads are refused, as in Node shmio.
	ErrEmptyFrame error = &codedError{"ERR_SHM_EMPTY_FRAME", "frame size must be positive"}
	// ErrCorrupt: a frame's lengths are impossible or disagree, or the committed end is out of range.
	ErrCorrupt error = &codedError{"ERR_SHM_FRAME_CORRUPT", "frame corrupt"}
	// ErrCursor: a cursor that is not 0, the committed end, or the start of a committed frame.
	ErrCursor error = &codedError{"ERR_SHM_CURSOR", "invalid cursor"}
	// ErrClosed: the iterator, writer or log was closed.
	ErrClosed error = &codedError{"ERR_SHM_ITERATOR_CLOSED", "closed"}
	// ErrReadOnly: the log was opened without Writable.
	ErrReadOnly error = &codedError{"ERR_SHM_READ_ONLY", "log opened read-only"}
	// ErrLocked: another writer, in this or another process, holds the log.
	ErrLocked error = &codedError{"ERR_SHM_LOCKED", "log locked by another writer"}
	// ErrBadHeader: the file is not a shmio log (too small, zero-filled, garbage, not a regular file).
	ErrBadHeader error = &codedError{"ERR_SHM_BAD_HEADER", "bad log header"}
	// ErrSealed: Wait on a sealed log whose every frame has been read, or Writer on a sealed
	// log: no frame will follow.
	ErrSealed error = &codedError{"ERR_SHM_SEALED", "log sealed: no frame will follow"}
	// ErrConflict: Commit found the committed end moved by someone else, a writer that ignores
	// the writer lock (Node shmio writers take none); the writer committed nothing.
	ErrConflict error = &codedError{"ERR_SHM_CONFLICT", "committed end moved under the writer"}
	// ErrUncommitted: Writer.Close discarded frames allocated after the last Commit.
	ErrUncommitted error = &codedError{"ERR_SHM_UNCOMMITTED", "uncommitted frames discarded"}
	// ErrMappingGone: the mapped file shrank under us (truncated by another process).
	ErrMappingGone error = &codedError{"ERR_SHM_MAPPING_GONE", "mapping gone: file truncated while mapped"}
)

// ErrorCode returns the Node shmio style code of err ("ERR_SHM_CURSOR", ...), or "" when err
// wraps none of this package's sentinels.
func ErrorCode(err error) string {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return ""
}

// Error is the error type returned by this package: which operation failed, on which file, at
// which offset (a file offset; -1 when none applies), and why (Err wraps a sentinel or an OS error).
type Error struct {
	Op     string
	Path   string
	Offset int64
	Err    error
}

func (e *Error) Error() string {
	s := "shmio: " + e.Op
	if e.Path != "" {
		s += " " + e.Path
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func newError(op, path string, off int64, err error) error {
	return &Error{Op: op, Path: path, Offset: off, Err: err}
}

// errorf wraps a sentinel with a detail message: errors.Is(result, sentinel) holds.
func errorf(op, path string, off int64, sentinel error, format string, args ...any) error {
	return &Error{Op: op, Path: path, Offset: off, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// faultError turns a recovered memory fault (from debug.SetPanicOnFault) into ErrMappingGone.
// Anything else that was recovered is not ours to hide and is re-raised.
func faultError(r any, op, path string, off int64) error {
	if re, ok := r.(runtime.Error); ok {
		if _, isFault := re.(interface{ Addr() uintptr }); isFault {
			return errorf(op, path, off, ErrMappingGone, "%v", re)
		}
	}
	panic(r)
}

// recoverFault is deferred, right after debug.SetPanicOnFault(true), by the methods that touch
// the mapping: it restores the goroutine's setting and turns a fault (the file was truncated
// by another process) into ErrMappingGone in *err.
func recoverFault(old bool, op, path string, off int64, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		*err = faultError(r, op, path, off)
	}
}
