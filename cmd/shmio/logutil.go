package main

// Helpers shared by create, stat, append, tail, dump and verify: opening a log with
// user-facing error messages, cursor parsing, and the raw frame diagnosis verify and dump print.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/shmio/shmio"
)

// writeJSON writes v as one indented JSON object: the --json output of stat, bench and
// replicate status.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openLog opens an existing log, turning the usual failures into one clear sentence.
// It never creates a file, even when writable (shmio.Open would).
func openLog(path string, writable, debugChecks bool) (*shmio.Log, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file (create one with: shmio create %s --capacity 64MiB)", path, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: permission denied", path)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, unwrapPathError(err))
	case fi.IsDir():
		return nil, fmt.Errorf("%s: is a directory, not a shmio log", path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: not a regular file (%s), not a shmio log", path, fileKind(fi.Mode()))
	}
	l, err := shmio.Open(shmio.Options{Path: path, Writable: writable, DebugChecks: debugChecks})
	if err != nil {
		return nil, openError(path, writable, err)
	}
	return l, nil
}

// openError words an error from shmio.Open for a person.
func openError(path string, writable bool, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		access := "read"
		if writable {
			access = "read and write"
		}
		return fmt.Errorf("%s: permission denied (need %s access)", path, access)
	case errors.Is(err, shmio.ErrBadHeader):
		return &msgError{fmt.Sprintf("%s: not a shmio log: %s", path, badHeaderCause(err)), err}
	}
	return &msgError{fmt.Sprintf("%s: %s", path, rootCause(err)), err}
}

// badHeaderCause is the detail of an ErrBadHeader error, without the sentinel's own words.
func badHeaderCause(err error) string {
	s := rootCause(err)
	return strings.TrimPrefix(s, shmio.ErrBadHeader.Error()+": ")
}

// msgError is an error with a message of our own wording that still matches errors.Is on the
// library error it replaces.
type msgError struct {
	msg string
	err error
}

func (e *msgError) Error() string { return e.msg }
func (e *msgError) Unwrap() error { return e.err }

// rootCause returns the innermost meaningful message of err without repeating the path and
// operation every wrapper adds, so errors stay one short line.
func rootCause(err error) string {
	var se *shmio.Error
	if errors.As(err, &se) && se.Err != nil {
		err = se.Err
	}
	return unwrapPathError(err).Error()
}

// unwrapPathError drops the "open /path:" prefix of *fs.PathError when the caller prints the path.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return m.Type().String()
}

// parseCursor parses a non-negative decimal cursor.
func parseCursor(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid cursor %q: want a non-negative byte offset such as 0 or 4096", s)
	}
	return n, nil
}

// cursorError words an iterator positioning error for a cursor the user gave.
func cursorError(path string, cursor, committed int64, err error) error {
	if cursor > committed {
		return fmt.Errorf("%s: cursor %d is past the committed end (%d)", path, cursor, committed)
	}
	if errors.Is(err, shmio.ErrCursor) {
		return fmt.Errorf("%s: cursor %d is not the start of a frame (use a cursor printed by tail, dump or stat)", path, cursor)
	}
	return fmt.Errorf("%s: cannot start at cursor %d: %s", path, cursor, rootCause(err))
}

// lenFieldSize is the size of one frame length field: 2 bytes, or 4 for wide frames.
func lenFieldSize(h shmio.Header) int64 {
	if h.WideFrames {
		return 4
	}
	return 2
}

// frameProblem reads the raw frame at cursor from the file and says what is wrong with it, in
// terms an operator can check with a hex dump. end is the committed end (relative cursor) the
// walk used. It returns "" when the frame at cursor looks well-formed.
func frameProblem(path string, h shmio.Header, cursor, end int64) string {
	ls := lenFieldSize(h)
	if cursor+ls > end {
		return fmt.Sprintf("length field at cursor %d runs past the committed end %d", cursor, end)
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head, err := readLenField(f, h, cursor)
	if err != nil {
		return ""
	}
	switch {
	case head < 2*ls+1:
		return fmt.Sprintf("length %d is smaller than the smallest frame (%d bytes)", head, 2*ls+1)
	case cursor+head > end:
		return fmt.Sprintf("length %d runs past the committed end %d (the frame would end at %d)", head, end, cursor+head)
	}
	tail, err := readLenField(f, h, cursor+head-ls)
	if err != nil {
		return ""
	}
	if tail != head {
		return fmt.Sprintf("head length %d but tail length %d (asymmetric frame)", head, tail)
	}
	return ""
}

// frameEndProblem is frameProblem for a backward walk: it examines the frame that ends at end
// (a relative cursor), reading its tail length first, as Prev does.
func frameEndProblem(path string, h shmio.Header, frameEnd int64) string {
	ls := lenFieldSize(h)
	if frameEnd < ls {
		return fmt.Sprintf("tail length field before cursor %d runs past the start of the data", frameEnd)
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	tail, err := readLenField(f, h, frameEnd-ls)
	if err != nil {
		return ""
	}
	switch {
	case tail < 2*ls+1:
		return fmt.Sprintf("tail length %d of the frame ending at cursor %d is smaller than the smallest frame (%d bytes)", tail, frameEnd, 2*ls+1)
	case tail > frameEnd:
		return fmt.Sprintf("tail length %d of the frame ending at cursor %d reaches before the first frame", tail, frameEnd)
	}
	head, err := readLenField(f, h, frameEnd-tail)
	if err != nil {
		return ""
	}
	if head != tail {
		return fmt.Sprintf("tail length %d points back to cursor %d, where the head length is %d (asymmetric frame)", tail, frameEnd-tail, head)
	}
	return ""
}

func readLenField(f *os.File, h shmio.Header, cursor int64) (int64, error) {
	var b [4]byte
	n := lenFieldSize(h)
	if _, err := f.ReadAt(b[:n], h.DataOffset+cursor); err != nil {
		return 0, err
	}
	if n == 2 {
		return int64(binary.LittleEndian.Uint16(b[:2])), nil
	}
	return int64(binary.LittleEndian.Uint32(b[:4])), nil
}

// rawBytes returns up to n bytes of the file starting at relative cursor, for showing an
// operator what sits at a corrupt offset.
func rawBytes(path string, h shmio.Header, cursor int64, n int) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if avail := h.Capacity - h.DataOffset - cursor; avail < int64(n) {
		n = int(max(0, avail))
	}
	b := make([]byte, n)
	k, _ := f.ReadAt(b, h.DataOffset+cursor)
	return b[:k]
}

// openQueue opens an existing queue directory, turning the usual failures into one clear
// sentence. It never creates one (shmio.OpenQueue would, when writable).
func openQueue(dir string, writable bool) (*shmio.Queue, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such queue (create one with: shmio create --queue %s --segment-size 4MiB)", dir, dir)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: permission denied", dir)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", dir, unwrapPathError(err))
	case !fi.IsDir():
		return nil, fmt.Errorf("%s: not a directory, not a shmio queue", dir)
	}
	if !shmio.IsQueue(dir) {
		return nil, fmt.Errorf("%s: is a directory but not a shmio queue (no queue.json or segments; create one with: shmio create --queue %s --segment-size 4MiB)", dir, dir)
	}
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: dir, Writable: writable, DebugChecks: true})
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%s: permission denied", dir)
		}
		return nil, &msgError{fmt.Sprintf("%s: %s", dir, rootCause(err)), err}
	}
	return q, nil
}

// lockedWriterError words a failure to become the (single) writer of a log or queue at path;
// status reports the lock holder, when it can.
func lockedWriterError(path, what string, err error, status func() (bool, int, error)) error {
	if errors.Is(err, shmio.ErrLocked) {
		if held, pid, _ := status(); held && pid != 0 {
			return fmt.Errorf("%s: another writer (pid %d) holds the %s; only one writer may append at a time", path, pid, what)
		}
		return fmt.Errorf("%s: another writer holds the %s; only one writer may append at a time", path, what)
	}
	return fmt.Errorf("%s: %s", path, rootCause(err))
}

// queueCursorString shows a queue cursor as the packed int64 and its parts.
func queueCursorString(c int64) string {
	seg, off := shmio.SplitQueueCursor(c)
	return fmt.Sprintf("%d (segment %d offset %d)", c, seg, off)
}

// parseQueueCursor parses a queue cursor: the packed int64, or SEGMENT:OFFSET.
func parseQueueCursor(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if a, b, ok := strings.Cut(s, ":"); ok {
		seg, err1 := strconv.ParseInt(a, 10, 64)
		off, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || seg < 0 || off < 0 || seg > 1<<31-1 || off > 1<<32-1 {
			return 0, fmt.Errorf("invalid queue cursor %q: want a cursor printed by tail, dump or stat, or SEGMENT:OFFSET", s)
		}
		return shmio.QueueCursor(seg, off), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid queue cursor %q: want a cursor printed by tail, dump or stat, or SEGMENT:OFFSET", s)
	}
	return n, nil
}

// openReader opens the log at path for an operator's read-only walk (with DebugChecks, so a
// damaged frame is reported rather than printed) and an iterator at its first frame. Closing the
// log releases both.
func openReader(path string) (*shmio.Log, *shmio.Iterator, error) {
	l, err := openLog(path, false, true)
	if err != nil {
		return nil, nil, err
	}
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	return l, it, nil
}
