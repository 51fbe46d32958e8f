package shmio

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio/internal/fallocate"
	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/mmap"
	"golang.org/x/sys/unix"
)

// Options configure Open.
type Options struct {
	Path        string      // e.g. /dev/shm/myapp-events; any file path works
	Capacity    int64       // file size in bytes when creating; an existing file keeps its size
	Writable    bool        // this handle may open the (single) writer
	DebugChecks bool        // integrity checks; also on when SHMIO_DEBUG is "true" or "1"
	Mode        os.FileMode // permission bits for a new file; 0 means 0o600
	WideFrames  bool        // new file with u32 frame lengths; ignored for existing files
	Prefault    bool        // populate the whole mapping at Open so no first write to a page stalls on a fault
}

// Log is an open log file: one shared mapping of the whole file. A Log may be used from several
// goroutines; each Iterator and the Writer are for one goroutine at a time.
type Log struct {
	path  string
	file  *os.File
	mem   []byte // the whole file; read-only unless the log is writable
	hdrRW []byte // a writable mapping of the header for readers (waiter count), or nil
	lo    layout
	debug bool

	size     *atomic.Uint64 // committed end
	wake     *atomic.Uint32 // nil when readers cannot sleep (Node format, or read-only file)
	waiters  *atomic.Uint32
	sleepers *atomic.Uint32 // see offSleepers

	writable bool
	closed   atomic.Bool   // set first by Close: methods fail with ErrClosed from then on
	users    atomic.Int64  // methods in flight on the mapping; Close unmaps at 0 (closeguard.go)
	closing  chan struct{} // closed by Close, to wake pollers
	mu       sync.Mutex    // guards writer, shared and Close
	unmapped bool          // Close finished (under mu)
	private  bool          // opened by a queue for itself: no method of it can race with Close
	writer   *Writer
	shared   *sharedLog // state of this Log's SharedWriters, nil when none is open
}

// Open opens the log at opts.Path, creating it when opts.Writable is set and the file does not
// exist. A file made by Node shmio opens in compatible mode: readable and appendable, frames untouched.
func Open(opts Options) (*Log, error) {
	if opts.Path == "" {
		return nil, newError("open", "", -1, errors.New("empty path"))
	}
	f, created, err := openFile(opts)
	if err != nil {
		return nil, err
	}
	l, err := mapLog(f, opts)
	if err != nil {
		f.Close()
		if created {
			os.Remove(opts.Path)
		}
		return nil, err
	}
	return l, nil
}

// openFile opens an existing log or creates a new one atomically. Readers open read-write when
// the permissions allow, because sleeping in Wait means counting themselves in the header.
func openFile(opts Options) (f *os.File, created bool, err error) {
	for attempt := 0; ; attempt++ {
		f, err = openExisting(opts.Path, opts.Writable)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || !opts.Writable || attempt > 0 {
			return f, false, err
		}
		f, err = create(opts)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, err
		}
		// Another process created it between our two calls: open theirs.
	}
}

func openExisting(path string, writable bool) (*os.File, error) {
	// O_NONBLOCK so that a FIFO at path cannot hang Open; O_NOFOLLOW refuses symlinks.
	const flags = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	fd, err := openRetry(path, unix.O_RDWR|flags, 0)
	if err != nil && !writable && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.EPERM)) {
		fd, err = openRetry(path, unix.O_RDONLY|flags, 0)
	}
	if err != nil {
		switch {
		case errors.Is(err, unix.ELOOP):
			return nil, errorf("open", path, -1, ErrBadHeader, "a symbolic link: refusing to follow it")
		case errors.Is(err, unix.EISDIR):
			return nil, errorf("open", path, -1, ErrBadHeader, "a directory, not a regular file")
		}
		// The Errno alone: *Error already names the operation and the path (errors.Is still
		// matches fs.ErrNotExist, fs.ErrPermission, ...).
		return nil, newError("open", path, -1, err)
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, newError("open", path, -1, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, errorf("open", path, -1, ErrBadHeader, "%s, not a regular file", fileKind(fi.Mode()))
	}
	return f, nil
}

// fileKind names the type of a file that is not a regular file, for error messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsRegular():
		return "a regular file"
	default:
		return "a special file"
	}
}

func openRetry(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// create builds the file unnamed (O_TMPFILE) or under an unpredictable temporary name, sized,
// reserved and with its header, then links it into place, so that no reader ever sees a file
// without its header. A process killed while creating leaves nothing behind with O_TMPFILE; a
// named temporary file it leaves is removed by the next create in that directory (see
// removeStaleTemps). It fails with fs.ErrExist when another process got there first.
func create(opts Options) (*os.File, error) {
	path := opts.Path
	if opts.Capacity < goHeaderSize+5 {
		return nil, newError("create", path, -1, fmt.Errorf("capacity %d too small: need at least %d bytes for the header and one frame", opts.Capacity, goHeaderSize+5))
	}
	mode := opts.Mode.Perm()
	if mode == 0 {
		mode = 0o600
	}
	dir := filepath.Dir(path)
	removeStaleTemps(dir)
	for {
		f, unsupported, err := createIn(dir, path, mode, opts)
		if unsupported {
			tmpfileUnsupported.Store(true)
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			err = newError("create", path, -1, err)
		}
		return f, err
	}
}

// tmpfileUnsupported is set once an O_TMPFILE file could not be linked (no /proc and no
// CAP_DAC_READ_SEARCH): creates use a named temporary file from then on. noTmpfile makes tests
// take that path.
var (
	tmpfileUnsupported atomic.Bool
	noTmpfile          bool
)

// createTestHook, when a test sets it, runs once the temporary file is full-size, before it is
// linked: a child process pauses there to be killed.
var createTestHook func()

// createIn makes the file and links it at path; unsupported asks the caller to try again
// without O_TMPFILE.
func createIn(dir, path string, mode os.FileMode, opts Options) (_ *os.File, unsupported bool, err error) {
	var f *os.File
	tmp := ""
	if !noTmpfile && !tmpfileUnsupported.Load() {
		if f, err = openTmpfile(dir, mode); err != nil {
			return nil, false, err
		}
	}
	if f == nil {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		tmp = filepath.Join(dir, fmt.Sprintf(".%s%s%d-%x", filepath.Base(path), tmpInfix, os.Getpid(), rnd))
		fd, err := openRetry(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode))
		if err != nil {
			return nil, false, err
		}
		f = os.NewFile(uintptr(fd), tmp)
	}
	ok := false
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
		if !ok {
			f.Close()
		}
	}()
	// Exactly the requested permissions, whatever the umask: the mode is how a log is shared.
	if err := f.Chmod(mode); err != nil {
		return nil, false, err
	}
	if err := f.Truncate(opts.Capacity); err != nil {
		return nil, false, err
	}
	if err := fallocate.Reserve(int(f.Fd()), opts.Capacity); err != nil {
		return nil, false, fmt.Errorf("reserving %d bytes in %s: %w", opts.Capacity, dir, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	id := binary.LittleEndian.Uint64(rnd[:]) | 1 // never 0: 0 means "no identity"
	hdr := newHeader(opts.WideFrames, id, time.Now().UnixNano())
	if opts.WideFrames {
		fenceNode(hdr, opts.Capacity)
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return nil, false, err
	}
	if h := createTestHook; h != nil {
		h()
	}
	if tmp != "" {
		err = unix.Link(tmp, path)
	} else {
		unsupported, err = linkTmpfile(f, path)
	}
	if err != nil {
		return nil, unsupported, err
	}
	ok = true
	return f, false, nil
}

// tmpInfix sits between a log's name and the creating pid in a temporary file's name:
// ".NAME.tmp-PID-RANDOM".
const tmpInfix = ".tmp-"

// removeStaleTemps removes the temporary files (".NAME.tmp-PID-RANDOM", regular files only) that
// processes which no longer exist left in dir while creating a log. A pid of another pid
// namespace sharing the directory looks dead here; O_TMPFILE makes such files rare.
func removeStaleTemps(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	removeStaleTempsAt(d)
}

// removeStaleTempsAt is removeStaleTemps in an open directory (a queue's readers/, opened
// without following links): names are removed relative to it.
func removeStaleTempsAt(d *os.File) {
	ents, err := d.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, ok := tempPID(e.Name())
		if !ok || !e.Type().IsRegular() || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			unix.Unlinkat(int(d.Fd()), e.Name(), 0)
		}
	}
}

// tempPID parses the pid out of a temporary file name made by createIn.
func tempPID(name string) (int, bool) {
	i := strings.LastIndex(name, tmpInfix)
	if !strings.HasPrefix(name, ".") || i < 2 {
		return 0, false
	}
	pidStr, rnd, ok := strings.Cut(name[i+len(tmpInfix):], "-")
	if !ok || len(rnd) != 16 || strings.Trim(rnd, "0123456789abcdef") != "" {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != pidStr {
		return 0, false
	}
	return pid, true
}

func debugFromEnv() bool {
	v := os.Getenv("SHMIO_DEBUG")
	return v == "true" || v == "1"
}

// mapLog maps an open file and validates its header.
func mapLog(f *os.File, opts Options) (*Log, error) {
	path := opts.Path
	fi, err := f.Stat()
	if err != nil {
		return nil, newError("open", path, -1, err)
	}
	size := fi.Size()
	if size < nodeHeaderSize {
		return nil, errorf("open", path, -1, ErrBadHeader, "file is %d bytes, smaller than the %d-byte header", size, nodeHeaderSize)
	}
	if int64(int(size)) != size {
		return nil, errorf("open", path, -1, ErrBadHeader, "file of %d bytes cannot be mapped here", size)
	}
	mem, err := mmap.Map(int(f.Fd()), int(size), opts.Writable, opts.Prefault)
	if err != nil {
		return nil, newError("open", path, -1, fmt.Errorf("mmap: %w", err))
	}
	l := &Log{path: path, file: f, mem: mem, writable: opts.Writable, debug: opts.DebugChecks || debugFromEnv(), closing: make(chan struct{})}
	l.lo, err = parseHeader(mem, size, path)
	if err != nil {
		mmap.Unmap(mem)
		return nil, err
	}
	l.size = u64at(mem, l.lo.sizeOff)
	if !l.lo.nodeFormat {
		hdr := mem
		if !opts.Writable {
			// A reader's data mapping is read-only; it maps the header again, writable, to count
			// itself as a waiter. The two mappings share the same page of the file.
			if hdr, err = mmap.Map(int(f.Fd()), goHeaderSize, true, false); err != nil {
				hdr = nil // read-only file: this reader will poll
			}
			l.hdrRW = hdr
		}
		if hdr != nil {
			l.wake = u32at(hdr, offWake)
			l.waiters = u32at(hdr, offWaiters)
			l.sleepers = u32at(hdr, offSleepers)
		}
	}
	return l, nil
}

// Path returns the file path the log was opened with.
func (l *Log) Path() string { return l.path }

// MaxPayload returns the largest payload one frame can carry in this log's format.
func (l *Log) MaxPayload() int {
	if l.lo.wide {
		return MaxWidePayload
	}
	return MaxPayload
}

// Header returns a snapshot of the header. Size is loaded atomically; on a closed log, or one
// whose file was truncated under it, the snapshot holds the layout only.
func (l *Log) Header() (h Header) {
	h = Header{
		HeaderSize: l.lo.headerSize,
		DataOffset: l.lo.dataOffset,
		Capacity:   int64(len(l.mem)),
		WideFrames: l.lo.wide,
		NodeFormat: l.lo.nodeFormat,
	}
	if !l.enter() {
		return h
	}
	defer l.leave()
	layoutOnly := h
	var err error
	defer func() {
		if err != nil {
			h = layoutOnly
		}
	}()
	defer recoverFault(debug.SetPanicOnFault(true), "header", l.path, -1, &err)
	h.Size = int64(l.size.Load())
	if !l.lo.nodeFormat {
		h.Version = le.Uint32(l.mem[offVersion:])
		h.Sealed = u32at(l.mem, offFlags).Load()&flagSealed != 0
		h.ID = le.Uint64(l.mem[offID:])
		h.WriterPID = int(u32at(l.mem, offWriterPID).Load())
		h.Waiters = u32at(l.mem, offWaiters).Load()
		h.Conflicts = u32at(l.mem, offConflicts).Load()
	}
	return h
}

// CommitTag returns the tag stored by the last Writer.CommitTagged, with ok true only when that
// tag belongs to the current committed end (a plain Commit since then, or a Node-made file,
// gives ok false). See Writer.CommitTagged.
func (l *Log) CommitTag() (tag uint64, ok bool, err error) {
	if !l.enter() {
		return 0, false, newError("commit tag", l.path, -1, ErrClosed)
	}
	defer l.leave()
	if l.lo.nodeFormat {
		return 0, false, nil
	}
	defer func() {
		if err != nil {
			tag, ok = 0, false
		}
	}()
	defer recoverFault(debug.SetPanicOnFault(true), "commit tag", l.path, -1, &err)
	// A writer reuses a slot (tag first, then end) only after the committed end moved past it.
	// So a tag read while the end stays unchanged belongs to it; if the end moved meanwhile,
	// the slots may describe newer commits (or one not yet published): read again. A bound
	// keeps a writer committing without pause from holding us here for ever.
	for range 1 << 16 {
		end := l.size.Load()
		found := false
		for _, s := range [2]int{offTag0End, offTag1End} {
			if u64at(l.mem, s).Load() == end {
				tag, found = u64at(l.mem, s+8).Load(), true
				break
			}
		}
		if l.size.Load() == end {
			return tag, found, nil
		}
	}
	return 0, false, nil
}

// WriterStatus reports whether a writer, in any process, holds the log's writer lock (the
// exclusive Writer's, or on Linux the shared writers'), and its pid (one of them for shared
// writers) when the system tells (Linux does, through /proc/locks; elsewhere pid is 0).
func (l *Log) WriterStatus() (held bool, pid int, err error) {
	if l.closed.Load() {
		return false, 0, newError("writer status", l.path, -1, ErrClosed)
	}
	l.mu.Lock()
	mine := l.writer != nil || l.shared != nil
	l.mu.Unlock()
	if mine {
		return true, os.Getpid(), nil
	}
	held, pid, err = flock.Holder(l.path)
	if err != nil {
		return false, 0, newError("writer status", l.path, -1, err)
	}
	if !held { // shared writers hold a shared flock (one pid of them is reported)
		if mode, p := flock.Mode(l.path); mode == "shared" {
			return true, p, nil
		}
	}
	return held, pid, nil
}

// Close closes the writer if one is open (discarding uncommitted frames: then the error wraps
// ErrUncommitted, see Writer.Close), unmaps the file and closes it. Frames returned by iterators
// are invalid afterwards, and every method of the log, its writer and its iterators returns
// ErrClosed. Iterator methods running in other goroutines meanwhile (Wait included, which Close
// wakes) return ErrClosed, and the unmapping waits for them to return. The writer is the
// exception: Close must not run while another goroutine is inside a writer method or still
// writes into frames it allocated.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unmapped {
		return newError("close", l.path, -1, ErrClosed)
	}
	var werr error // ErrUncommitted: the log closes all the same
	if l.writer != nil {
		werr = l.writer.closeLocked()
	}
	l.startClose()
	drainUsers(l.users.Load)
	l.closeShared()
	l.unmapped = true
	var errs []error
	if l.hdrRW != nil {
		errs = append(errs, mmap.Unmap(l.hdrRW))
	}
	errs = append(errs, l.unmapData(), l.file.Close())
	if err := errors.Join(errs...); err != nil {
		return errors.Join(werr, newError("close", l.path, -1, err))
	}
	return werr
}

// Sealed reports whether the writer sealed the log (see Writer.Seal): every frame it will ever
// hold is committed. It is one atomic load, plus the close guard (see Close).
func (l *Log) Sealed() (sealed bool) {
	if l.lo.nodeFormat || !l.enter() {
		return false
	}
	defer l.leave()
	var err error
	defer recoverFault(debug.SetPanicOnFault(true), "sealed", l.path, -1, &err)
	return u32at(l.mem, offFlags).Load()&flagSealed != 0
}
