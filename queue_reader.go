package shmio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/format"
	"github.com/shmio/shmio/internal/mmap"
	"golang.org/x/sys/unix"
)

// A named reader's file, Dir/readers/NAME.reader (layout in internal/format and FORMAT.md), is
// mapped shared by the reader so that storing its cursor is one atomic store and survives the
// process (it is in the page cache, or in /dev/shm's memory). Tools read it with pread.
const (
	rdOffVersion  = format.OffReaderVersion
	rdOffPID      = format.OffReaderPID
	rdOffCursor   = format.OffReaderCursor
	rdOffCaughtUp = format.OffReaderCaughtUp
	rdOffCreated  = format.OffReaderCreated
	rdSize        = format.ReaderFileSize
)

var readerMagic = format.ReaderMagic

type namedReader struct {
	name     string
	path     string
	f        *os.File
	mem      []byte
	cursor   *atomic.Uint64
	caughtUp *atomic.Uint64
}

// validReaderName keeps names to plain file names.
func validReaderName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return fmt.Errorf("reader name %q: want 1 to 128 characters, not starting with '.'", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("reader name %q: only letters, digits, '_', '-' and '.'", name)
		}
	}
	return nil
}

// Reader files live in their own directory, so that listing them stays cheap however many
// segments there are (retention reads every cursor after each roll).
func readerPath(dir, name string) string { return filepath.Join(dir, readersDir, name+readerSuffix) }

// openNamedReader opens (creating when missing) and locks a named reader's file. Nothing in
// readers/ is reached through a symbolic link (see queue_files.go).
func (q *Queue) openNamedReader(name string) (*namedReader, bool, error) {
	if err := validReaderName(name); err != nil {
		return nil, false, newError("iterator", q.dir, -1, err)
	}
	path := readerPath(q.dir, name)
	d, err := q.readersDirFile("iterator", true)
	if err != nil {
		return nil, false, err
	}
	defer d.Close()
	removeStaleTempsAt(d) // left by readers killed inside createReaderFile
	created := false
	f, err := openQueueFileAt("iterator", d, name+readerSuffix, unix.O_RDWR)
	if errors.Is(err, fs.ErrNotExist) {
		if f, err = createReaderFile(d, name+readerSuffix, q.opts.Mode); err == nil {
			created = true
		} else if errors.Is(err, fs.ErrExist) {
			f, err = openQueueFileAt("iterator", d, name+readerSuffix, unix.O_RDWR)
		} else {
			err = newError("iterator", path, -1, err)
		}
	}
	if err != nil {
		return nil, false, err
	}
	switch err := flock.TryLock(int(f.Fd())); {
	case errors.Is(err, flock.ErrWouldBlock):
		f.Close()
		return nil, false, errorf("iterator", path, -1, ErrLocked, "reader %q is in use by another iterator", name)
	case err != nil:
		f.Close()
		return nil, false, newError("iterator", path, -1, fmt.Errorf("flock: %w", err))
	}
	mem, err := mmap.Map(int(f.Fd()), rdSize, true, false)
	if err == nil {
		if fi, serr := f.Stat(); serr != nil || fi.Size() < rdSize || [8]byte(mem[:8]) != readerMagic {
			mmap.Unmap(mem)
			err = fmt.Errorf("%w: not a reader file", ErrBadHeader)
		}
	}
	if err != nil {
		flock.Unlock(int(f.Fd()))
		f.Close()
		return nil, false, newError("iterator", path, -1, err)
	}
	u32at(mem, rdOffPID).Store(uint32(os.Getpid()))
	return &namedReader{name: name, path: path, f: f, mem: mem,
		cursor: u64at(mem, rdOffCursor), caughtUp: u64at(mem, rdOffCaughtUp)}, created, nil
}

// createReaderFile makes the file under a temporary name and links it into place, so nobody
// sees it without its magic.
func createReaderFile(d *os.File, name string, mode os.FileMode) (*os.File, error) {
	tmp := tempName("." + name)
	f, err := createQueueFileAt(d, tmp, mode)
	if err != nil {
		return nil, err
	}
	defer unix.Unlinkat(int(d.Fd()), tmp, 0)
	b := make([]byte, rdSize)
	copy(b, readerMagic[:])
	le.PutUint32(b[rdOffVersion:], format.ReaderVersion)
	le.PutUint64(b[rdOffCreated:], uint64(time.Now().UnixNano()))
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = unix.Linkat(int(d.Fd()), tmp, int(d.Fd()), name, 0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (r *namedReader) close() error {
	if r == nil {
		return nil
	}
	u32at(r.mem, rdOffPID).CompareAndSwap(uint32(os.Getpid()), 0)
	return errors.Join(mmap.Unmap(r.mem), flock.Unlock(int(r.f.Fd())), r.f.Close())
}

// ReaderInfo describes a named reader.
type ReaderInfo struct {
	Name     string
	Path     string
	Cursor   int64     // stored cursor: every frame before it is done
	Active   bool      // an iterator holds the name right now (in some process)
	PID      int       // that process, when known
	CaughtUp time.Time // when the reader last found nothing more to read (zero: never)
	Created  time.Time
	// Lag: what is committed after Cursor. Lag is how long the reader has been behind: 0 when
	// LagFrames is 0, else the time since CaughtUp (or since Created).
	LagFrames int64
	LagBytes  int64 // payload plus the 4 bytes of lengths per frame
	Lag       time.Duration
	Err       error // the file is unreadable, or its cursor is gone (ErrCursor)
}

// Readers lists the named readers with their lag, walking the frames each one has not read
// (cost proportional to the lag).
func (q *Queue) Readers() ([]ReaderInfo, error) {
	d, names, err := q.readerNames()
	if err != nil {
		return nil, err
	}
	if d == nil {
		return []ReaderInfo{}, nil
	}
	defer d.Close()
	now := time.Now()
	out := make([]ReaderInfo, 0, len(names))
	for _, name := range names {
		ri := ReaderInfo{Name: name, Path: readerPath(q.dir, name)}
		var b [rdSize]byte
		if ri.Err = preadAt(d, name+readerSuffix, b[:]); ri.Err == nil && [8]byte(b[:8]) != readerMagic {
			ri.Err = errorf("readers", ri.Path, 0, ErrBadHeader, "not a reader file (magic %q)", b[:8])
		}
		if ri.Err != nil {
			out = append(out, ri)
			continue
		}
		ri.Cursor = int64(le.Uint64(b[rdOffCursor:]))
		if t := int64(le.Uint64(b[rdOffCaughtUp:])); t != 0 {
			ri.CaughtUp = time.Unix(0, t)
		}
		if t := int64(le.Uint64(b[rdOffCreated:])); t != 0 {
			ri.Created = time.Unix(0, t)
		}
		ri.Active, ri.PID, _ = flock.Holder(ri.Path)
		ri.LagFrames, ri.LagBytes, ri.Err = q.Lag(ri.Cursor)
		if ri.LagFrames > 0 {
			since := ri.CaughtUp
			if since.IsZero() {
				since = ri.Created
			}
			if !since.IsZero() {
				ri.Lag = max(now.Sub(since), 0)
			}
		}
		out = append(out, ri)
	}
	return out, nil
}

// readerNames lists the named readers, with readers/ open for reading their files (nil, with no
// names, when there is none).
func (q *Queue) readerNames() (*os.File, []string, error) {
	d, err := q.readersDirFile("list readers", false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	ents, err := d.ReadDir(-1)
	if err != nil {
		d.Close()
		return nil, nil, newError("list readers", q.dir, -1, err)
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), readerSuffix); ok && validReaderName(n) == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return d, names, nil
}

// readerCursors returns every named reader's stored cursor (unreadable files are skipped: a
// reader being created has not read anything yet, and is at the start it was given).
func (q *Queue) readerCursors() ([]int64, error) {
	d, names, err := q.readerNames()
	if err != nil || d == nil {
		return nil, err
	}
	defer d.Close()
	var cs []int64
	for _, name := range names {
		var b [rdSize]byte
		if preadAt(d, name+readerSuffix, b[:]) == nil && [8]byte(b[:8]) == readerMagic {
			cs = append(cs, int64(le.Uint64(b[rdOffCursor:])))
		}
	}
	return cs, nil
}

// preadFile reads a reader file by path, its directory not reached through a link.
func preadFile(path string, b []byte) error {
	d, err := openDir("read", filepath.Dir(path), false)
	if err != nil {
		return err
	}
	defer d.Close()
	return preadAt(d, filepath.Base(path), b)
}

// preadAt reads the start of file name in directory d into b.
func preadAt(d *os.File, name string, b []byte) error {
	path := filepath.Join(d.Name(), name)
	f, err := openQueueFileAt("read", d, name, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := f.ReadAt(b, 0)
	switch {
	case n == len(b):
		return nil
	case err == nil || errors.Is(err, io.EOF):
		return errorf("read", path, int64(n), ErrBadHeader, "file ends at %d bytes, want %d", n, len(b))
	default:
		return newError("read", path, -1, err)
	}
}

// RemoveReader deletes a named reader, so that retention no longer keeps segments for it. It
// fails with ErrLocked while an iterator uses the name.
func (q *Queue) RemoveReader(name string) error {
	if err := validReaderName(name); err != nil {
		return newError("remove reader", q.dir, -1, err)
	}
	path := readerPath(q.dir, name)
	d, err := q.readersDirFile("remove reader", false)
	if err != nil {
		return err
	}
	defer d.Close()
	f, err := openQueueFileAt("remove reader", d, name+readerSuffix, unix.O_RDWR)
	if err != nil {
		return err
	}
	defer f.Close()
	switch err := flock.TryLock(int(f.Fd())); {
	case errors.Is(err, flock.ErrWouldBlock):
		return errorf("remove reader", path, -1, ErrLocked, "reader %q is in use", name)
	case err != nil:
		return newError("remove reader", path, -1, err)
	}
	if err := unix.Unlinkat(int(d.Fd()), name+readerSuffix, 0); err != nil {
		return newError("remove reader", path, -1, err)
	}
	return nil
}
