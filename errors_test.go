package shmio

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrorCodes(t *testing.T) {
	want := map[error]string{
		ErrFull:          "ERR_SHM_EXHAUSTED",
		ErrFrameTooLarge: "ERR_SHM_FRAME_TOO_LARGE",
		ErrEmptyFrame:    "ERR_SHM_EMPTY_FRAME",
		ErrCorrupt:       "ERR_SHM_FRAME_CORRUPT",   // Node shmio's code
		ErrCursor:        "ERR_SHM_CURSOR",          // Node shmio's code
		ErrClosed:        "ERR_SHM_ITERATOR_CLOSED", // Node shmio's code
		ErrReadOnly:      "ERR_SHM_READ_ONLY",
		ErrLocked:        "ERR_SHM_LOCKED",
		ErrBadHeader:     "ERR_SHM_BAD_HEADER",
		ErrMappingGone:   "ERR_SHM_MAPPING_GONE", // Node shmio's code
		ErrSealed:        "ERR_SHM_SEALED",
	}
	for sentinel, code := range want {
		if got := ErrorCode(sentinel); got != code {
			t.Errorf("ErrorCode(%v) = %q, want %q", sentinel, got, code)
		}
		wrapped := errorf("op", "/p", 7, sentinel, "detail %d", 1)
		if !errors.Is(wrapped, sentinel) || ErrorCode(wrapped) != code {
			t.Errorf("wrapped %v: Is=%v code %q", sentinel, errors.Is(wrapped, sentinel), ErrorCode(wrapped))
		}
		if got := ErrorCode(fmt.Errorf("outer: %w", wrapped)); got != code {
			t.Errorf("doubly wrapped %v: code %q", sentinel, got)
		}
		for other := range want {
			if other != sentinel && errors.Is(wrapped, other) {
				t.Errorf("%v also matches %v", sentinel, other)
			}
		}
	}
	for _, err := range []error{nil, errors.New("x"), fs.ErrNotExist, newError("open", "/p", -1, fs.ErrNotExist)} {
		if got := ErrorCode(err); got != "" {
			t.Errorf("ErrorCode(%v) = %q, want \"\"", err, got)
		}
	}
	if !strings.Contains(ErrFull.Error(), "shared memory exhausted") {
		t.Errorf("ErrFull = %q", ErrFull)
	}
}

func TestErrorFormat(t *testing.T) {
	e := errorf("next", "/dev/shm/x", 220, ErrCorrupt, "frame at cursor %d", 28)
	if got, want := e.Error(), "shmio: next /dev/shm/x at offset 220: frame corrupt: frame at cursor 28"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := newError("writer", "/l", -1, ErrReadOnly).Error(), "shmio: writer /l: log opened read-only"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := newError("open", "", -1, errors.New("empty path")).Error(), "shmio: open: empty path"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var se *Error
	if !errors.As(e, &se) || se.Op != "next" || se.Path != "/dev/shm/x" || se.Offset != 220 || !errors.Is(se.Unwrap(), ErrCorrupt) {
		t.Errorf("As(*Error) = %+v", se)
	}

	// Errors from the API carry the path and operation.
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 200})
	w := utWriter(t, l)
	err := w.Append(make([]byte, 100))
	if !strings.HasPrefix(err.Error(), "shmio: allocate "+path+" at offset 192: ") {
		t.Errorf("API error %q lacks op, path and offset", err)
	}
}

// Only memory faults become ErrMappingGone; any other panic is not the library's to hide.
func TestFaultErrorRepanics(t *testing.T) {
	for _, v := range []any{"boom", fmt.Errorf("x"), runtimeIndexError()} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("faultError(%v) swallowed a non-fault panic", v)
				}
			}()
			faultError(v, "next", "/p", 0)
		}()
	}
}

func runtimeIndexError() (r any) {
	defer func() { r = recover() }()
	var s []int
	i := 3
	_ = s[i]
	return nil
}
