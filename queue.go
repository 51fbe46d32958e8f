package shmio

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/format"
)

// A Queue is a directory of segments: ordinary log files named by a zero-padded sequence number
// (0000000001.seg, 0000000002.seg, ...), each in the Node-compatible format, so Node shmio can
// read any single segment. A frame never spans two segments. When a frame does not fit, the
// writer seals the current segment (a header flag, set after its last commit) and continues in
// the next one, which a background goroutine has already created, reserved and prefaulted.
//
// Queue cursors are one int64: the segment number in the high 32 bits and the offset within the
// segment (relative to its DataOffset, as a Log cursor) in the low 32 bits:
//
//	cursor = segment<<32 | offset
//
// Cursors increase along the queue. The end of a sealed segment and the start of the next one
// are the same position; Cursor reports the latter. Cursor 0 means "the first frame still
// available" (segment numbers start at 1). Frame offsets inside a segment advance as in a Log:
// the cursor after frame F is the cursor before F plus len(F)+4, except across a roll.
//
// Segments removed by retention are recycled when nobody maps them: the file is renamed out of
// sight at once (to readers it is gone, as if removed), and later given a fresh header and the
// name of a new segment, so that steady-state writing reuses memory instead of asking the kernel
// for fresh zeroed pages. Every queue reader holds a shared lock (an open file description lock
// on byte 0) on each segment it maps, which recycling respects. A tool that maps a segment file
// of a live queue directly, with Open, takes no such lock: use the queue's iterators instead.
//
// Files in the directory besides the segments: queue.json (identity, segment size, mode and the
// writer's retention policy, for tools), writer.lock (flocked by the writer, or shared by shared writers), and
// readers/NAME.reader per named reader (its cursor, see Queue.NewIterator). Every file and
// directory the queue makes gets the mode recorded at its creation (QueueOptions.Mode), whatever
// the umask, and none is opened through a symbolic link: a link in their place is an error
// (ErrBadHeader), never followed.
type Queue struct {
	dir     string
	opts    QueueOptions
	segSize int64
	debug   bool
	id      atomic.Uint64 // see ID

	mu     sync.Mutex // guards writer, iters and Close
	closed atomic.Bool
	writer *QueueWriter
	shared *queueShared // this Queue's shared writers, nil when none is open
	iters  map[*QueueIterator]struct{}

	retMu sync.Mutex // serialises retention passes
}

// QueueOptions configure OpenQueue.
type QueueOptions struct {
	Dir string // the queue's directory; created (with its first segment) when Writable and missing
	// SegmentSize is the file size of each new segment, at most MaxSegmentSize. 0 means the size
	// recorded in the queue, or DefaultSegmentSize for a new queue. Existing segments keep theirs.
	SegmentSize int64
	Writable    bool // this handle may open the (single) writer and apply retention
	DebugChecks bool // integrity checks in every segment (see Options.DebugChecks)
	// Mode is the permission bits of the queue's files when OpenQueue creates it (0 means 0o600;
	// directories add x where r). A queue records its mode, and every file and directory made
	// in it later gets the recorded one, whatever Mode later handles give and whatever the umask.
	Mode os.FileMode
	// Prefault populates reader mappings of segments when they are opened, and shared writers'
	// mappings of segments other processes made. The writer always prefaults the segments it
	// prepares ahead, in the background.
	Prefault bool
	// Retention is applied by the writer after each roll (and by ApplyRetention). It is recorded
	// in the queue (queue.json) by OpenQueue when it creates the queue and by every Writer; the
	// zero policy means the recorded one.
	Retention RetentionPolicy
}

// Segment size limits: the offset half of a cursor is 32 bits.
const (
	DefaultSegmentSize       = 64 << 20
	MinSegmentSize           = 1 << 10
	MaxSegmentSize     int64 = 1 << 32
	maxSegNum                = format.MaxSegNum
	cursorOffBits            = format.CursorOffBits
	cursorOffMask            = format.CursorOffMask
)

// Queue-only header words of a segment and the directory's names: see internal/format.
const (
	offSegNum      = format.OffSegNum
	offSegPrevID   = format.OffSegPrevID
	offSegSealedAt = format.OffSealedAt
	offSegPrevEnd  = format.OffSegPrevEnd

	segSuffix    = format.SegSuffix
	metaFile     = format.MetaFile
	lockFile     = format.LockFile
	readersDir   = format.ReadersDir
	readerSuffix = format.ReaderSuffix
)

// QueueCursor packs a segment number and an offset within it into a queue cursor.
func QueueCursor(segment int64, offset int64) int64 { return segment<<cursorOffBits | offset }

// SplitQueueCursor returns the segment number and offset packed in a queue cursor.
func SplitQueueCursor(c int64) (segment, offset int64) {
	return c >> cursorOffBits, c & cursorOffMask
}

func segName(n int64) string { return format.SegName(n) }

func (q *Queue) segPath(n int64) string { return filepath.Join(q.dir, segName(n)) }

func parseSegName(name string) (int64, bool) { return format.ParseSegName(name) }

// queueMeta is queue.json (see internal/format): what tools need to know without a writer.
type queueMeta = format.QueueMeta[RetentionPolicy]

// OpenQueue opens the queue in opts.Dir, creating the directory and its first segment when
// opts.Writable is set and there is none. Opening a missing queue read-only gives an error
// wrapping fs.ErrNotExist.
func OpenQueue(opts QueueOptions) (*Queue, error) {
	dir := opts.Dir
	if dir == "" {
		return nil, newError("open queue", "", -1, errors.New("empty directory"))
	}
	if opts.SegmentSize != 0 && (opts.SegmentSize < MinSegmentSize || opts.SegmentSize > MaxSegmentSize) {
		return nil, newError("open queue", dir, -1, fmt.Errorf("segment size %d outside [%d, %d]", opts.SegmentSize, MinSegmentSize, MaxSegmentSize))
	}
	if err := opts.Retention.validate(); err != nil {
		return nil, newError("open queue", dir, -1, err)
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return nil, errorf("open queue", dir, -1, ErrBadHeader, "not a directory")
	case errors.Is(err, fs.ErrNotExist) && opts.Writable:
		if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), dirMode(opts.Mode)); err != nil {
			return nil, newError("open queue", dir, -1, err)
		}
		if _, err := mkdirMode(dir, opts.Mode, true); err != nil {
			return nil, newError("open queue", dir, -1, err)
		}
	case err != nil:
		return nil, newError("open queue", dir, -1, err)
	}
	q := &Queue{dir: dir, opts: opts, debug: opts.DebugChecks || debugFromEnv(), iters: map[*QueueIterator]struct{}{}}
	meta, err := q.readMeta()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if opts.Retention.zero() {
		q.opts.Retention = meta.Retention // the queue's recorded policy
	}
	q.segSize = opts.SegmentSize
	if q.segSize == 0 {
		q.segSize = meta.SegmentSize
	}
	if q.segSize < MinSegmentSize || q.segSize > MaxSegmentSize {
		q.segSize = DefaultSegmentSize
	}
	nums, err := q.listSegments()
	if err != nil {
		return nil, err
	}
	q.opts.Mode = q.recordedMode(meta, nums)
	if len(nums) == 0 {
		if !opts.Writable {
			return nil, newError("open queue", dir, -1, fmt.Errorf("no segments: not a queue: %w", fs.ErrNotExist))
		}
		// Open's create is atomic (link into place), so racing creators share one segment 1.
		l, err := Open(Options{Path: q.segPath(1), Capacity: q.segSize, Writable: true, Mode: q.opts.Mode})
		if err != nil {
			return nil, err
		}
		l.private = true // only this queue uses it: Close unmaps at once
		l.word64(offSegNum).CompareAndSwap(0, 1)
		l.Close()
	}
	if err := q.loadID(meta); err != nil {
		return nil, err
	}
	if opts.Writable && (meta.Format == "" || format.QueueID(meta.ID) == 0 || meta.Mode == "") {
		if err := q.writeMeta(); err != nil {
			return nil, err
		}
	}
	return q, nil
}

func dirMode(m os.FileMode) os.FileMode {
	m = m.Perm()
	if m == 0 {
		m = 0o600
	}
	return m | (m&0o444)>>2 // x wherever r: a directory one may read but not enter is useless
}

// recordedMode returns the queue's mode: recorded in queue.json, else that of its first segment
// (queues made before queue.json recorded it), else opts.Mode for a new queue.
func (q *Queue) recordedMode(meta queueMeta, nums []int64) os.FileMode {
	if m := parseFileMode(meta.Mode); m != 0 {
		return m
	}
	if len(nums) > 0 {
		if fi, err := os.Lstat(q.segPath(nums[0])); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() != 0 {
			return fi.Mode().Perm()
		}
	}
	return permOr600(q.opts.Mode)
}

func (q *Queue) readMeta() (queueMeta, error) {
	var m queueMeta
	b, err := readQueueFile("open queue", filepath.Join(q.dir, metaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, errorf("open queue", filepath.Join(q.dir, metaFile), -1, ErrBadHeader, "%v", err)
	}
	return m, nil
}

// loadID sets the queue's identity: the one recorded in queue.json, else the ID segment 1 got
// when it was created. Deriving it (instead of drawing a new random number) makes racing
// creators, and every handle on a queue made before queue.json recorded it, agree without
// coordination; writable handles then record it. A queue whose segment 1 retention already
// removed falls back to the first remaining segment's PrevID (the ID of the segment before it),
// or its own ID: stable until that segment goes too, by which time a writer has recorded it.
func (q *Queue) loadID(meta queueMeta) error {
	if id := format.QueueID(meta.ID); id != 0 {
		q.id.Store(id)
		return nil
	}
	var (
		first int64
		h     segHeader
		err   error
	)
	for range 3 { // retention may remove the first segment as we read it
		if first, err = q.firstSegment(); err != nil {
			return err
		}
		if h, err = q.segHeader(first); !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return newError("open queue", q.segPath(first), -1, err)
	}
	id := h.id
	if first != 1 && h.prevID != 0 {
		id = h.prevID
	}
	if id == 0 { // a Node-made segment has no identity
		var b [8]byte
		for id == 0 {
			if _, err := rand.Read(b[:]); err != nil {
				return newError("open queue", q.dir, -1, err)
			}
			id = le.Uint64(b[:])
		}
	}
	q.id.Store(id)
	return nil
}

// ID returns the queue's stable identity: random, non-zero, chosen when the queue was created
// and recorded in queue.json (see loadID for queues made before). Segments have IDs of their
// own; this one names the whole queue, e.g. in replicated message ids.
func (q *Queue) ID() uint64 { return q.id.Load() }

// writeMeta replaces queue.json atomically (write a temporary file, rename). An identity
// already recorded wins over this handle's, which a racing handle may have derived differently.
func (q *Queue) writeMeta() error {
	if m, err := q.readMeta(); err == nil && format.QueueID(m.ID) != 0 {
		q.id.Store(format.QueueID(m.ID))
	}
	b, _ := json.MarshalIndent(queueMeta{Format: format.QueueFormat, Version: format.QueueVersion, SegmentSize: q.segSize, Retention: q.opts.Retention,
		ID: format.FormatQueueID(q.id.Load()), Mode: fileModeString(q.opts.Mode)}, "", "  ")
	return writeFileAtomic(q.dir, metaFile, append(b, '\n'), q.opts.Mode)
}

// Dir returns the queue's directory.
func (q *Queue) Dir() string { return q.dir }

// SegmentSize returns the size given to new segments.
func (q *Queue) SegmentSize() int64 { return q.segSize }

// Retention returns the retention policy this handle applies (the writer's). Policy recorded in
// the queue by its last writer is in QueueInfo.
func (q *Queue) Retention() RetentionPolicy { return q.opts.Retention }

// MaxPayload returns the largest frame payload: the format's limit or what an empty segment of
// SegmentSize holds, whichever is smaller.
func (q *Queue) MaxPayload() int {
	return int(min(int64(MaxPayload), q.segSize-goHeaderSize-4))
}

// listSegments returns the segment numbers present, ascending.
func (q *Queue) listSegments() ([]int64, error) {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, newError("list segments", q.dir, -1, err)
	}
	var nums []int64
	for _, e := range ents {
		if n, ok := parseSegName(e.Name()); ok {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// firstSegment returns the lowest segment number present.
func (q *Queue) firstSegment() (int64, error) {
	nums, err := q.listSegments()
	if err != nil {
		return 0, err
	}
	if len(nums) == 0 {
		return 0, newError("list segments", q.dir, -1, fmt.Errorf("%w: queue has no segments", ErrCorrupt))
	}
	return nums[0], nil
}

// findHead returns the segment the writer appends to: the first unsealed one at or after from
// (sealed segments form a prefix of the chain). It binary-searches the listing.
func (q *Queue) findHead(from int64) (int64, error) {
	nums, err := q.listSegments()
	if err != nil {
		return 0, err
	}
	i, _ := slices.BinarySearch(nums, from)
	nums = nums[i:]
	if len(nums) == 0 {
		return 0, errorf("find head", q.dir, -1, ErrCursor, "segment %d is not in the queue", from)
	}
	lo, hi := 0, len(nums)-1 // the last segment is never sealed by a healthy writer
	for lo < hi {
		mid := (lo + hi) / 2
		h, err := q.segHeader(nums[mid])
		if errors.Is(err, fs.ErrNotExist) { // removed by retention meanwhile: it was sealed
			lo = mid + 1
			continue
		}
		if err != nil {
			return 0, err
		}
		if h.sealed {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return nums[lo], nil
}

// openSegment maps segment n for reading and holds a shared lock on it while it is open, so that
// retention does not recycle it under the mapping (see segReadLock). A segment being recycled,
// or recycled between the open and the lock (its recorded number changed), is reported as not
// existing: to its readers it was removed.
func (q *Queue) openSegment(n int64, debug bool) (*Log, error) {
	l, err := Open(Options{Path: q.segPath(n), Prefault: q.opts.Prefault, DebugChecks: debug})
	if err != nil {
		return nil, err
	}
	l.private = true // only this queue uses it: Close unmaps at once
	if !segReadLock(l.file) {
		l.Close()
		return nil, &fs.PathError{Op: "open", Path: q.segPath(n), Err: fs.ErrNotExist}
	}
	if s := l.word64(offSegNum).Load(); !l.lo.nodeFormat && s != 0 && s != uint64(n) {
		l.Close()
		return nil, q.misnumbered(n)
	}
	return l, nil
}

// goneError explains a cursor in a segment that is not there: removed by retention (ErrCursor,
// naming the first cursor still available) or never written.
func (q *Queue) goneError(op string, seg int64, cursor int64) error {
	first, err := q.firstSegment()
	if err != nil {
		return err
	}
	if seg < first {
		return errorf(op, q.dir, -1, ErrCursor, "cursor %d: segment %d was removed by retention; the first available cursor is %d", cursor, seg, QueueCursor(first, 0))
	}
	return errorf(op, q.dir, -1, ErrCursor, "cursor %d: segment %d does not exist", cursor, seg)
}

// Close closes the writer (uncommitted frames are discarded) and every iterator of this Queue.
// Frames returned by them are invalid afterwards. Iterator methods running in other goroutines
// (Wait included, which Close wakes) return ErrClosed, and the segments are unmapped once they
// have returned. As with Log.Close, no other goroutine may be inside a writer method meanwhile.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		return newError("close queue", q.dir, -1, ErrClosed)
	}
	var errs []error
	if q.writer != nil {
		errs = append(errs, q.writer.closeLocked())
	}
	if q.shared != nil {
		errs = append(errs, q.shared.closeAll())
	}
	for it := range q.iters {
		errs = append(errs, it.closeLocked())
	}
	q.closed.Store(true)
	return errors.Join(errs...)
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Number      int64
	Path        string
	FileSize    int64     // bytes of the file (its capacity)
	Committed   int64     // bytes of committed frames
	Sealed      bool      // complete: the writer moved on
	Created     time.Time // zero if unknown
	SealedAt    time.Time // zero while not sealed
	ID          uint64    // the segment's random identity
	PrevID      uint64    // recorded ID of the previous segment (the chain); 0 for the first
	FirstCursor int64     // queue cursor of its first frame
	Err         error     // header unreadable (the other fields are partial)
}

// Segments lists the segments present, oldest first.
func (q *Queue) Segments() ([]SegmentInfo, error) {
	nums, err := q.listSegments()
	if err != nil {
		return nil, err
	}
	out := make([]SegmentInfo, 0, len(nums))
	for _, n := range nums {
		h, err := q.segHeader(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by retention meanwhile
		}
		si := SegmentInfo{Number: n, Path: q.segPath(n), FileSize: h.fileSize, Committed: h.committed, Sealed: h.sealed,
			ID: h.id, PrevID: h.prevID, FirstCursor: QueueCursor(n, 0), Err: err}
		if h.created != 0 {
			si.Created = time.Unix(0, h.created)
		}
		if h.sealedAt != 0 {
			si.SealedAt = time.Unix(0, h.sealedAt)
		}
		out = append(out, si)
	}
	return out, nil
}

// QueueInfo is what queue.json records: the segment size and the retention policy of the last
// writer, for tools such as `shmio stat`.
type QueueInfo struct {
	SegmentSize int64
	Retention   RetentionPolicy
}

// Info returns the recorded QueueInfo.
func (q *Queue) Info() (QueueInfo, error) {
	m, err := q.readMeta()
	if err != nil {
		return QueueInfo{SegmentSize: q.segSize}, err
	}
	return QueueInfo{SegmentSize: m.SegmentSize, Retention: m.Retention}, nil
}

// WriterStatus reports whether a writer, in any process, holds the queue's writer lock, and its
// pid when the system tells (see Log.WriterStatus).
func (q *Queue) WriterStatus() (held bool, pid int, err error) {
	q.mu.Lock()
	mine := q.writer != nil
	q.mu.Unlock()
	if mine {
		return true, os.Getpid(), nil
	}
	lockPath := filepath.Join(q.dir, lockFile)
	if fi, err := os.Lstat(lockPath); err == nil && !fi.Mode().IsRegular() {
		return false, 0, errorf("writer status", lockPath, -1, ErrBadHeader, "not a regular file (a symbolic link?)")
	}
	held, pid, err = flock.Holder(lockPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil // no writer ever opened
	}
	if err != nil {
		return false, 0, newError("writer status", q.dir, -1, err)
	}
	return held, pid, nil
}

// IsQueue reports whether path is a queue directory (it holds queue.json or a segment), so that
// tools taking "a log or a queue" can tell which they were given.
func IsQueue(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return false
	}
	if _, err := os.Stat(filepath.Join(path, metaFile)); err == nil {
		return true
	}
	q := &Queue{dir: path}
	nums, _ := q.listSegments()
	return len(nums) > 0
}
