package shmio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shmio/shmio/internal/mmap"
	"golang.org/x/sys/unix"
)

// Kinds of store a Snapshot describes.
const (
	KindLog     = "log"   // a log file made by shmio-go
	KindNodeLog = "node"  // a log file made by Node shmio: no writer pid, no sleepers in its header
	KindQueue   = "queue" // a queue directory
)

// Snapshot is what Inspect sees of a log or queue at one instant, without disturbing it: the
// header is mapped read-only and loaded atomically, frames are read with pread, and nothing is
// locked or written (no header word, no waiter count, no reader file).
type Snapshot struct {
	Path string
	Kind string // KindLog, KindNodeLog or KindQueue
	At   time.Time
	ID   uint64 // log or queue identity (0 for Node-made logs)

	End       int64   // cursor of the committed end (a queue cursor for queues)
	Capacity  int64   // bytes frames may fill: the log's, or the queue's head segment's
	Committed int64   // committed bytes of frames: the log's, or in all segments present
	Fill      float64 // log: committed / capacity, 0..1; queue: its head segment's
	Sealed    bool
	Wide      bool

	// BytesTotal and FramesTotal only grow while the same Inspector watches the store: from the
	// log's start, or for a queue from the first segment present when first seen. FramesTotal is
	// exact when FramesExact, else partly estimated (see Inspector).
	BytesTotal  int64
	FramesTotal int64
	FramesExact bool
	// Rates since the previous sample of the same Inspector; Rated is false on the first.
	BytesPerSec  float64
	FramesPerSec float64
	Rated        bool

	// Writer. WriterPID is the pid the header records (the head segment's for a queue): set by a
	// writer when it opens, cleared by its Close. WriterLocked tells whether some process holds
	// the writer lock right now (from /proc/locks; LockKnown false where that cannot be read).
	WriterPID     int
	WriterLocked  bool
	WriterLockPID int
	LockKnown     bool
	WriterAlive   bool // the lock is held, or (lock unknown) WriterPID is a live process
	// WriterDead: the header records a writer but nobody holds the lock, so that writer ended
	// without Close (killed or crashed). Uncommitted: a frame it allocated was never committed
	// (a non-zero length at the committed end; see FORMAT.md, "Frames").
	WriterDead  bool
	Uncommitted bool

	Sleepers bool   // a reader may be asleep waiting for the next commit
	Waiters  uint32 // readers counted asleep (informational)

	// Queues only.
	Segments    int   // segments present, up to the head (not those prepared ahead)
	HeadSegment int64 // the segment the writer appends to
	Readers     []ReaderSnapshot

	Err error // the store could not be read (fields are partial)
}

// ReaderSnapshot is a queue's named reader, read from its file without locking it.
type ReaderSnapshot struct {
	Name      string
	Cursor    int64
	Active    bool // an iterator holds the name (from /proc/locks)
	PID       int  // that process, when known
	LagBytes  int64
	LagFrames int64
	LagExact  bool          // LagFrames was counted, not partly estimated
	Lag       time.Duration // 0 when caught up, else the time since it last was
	CaughtUp  time.Time
	Err       error
}

// InspectOptions configure an Inspector.
type InspectOptions struct {
	// MaxWalk bounds the bytes of frames one sample reads per store and per named reader to count
	// frames; 0 means 1 MiB. Beyond it, counts are estimated (see Inspector).
	MaxWalk int64
}

// An Inspector samples logs and queues repeatedly and derives rates and frame counts from
// successive samples; it is for tools such as `shmio top` and the exporter. Use one per view.
//
// Bytes are exact: they come from the committed end. Frames must be counted by walking them, so
// each sample walks only the frames committed since the previous sample, at most MaxWalk bytes
// per store. While a store grows by less than that between samples, FramesTotal is exact.
// Otherwise the walk resumes next time where it stopped, and the frames not yet walked are
// estimated from the mean frame size walked so far (FramesExact false). A named reader's lag in
// frames is counted the same way, from its cursor, at most MaxWalk bytes per sample.
type Inspector struct {
	opts   InspectOptions
	mu     sync.Mutex
	stores map[string]*storeState
	buf    []byte
}

// NewInspector returns an Inspector.
func NewInspector(o InspectOptions) *Inspector {
	if o.MaxWalk <= 0 {
		o.MaxWalk = 1 << 20
	}
	return &Inspector{opts: o, stores: map[string]*storeState{}, buf: make([]byte, 64<<10+8)}
}

// Inspect returns one snapshot of the log file or queue directory at path (no rates).
func Inspect(path string) (Snapshot, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() && !isQueueDir(path) {
		return Snapshot{}, errorf("inspect", path, -1, ErrBadHeader, "a directory that is not a queue (use InspectDir)")
	}
	ss, err := NewInspector(InspectOptions{}).Sample(path)
	if err != nil {
		return Snapshot{}, err
	}
	if len(ss) != 1 {
		return Snapshot{}, errorf("inspect", path, -1, ErrBadHeader, "a directory that is not a queue (use InspectDir)")
	}
	return ss[0], ss[0].Err
}

// InspectDir returns a snapshot of every log file and queue directory directly inside dir.
func InspectDir(dir string) ([]Snapshot, error) {
	return NewInspector(InspectOptions{}).Sample(dir)
}

// Sample inspects each target: a log file, a queue directory, or a directory whose logs and
// queues (one level deep; names starting with '.' skipped) are inspected. Files in a scanned
// directory that are not logs are left out; a target named explicitly always gets a Snapshot,
// with Err set if it is not readable. Snapshots come sorted by path. Stores not seen in this
// sample are forgotten.
func (in *Inspector) Sample(targets ...string) ([]Snapshot, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	locks := readLockTable()
	now := time.Now()
	var out []Snapshot
	seen := map[string]bool{}
	var errs []error
	for _, t := range targets {
		t = filepath.Clean(t)
		fi, err := os.Lstat(t)
		if err != nil {
			out = append(out, Snapshot{Path: t, At: now, Err: newError("inspect", t, -1, err)})
			continue
		}
		switch {
		case fi.IsDir() && isQueueDir(t):
			seen[t] = true
			out = append(out, in.inspectQueue(t, locks, now))
		case fi.IsDir():
			ents, err := os.ReadDir(t)
			if err != nil {
				errs = append(errs, newError("inspect", t, -1, err))
				continue
			}
			for _, e := range ents {
				p := filepath.Join(t, e.Name())
				if strings.HasPrefix(e.Name(), ".") || seen[p] {
					continue
				}
				switch {
				case e.Type().IsRegular():
					if s := in.inspectLog(p, locks, now); s.Err == nil {
						seen[p] = true
						out = append(out, s)
					}
				case e.IsDir() && isQueueDir(p):
					seen[p] = true
					out = append(out, in.inspectQueue(p, locks, now))
				}
			}
		default:
			seen[t] = true
			out = append(out, in.inspectLog(t, locks, now))
		}
	}
	for p := range in.stores {
		if !seen[p] {
			delete(in.stores, p)
		}
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return strings.Compare(a.Path, b.Path) })
	return out, errors.Join(errs...)
}

func isQueueDir(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, metaFile))
	return err == nil
}

// storeState is what an Inspector remembers of one store between samples.
type storeState struct {
	dev, ino uint64 // log file, or queue.json: a replaced store starts over
	id       uint64
	segs     map[int64]segSnap // queues: sealed segments (immutable), kept while needed

	end        pos       // committed end at the last sample
	bytesTotal int64     // bytes from the origin to end
	walked     pos       // frames counted exactly up to here
	walkBytes  int64     // bytes from the origin to walked
	walkFrames int64     // frames from the origin to walked (estimated over skipped segments)
	exact      bool      // no segment was skipped unwalked
	at         time.Time // last sample
	lastFrames int64     // FramesTotal at the last sample
	lastBytes  int64     // BytesTotal at the last sample
	qid        uint64    // a queue's identity, from queue.json
}

// pos is a position in a store: a segment (0 for a log) and an offset from its data offset.
type pos struct{ seg, off int64 }

func (p pos) less(q pos) bool { return p.seg < q.seg || p.seg == q.seg && p.off < q.off }

// segSnap is one segment's (or a log's) header as mapped read-only.
type segSnap struct {
	num, fileSize, dataOffset, committed int64
	lenSize                              int
	id                                   uint64
	sealed, node                         bool
	pid                                  int
	sleepers                             bool
	waiters                              uint32
	dev, ino                             uint64
}

// readSnap maps the first page of the file read-only and loads the header words atomically (a
// pread could tear the committed end while the writer stores it).
func readSnap(path string) (s segSnap, err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return s, newError("inspect", path, -1, &fs.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return s, newError("inspect", path, -1, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return s, errorf("inspect", path, -1, ErrBadHeader, "not a regular file")
	}
	s.fileSize, s.dev, s.ino = st.Size, uint64(st.Dev), uint64(st.Ino)
	if s.fileSize < nodeHeaderSize {
		return s, errorf("inspect", path, -1, ErrBadHeader, "file is %d bytes, smaller than the %d-byte header", s.fileSize, nodeHeaderSize)
	}
	mem, err := mmap.Map(fd, int(min(s.fileSize, 4096)), false, false)
	if err != nil {
		return s, newError("inspect", path, -1, fmt.Errorf("mmap: %w", err))
	}
	defer mmap.Unmap(mem)
	defer recoverFault(debug.SetPanicOnFault(true), "inspect", path, -1, &err)
	lo, err := parseHeader(mem, s.fileSize, path)
	if err != nil {
		return s, err
	}
	s.dataOffset, s.lenSize, s.node = lo.dataOffset, lo.lenSize, lo.nodeFormat
	s.committed = int64(u64at(mem, offSize).Load()) - lo.dataOffset
	if !lo.nodeFormat {
		s.sealed = u32at(mem, offFlags).Load()&flagSealed != 0
		s.id = le.Uint64(mem[offID:])
		s.num = int64(u64at(mem, offSegNum).Load())
		s.pid = int(u32at(mem, offWriterPID).Load())
		s.sleepers = u32at(mem, offSleepers).Load() != 0
		s.waiters = u32at(mem, offWaiters).Load()
	}
	return s, nil
}

// lockTable maps "MAJ:MIN:INODE" (as /proc/locks prints a file) to the pid holding an exclusive
// flock on it. nil when /proc/locks cannot be read (not Linux).
type lockTable map[string]int

func readLockTable() lockTable {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return nil
	}
	t := lockTable{}
	for line := range strings.Lines(string(b)) {
		// "1: FLOCK  ADVISORY  WRITE 4242 00:1a:123456 0 EOF"; a blocked waiter has "->" after
		// the index and holds nothing.
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || f[3] != "WRITE" {
			continue
		}
		var pid int
		fmt.Sscan(f[4], &pid)
		t[f[5]] = pid
	}
	return t
}

// holder reports whether an exclusive flock is held on the file, and by which pid.
func (t lockTable) holder(dev, ino uint64) (held bool, pid int) {
	if t == nil {
		return false, 0
	}
	pid, held = t[fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), ino)]
	return held, pid
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

func (in *Inspector) state(path string, dev, ino, id uint64) *storeState {
	st := in.stores[path]
	if st == nil || st.dev != dev || st.ino != ino || st.id != id {
		st = &storeState{dev: dev, ino: ino, id: id, exact: true, segs: map[int64]segSnap{}}
		in.stores[path] = st
	}
	return st
}

func (in *Inspector) inspectLog(path string, locks lockTable, now time.Time) Snapshot {
	s := Snapshot{Path: path, Kind: KindLog, At: now}
	h, err := readSnap(path)
	if err != nil {
		s.Err = err
		return s
	}
	h.num = 0 // a queue segment inspected as a log is one
	if h.node {
		s.Kind = KindNodeLog
	}
	s.ID, s.Sealed, s.Wide = h.id, h.sealed, h.lenSize == 4
	s.End, s.Committed, s.Capacity = h.committed, h.committed, h.fileSize-h.dataOffset
	if s.Capacity > 0 {
		s.Fill = float64(s.Committed) / float64(s.Capacity)
	}
	s.Sleepers, s.Waiters = h.sleepers, h.waiters
	s.LockKnown = locks != nil
	s.WriterLocked, s.WriterLockPID = locks.holder(h.dev, h.ino)
	in.writer(&s, h, path)

	st := in.state(path, h.dev, h.ino, h.id)
	src := storeSrc{path: func(int64) string { return path }, segs: []segSnap{h}}
	in.advance(&s, st, src, pos{0, h.committed}, now)
	return s
}

// writer fills the writer fields from the header h and the lock state already in s.
func (in *Inspector) writer(s *Snapshot, h segSnap, path string) {
	s.WriterPID = h.pid
	if s.LockKnown {
		s.WriterAlive = s.WriterLocked
	} else {
		s.WriterAlive = pidAlive(h.pid)
	}
	s.WriterDead = h.pid != 0 && !s.WriterAlive && !h.sealed
	if s.WriterDead {
		s.Uncommitted = uncommittedAt(path, h)
	}
}

// uncommittedAt reports whether the length field at the committed end is non-zero: a frame was
// allocated there (Allocate writes both lengths at once) and never committed.
func uncommittedAt(path string, h segSnap) bool {
	off := h.dataOffset + h.committed
	if off+int64(h.lenSize) > h.fileSize {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if n, _ := f.ReadAt(b[:h.lenSize], off); n != h.lenSize {
		return false
	}
	return le.Uint32(b[:]) != 0
}

// advance moves st's counters to the committed end e and fills the totals and rates of s.
func (in *Inspector) advance(s *Snapshot, st *storeState, src storeSrc, e pos, now time.Time) {
	first := st.at.IsZero()
	if first {
		st.end, st.walked = src.origin(), src.origin()
	}
	if st.end.less(e) {
		st.bytesTotal += src.bytesBetween(st.end, e, st.segs)
	}
	st.end = e
	if st.walked.less(e) {
		fr, by, to, skipped := src.walk(st.walked, e, in.opts.MaxWalk, st.meanFrame(), in.buf, st.segs)
		st.walkFrames += fr
		st.walkBytes += by
		st.walked = to
		st.exact = st.exact && !skipped
	}
	frames := st.walkFrames
	if rest := st.bytesTotal - st.walkBytes; rest > 0 && st.meanFrame() > 0 {
		frames += int64(float64(rest) / st.meanFrame())
	}
	s.BytesTotal, s.FramesTotal = st.bytesTotal, frames
	s.FramesExact = st.exact && st.walked == e
	if dt := now.Sub(st.at).Seconds(); !first && dt > 0 {
		s.Rated = true
		s.BytesPerSec = float64(st.bytesTotal-st.lastBytes) / dt
		s.FramesPerSec = float64(max(frames-st.lastFrames, 0)) / dt
	}
	st.at, st.lastFrames, st.lastBytes = now, frames, st.bytesTotal
}

// meanFrame is the mean frame size walked so far, 0 before any.
func (st *storeState) meanFrame() float64 {
	if st.walkFrames == 0 {
		return 0
	}
	return float64(st.walkBytes) / float64(st.walkFrames)
}
