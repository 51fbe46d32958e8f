package main

// Opening a log or a queue for a verb, with errors worded for a person, and the few things a verb
// prints about cursors, which differ between the two.

import (
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

// target is the log file or queue directory a verb works on.
type target struct {
	path string
	s    shmio.Store
	log  *shmio.Log   // nil for a queue
	q    *shmio.Queue // nil for a log
}

func (t *target) Close() error { return t.s.Close() }

// checkPath gives a person's answer for the usual reasons path is no log or queue.
func checkPath(path string) (fs.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file (create one with: shmio create %s --capacity 64MiB)", path, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: permission denied", path)
	case err != nil:
		return nil, fmt.Errorf("%s: %s", path, rootCause(err))
	case fi.IsDir() && !shmio.IsQueue(path):
		if _, err := os.ReadDir(path); errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%s: permission denied (cannot list the directory)", path)
		}
		return nil, fmt.Errorf("%s: is a directory, not a shmio log", path)
	case !fi.IsDir() && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: not a regular file (%s), not a shmio log", path, fileKind(fi.Mode()))
	}
	return fi, nil
}

// openTarget opens the existing log or queue at path. It never creates one. Readers get
// DebugChecks: an operator's tool reports a damaged frame rather than print garbage.
func openTarget(path string, writable bool) (*target, error) {
	fi, err := checkPath(path)
	if err != nil {
		return nil, err
	}
	s, err := shmio.OpenStore(path, shmio.StoreOptions{Writable: writable, DebugChecks: !writable || fi.IsDir()})
	if err != nil {
		return nil, openError(path, writable, err)
	}
	t := &target{path: path, s: s}
	t.log, _ = s.(*shmio.Log)
	t.q, _ = s.(*shmio.Queue)
	return t, nil
}

// openLog opens an existing log file (not a queue) for the verbs that take only logs.
func openLog(path string, writable, debugChecks bool) (*shmio.Log, error) {
	fi, err := checkPath(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, not a shmio log", path)
	}
	l, err := shmio.Open(shmio.Options{Path: path, Writable: writable, DebugChecks: debugChecks})
	if err != nil {
		return nil, openError(path, writable, err)
	}
	return l, nil
}

// openQueue opens an existing queue directory.
func openQueue(dir string, writable bool) (*shmio.Queue, error) {
	if !shmio.IsQueue(dir) {
		return nil, fmt.Errorf("%s: not a shmio queue (create one with: shmio create --queue %s --segment-size 4MiB)", dir, dir)
	}
	t, err := openTarget(dir, writable)
	if err != nil {
		return nil, err
	}
	return t.q, nil
}

// openError words an error from opening a log or queue for a person.
func openError(path string, writable bool, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		access := "read"
		if writable {
			access = "read and write"
		}
		return fmt.Errorf("%s: permission denied (need %s access)", path, access)
	case errors.Is(err, shmio.ErrBadHeader):
		cause := strings.TrimPrefix(rootCause(err), shmio.ErrBadHeader.Error()+": ")
		return &msgError{fmt.Sprintf("%s: not a shmio log: %s", path, cause), err}
	}
	return &msgError{fmt.Sprintf("%s: %s", path, rootCause(err)), err}
}

// msgError is an error worded by the command that still matches errors.Is on the library error.
type msgError struct {
	msg string
	err error
}

func (e *msgError) Error() string { return e.msg }
func (e *msgError) Unwrap() error { return e.err }

// rootCause is the message of err without the operation and path every wrapper adds (the caller
// prints the path once), and with a fault on a mapping named for what it is.
func rootCause(err error) string {
	if errors.Is(err, shmio.ErrMappingGone) {
		return "the file was truncated while mapped here (recreated or cut by another program?)"
	}
	var se *shmio.Error
	if errors.As(err, &se) && se.Err != nil {
		err = se.Err
	}
	msg := err.Error()
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		msg = strings.Replace(msg, pe.Op+" "+pe.Path+": ", "", 1)
	}
	return msg
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
	return "not a plain file"
}

// cursorString shows a cursor: a log's as is, a queue's with its segment and offset.
func (t *target) cursorString(c int64) string {
	if t.q == nil {
		return strconv.FormatInt(c, 10)
	}
	return queueCursorString(c)
}

func queueCursorString(c int64) string {
	seg, off := shmio.SplitQueueCursor(c)
	return fmt.Sprintf("%d (segment %d offset %d)", c, seg, off)
}

// parseCursor parses a cursor the user gave: a number, or for a queue also SEGMENT:OFFSET.
func (t *target) parseCursor(s string) (int64, error) { return shmio.ParseCursor(s, t.q != nil) }

// seek positions it at cursor c the user gave, with a message naming what is wrong with c.
func (t *target) seek(it shmio.FrameIterator, c int64) error {
	_, err := it.Seek(c, io.SeekStart)
	switch {
	case err == nil:
		return nil
	case t.q != nil && errors.Is(err, shmio.ErrCursor):
		return fmt.Errorf("%s: cursor %s: %s", t.path, t.cursorString(c), rootCause(err))
	case t.q != nil:
		return fmt.Errorf("%s: cannot start at cursor %s: %s", t.path, t.cursorString(c), rootCause(err))
	case c > it.End():
		return fmt.Errorf("%s: cursor %d is past the committed end (%d)", t.path, c, it.End())
	case errors.Is(err, shmio.ErrCursor):
		return fmt.Errorf("%s: cursor %d is not the start of a frame (use a cursor printed by tail, dump or stat)", t.path, c)
	}
	return fmt.Errorf("%s: cannot start at cursor %d: %s", t.path, c, rootCause(err))
}

// corrupt words a read error met at cursor c ("frame at cursor 9 (file offset 201): head length
// 9 but tail length 7 (asymmetric frame)"); ending: the frame ending at c, met reading backward.
// For a log the library says what is wrong with the frame's lengths.
func (t *target) corrupt(c int64, ending bool, err error) string {
	if t.log == nil {
		frame := "frame at"
		if ending {
			frame = "frame ending at"
		}
		return fmt.Sprintf("%s cursor %s: %s", frame, t.cursorString(c), rootCause(err))
	}
	p := t.log.FrameProblemAt(c, ending)
	if p.What == "" {
		p.What = rootCause(err)
	}
	return p.String()
}

// lockedWriterError words a failure to become the (single) writer of the target.
func (t *target) lockedWriterError(err error) error {
	what := "log"
	if t.q != nil {
		what = "queue"
	}
	switch {
	case errors.Is(err, shmio.ErrLocked) && strings.Contains(err.Error(), "shared writers hold it"):
		return fmt.Errorf("%s: shared writers hold the %s; append with --shared to write beside them", t.path, what)
	case errors.Is(err, shmio.ErrLocked):
		if held, pid, _ := t.s.WriterStatus(); held && pid != 0 {
			return fmt.Errorf("%s: another writer (pid %d) holds the %s; only one writer may append at a time", t.path, pid, what)
		}
		return fmt.Errorf("%s: another writer holds the %s; only one writer may append at a time", t.path, what)
	case errors.Is(err, shmio.ErrSealed):
		return fmt.Errorf("%s: the %s is sealed: no frame may follow (create a new one)", t.path, what)
	}
	return fmt.Errorf("%s: %s", t.path, rootCause(err))
}

// writeJSON writes v as one indented JSON object: the --json output of stat, bench and
// replicate status.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// plural returns word, with an s unless n is 1.
func plural(n int64, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
