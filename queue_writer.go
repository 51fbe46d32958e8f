package shmio

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio/internal/flock"
	"golang.org/x/sys/unix"
)

// QueueWriter appends frames to a queue: the same methods as Writer. There is at most one per
// queue across all processes (an flock on writer.lock, and each segment's own writer lock).
// A QueueWriter is for one goroutine at a time.
//
// Rolling: when a frame does not fit in the current segment, Allocate moves to the next one,
// prepared in the background. Commit publishes every frame allocated since the last Commit;
// frames allocated before a roll are published by sealing their segment first, so a batch
// that straddles a roll becomes visible segment by segment (readers cannot see a later segment's
// frames before an earlier one's), and nothing is visible before Commit.
type QueueWriter struct {
	q       *Queue
	lock    *os.File
	cur     *wseg
	sw      *Writer // cur.w: the hot path
	pending []*wseg // earlier segments holding allocated, uncommitted frames; oldest first
	seg     int64   // cur.num, kept after Close
	closed  bool
	stats   RollStats

	ahead []*prepFuture      // segments being prepared or ready, in order, each by its own goroutine
	bg    chan []*prepFuture // preparations for the background goroutine to start
	futs  []*prepFuture      // collected by prepareAhead, sent by flush as one message (one wake-up)

	// Sealed segments the writer is done with, for the background goroutine to retire. The
	// writer appends here without waking it: it takes them at its next wake-up (see roll).
	retMu sync.Mutex
	retQ  []retired

	// Sealed segments not yet removed, oldest first, for the background retention pass: it
	// then costs no directory scan however many segments there are. Only kept with a policy.
	segMu  sync.Mutex
	sealed []segHeader

	// Removed segments kept for reuse (see recycle), renamed out of sight and locked.
	poolMu   sync.Mutex
	pool     []recycledSeg
	kept     map[int64]*Log // mappings of sealed segments, for recycling
	recycled atomic.Int64
	stop     chan struct{}
	bgDone   sync.WaitGroup
}

// RollStats counts the writer's rolls and how long they kept Allocate.
type RollStats struct {
	Rolls     int64         // segments the writer moved past
	Stalls    int64         // rolls that had to wait for (or make) the next segment themselves
	Recycled  int64         // segments made from the files of removed ones
	TotalTime time.Duration // time spent in rolls, inside Allocate
	MaxTime   time.Duration // the longest roll
}

// wseg is a segment open for writing.
type wseg struct {
	num int64
	log *Log
	w   *Writer
	id  uint64
}

// prepFuture is a segment being prepared ahead by a goroutine of its own: preparing is mostly
// the kernel providing fresh zeroed memory (about 1 ms per MiB here), so several run at once
// on machines with cores to spare.
type prepFuture struct {
	num  int64
	done chan struct{}
	seg  *wseg
	err  error
}

// queueTestHook, when set by a test, is called at each stage of a roll and at the writer's
// recovery, so that a test can kill the process exactly there.
var queueTestHook func(stage string)

func testHook(stage string) {
	if h := queueTestHook; h != nil {
		h(stage)
	}
}

// Writer opens the queue's single writer. Opening recovers from a writer that died, however it
// died: stale temporary files are removed, the writer resumes in the first unsealed segment at
// its committed end, and segments after it (prepared ahead, nothing committed) are removed.
// ErrReadOnly unless the queue was opened Writable; ErrLocked while another writer is open.
func (q *Queue) Writer() (*QueueWriter, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		return nil, newError("writer", q.dir, -1, ErrClosed)
	}
	if !q.opts.Writable {
		return nil, newError("writer", q.dir, -1, ErrReadOnly)
	}
	if q.writer != nil {
		return nil, errorf("writer", q.dir, -1, ErrLocked, "this Queue already has an open writer")
	}
	lf, err := q.openLockFile()
	if err != nil {
		return nil, err
	}
	switch err := flock.TryLock(int(lf.Fd())); {
	case errors.Is(err, flock.ErrWouldBlock):
		lf.Close()
		return nil, newError("writer", q.dir, -1, ErrLocked)
	case err != nil:
		lf.Close()
		return nil, newError("writer", q.dir, -1, fmt.Errorf("flock: %w", err))
	}
	w := &QueueWriter{q: q, lock: lf, sw: closedSegWriter}
	if err := w.recover(); err != nil {
		w.closeSegs()
		flock.Unlock(int(lf.Fd()))
		lf.Close()
		return nil, err
	}
	if err := q.writeMeta(); err != nil {
		w.closeSegs()
		flock.Unlock(int(lf.Fd()))
		lf.Close()
		return nil, err
	}
	w.bg = make(chan []*prepFuture, 64)
	w.stop = make(chan struct{})
	w.bgDone.Add(1)
	go w.background()
	w.prepareAhead()
	w.flush()
	q.writer = w
	return w, nil
}

func permOr600(m os.FileMode) os.FileMode {
	if m = m.Perm(); m == 0 {
		return 0o600
	}
	return m
}

// recover finds the head segment and repairs what a dead writer left.
func (w *QueueWriter) recover() error {
	q := w.q
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return newError("writer", q.dir, -1, err)
	}
	for _, e := range ents {
		// Open's create leaves ".NAME.tmp-PID-RAND" when killed before linking: a half-made
		// segment. Only the writer creates segments, and we hold the writer lock.
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, segSuffix+".tmp-") || strings.HasPrefix(n, metaFile+".tmp-") {
			os.Remove(filepath.Join(q.dir, n))
		}
	}
	testHook("recover")
	nums, err := q.listSegments()
	if err != nil {
		return err
	}
	head := int64(-1)
	var prevID uint64
	var prevEnd int64
	for i, n := range nums {
		h, err := q.segHeader(n)
		if err != nil {
			return newError("writer", q.dir, -1, fmt.Errorf("segment %d: %w", n, err))
		}
		if i > 0 && n != nums[i-1]+1 && head < 0 {
			return errorf("writer", q.dir, -1, ErrCorrupt, "segments %d and %d: the chain has a gap", nums[i-1], n)
		}
		if head >= 0 {
			// After the head: prepared ahead, never published. Anything committed here means
			// frames follow an unsealed segment, which no writer of ours does.
			if h.committed != 0 {
				return errorf("writer", q.dir, -1, ErrCorrupt, "segment %d holds %d committed bytes after unsealed segment %d", n, h.committed, head)
			}
			if err := os.Remove(q.segPath(n)); err != nil {
				return newError("writer", q.dir, -1, err)
			}
			continue
		}
		if h.nodeFmt {
			return errorf("writer", q.dir, -1, ErrBadHeader, "segment %d was not made by a shmio-go queue", n)
		}
		if !h.sealed {
			head = n
			continue
		}
		prevID, prevEnd = h.id, h.committed
		h.num = n
		w.sealed = append(w.sealed, h)
	}
	if w.q.opts.Retention.zero() {
		w.sealed = nil
	}
	if head < 0 {
		// Every segment is sealed (only if someone sealed the head by hand): start a new one.
		head = 1
		if len(nums) > 0 {
			head = nums[len(nums)-1] + 1
		}
		s, err := q.prepareSegment(head)
		if err != nil {
			return err
		}
		u64at(s.log.mem, offSegPrevID).Store(prevID)
		u64at(s.log.mem, offSegPrevEnd).Store(uint64(prevEnd))
		w.setCur(s)
		return nil
	}
	l, err := Open(Options{Path: q.segPath(head), Writable: true, DebugChecks: q.debug, Prefault: q.opts.Prefault})
	if err != nil {
		return err
	}
	l.private = true // only this queue uses it: Close unmaps at once
	sw, err := l.Writer()
	if err != nil {
		l.Close()
		return err
	}
	s := &wseg{num: head, log: l, w: sw, id: l.Header().ID}
	// The first segment is stamped right after it is made; a writer killed in between left 0.
	if u64at(l.mem, offSegNum).Load() == 0 {
		if head > 1 {
			if ph, err := q.segHeader(head - 1); err == nil {
				u64at(l.mem, offSegPrevID).Store(ph.id)
				u64at(l.mem, offSegPrevEnd).Store(uint64(ph.committed))
			}
		}
		u64at(l.mem, offSegNum).Store(uint64(head))
	}
	w.setCur(s)
	return nil
}

func (w *QueueWriter) setCur(s *wseg) {
	w.cur = s
	w.sw = s.w
	w.seg = s.num
}

// prepareSegment creates segment num (reserved and prefaulted), opens its writer and stamps its
// number; the roll that starts using it stamps the previous segment's ID. A file already there
// must be empty and unsealed.
func (q *Queue) prepareSegment(num int64) (*wseg, error) {
	if num > maxSegNum {
		return nil, errorf("roll", q.dir, -1, ErrFull, "segment numbers exhausted (%d)", num)
	}
	l, err := Open(Options{Path: q.segPath(num), Capacity: q.segSize, Writable: true, DebugChecks: q.debug, Mode: q.opts.Mode})
	if err != nil {
		return nil, err
	}
	l.private = true // only this queue uses it: Close unmaps at once
	testHook("prepare-created")
	h := l.Header()
	if h.Size != h.DataOffset || h.Sealed || h.NodeFormat {
		l.Close()
		return nil, errorf("roll", l.path, -1, ErrCorrupt, "segment %d exists already and is not empty", num)
	}
	prefaultSegment(l.mem)
	sw, err := l.Writer()
	if err != nil {
		l.Close()
		return nil, err
	}
	u64at(l.mem, offSegNum).Store(uint64(num))
	return &wseg{num: num, log: l, w: sw, id: h.ID}, nil
}

// background prepares the next segment, unmaps retired ones and applies retention, so that none
// of it happens inside Allocate.
func (w *QueueWriter) background() {
	defer w.bgDone.Done()
	var tick <-chan time.Time
	p := w.q.opts.Retention
	aged := p.MaxAge > 0 || p.HardMaxAge > 0
	if !p.zero() {
		// Retirements reach this goroutine with the next batch of preparations (see roll), or
		// at this tick if the writer stopped rolling before that.
		every := retireTick
		if aged {
			every = min(every, max(min(nonZero(p.MaxAge), nonZero(p.HardMaxAge))/4, 10*time.Millisecond))
		}
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case futs := <-w.bg:
			w.handle(futs)
		case <-tick:
			if w.retire() || aged {
				w.retainPass()
			}
		case <-w.stop:
			for {
				select {
				case futs := <-w.bg:
					w.handle(futs)
				default:
					w.retire()
					return
				}
			}
		}
	}
}

// retireTick bounds how late a sealed segment reaches retention when the writer stops rolling.
const retireTick = 100 * time.Millisecond

// retainPass applies the retention policy to the sealed segments this writer knows of.
func (w *QueueWriter) retainPass() {
	p := w.q.opts.Retention
	if p.zero() {
		return
	}
	w.segMu.Lock()
	segs := slices.Clone(w.sealed)
	w.segMu.Unlock()
	total := int64(1+w.q.prepareDepth()) * w.q.segSize // the head and the prepared segments
	for _, h := range segs {
		total += h.fileSize
	}
	removed, n, _ := w.q.retain(p, time.Now(), segs, len(segs)+1, total, w.recycle)
	for _, num := range removed {
		w.dropKept(num) // no-op for the recycled ones
	}
	if n > 0 {
		w.segMu.Lock()
		w.sealed = w.sealed[n:]
		w.segMu.Unlock()
	}
}

func nonZero(d time.Duration) time.Duration {
	if d <= 0 {
		return 1<<63 - 1
	}
	return d
}

// discardAhead closes and removes every segment prepared ahead; the next prepareAhead makes
// them again.
func (w *QueueWriter) discardAhead() {
	for _, f := range w.ahead {
		<-f.done
		if f.seg != nil {
			f.seg.close()
			os.Remove(w.q.segPath(f.num))
		}
	}
	w.ahead = nil
}

func (s *wseg) close() {
	s.w.Close()
	s.log.Close()
}

// prepareDepth is how many segments are prepared ahead of the one being written: up to eight
// (several preparations run at once, a writer outrunning one of them does not wait, and the
// writer hands work over every depth/2 rolls), but no more than 16 MiB ahead, and at least one.
func (q *Queue) prepareDepth() int {
	return int(min(max((16<<20)/q.segSize, 1), 8))
}

// prepareAhead starts preparing segments up to prepareDepth past the current one.
func (w *QueueWriter) prepareAhead() {
	next := w.cur.num + 1
	if n := len(w.ahead); n > 0 {
		next = w.ahead[n-1].num + 1
	}
	for ; len(w.ahead) < w.q.prepareDepth(); next++ {
		f := &prepFuture{num: next, done: make(chan struct{})}
		w.ahead = append(w.ahead, f)
		w.futs = append(w.futs, f)
	}
}

// Allocate reserves a frame of n payload bytes, rolling to the next segment when the current one
// cannot hold it; see Writer.Allocate. A roll that cannot get its next segment (a full
// filesystem, say) returns an error wrapping ErrFull and the cause; the frames committed so far
// and the allocated ones stay as they were, and a later Allocate tries again.
func (w *QueueWriter) Allocate(n int) ([]byte, error) {
	// The segment writer's fast path, inlined: a queue frame costs what a log frame costs.
	if p := w.sw.place(n); p != nil {
		return p, nil
	}
	return w.allocateSlow(n)
}

// closedSegWriter stands for the segment writer once the QueueWriter is closed, so that the fast
// path needs no nil check: its place always declines.
var closedSegWriter = &Writer{}

func (w *QueueWriter) allocateSlow(n int) ([]byte, error) {
	if w.closed || w.q.closed.Load() {
		return nil, newError("allocate", w.q.dir, -1, ErrClosed)
	}
	sw := w.sw
	if n <= 0 || n > sw.maxLen || n+sw.overhead <= sw.capacity-sw.end {
		return sw.Allocate(n) // not a matter of space: let the segment's writer explain
	}
	if n+sw.overhead > int(w.q.segSize)-goHeaderSize {
		return nil, errorf("allocate", w.q.dir, -1, ErrFrameTooLarge, "%d bytes cannot fit even in an empty segment of %d bytes", n, w.q.segSize)
	}
	if err := w.roll(); err != nil {
		return nil, err
	}
	return w.sw.Allocate(n)
}

// roll moves to the next segment. The current one is sealed now if everything in it is
// committed, else at the next Commit (it joins pending).
func (w *QueueWriter) roll() error {
	start := time.Now()
	want := w.cur.num + 1
	var next *wseg
	stalled := false
	if len(w.ahead) > 0 && w.ahead[0].num == want {
		f := w.ahead[0]
		select {
		case <-f.done:
		default:
			stalled = true
			<-f.done
		}
		w.ahead = w.ahead[1:]
		next = f.seg
	}
	if next == nil {
		// Preparing it failed (or was not started): try here, so the caller gets the reason
		// and a freed filesystem is noticed at once. Segments prepared after it may hold the
		// very space it lacks (the filesystem filled up while they were made): nothing is or
		// can be published in them yet, so give them back first.
		w.discardAhead()
		stalled = true
		var err error
		if next, err = w.prepare(want); err != nil {
			return errorf("roll", w.q.dir, -1, ErrFull, "cannot make segment %d: %w", want, err)
		}
	}
	testHook("roll-got-next")
	old := w.cur
	u64at(next.log.mem, offSegPrevID).Store(old.id)
	// Every frame of old is allocated now: its final size, for cursors stored at its end (see
	// seekTo) once it is gone.
	u64at(next.log.mem, offSegPrevEnd).Store(uint64(int64(old.w.end) - old.log.lo.dataOffset))
	carryTag(old, next)
	if old.w.end != old.w.committed {
		w.pending = append(w.pending, old)
	} else if err := w.seal(old); err != nil {
		next.close() // stays on disk, empty: the next roll or writer takes it
		return err
	}
	w.setCur(next)
	// Hand work to the background in batches, when half the segments prepared ahead are used:
	// each hand-off wakes an idle core, which costs the writer most of a roll (about 6 µs here,
	// against 1.5 µs for the rest). The retirements since the last batch go with it.
	if len(w.ahead) <= w.q.prepareDepth()/2 {
		w.prepareAhead()
		w.flush()
	}
	testHook("roll-done")
	d := time.Since(start)
	w.stats.Rolls++
	if stalled {
		w.stats.Stalls++
	}
	w.stats.TotalTime += d
	w.stats.MaxTime = max(w.stats.MaxTime, d)
	return nil
}

// seal dates, seals and retires a segment whose frames are all allocated.
func (w *QueueWriter) seal(s *wseg) error {
	if err := s.commitKeepingTag(); err != nil {
		return err
	}
	u64at(s.log.mem, offSegSealedAt).Store(uint64(time.Now().UnixNano()))
	testHook("seal-before")
	if err := s.w.Seal(); err != nil {
		return err
	}
	testHook("seal-after")
	r := retired{s, segHeader{num: s.num, fileSize: int64(len(s.log.mem)), sealed: true,
		committed: int64(s.w.committed) - s.log.lo.dataOffset, sealedAt: int64(u64at(s.log.mem, offSegSealedAt).Load())}}
	w.retMu.Lock()
	w.retQ = append(w.retQ, r)
	w.retMu.Unlock()
	return nil
}

// flush hands the preparations collected by prepareAhead to the background goroutine, or starts
// them here if that goroutine is that far behind.
func (w *QueueWriter) flush() {
	if len(w.futs) == 0 {
		return
	}
	futs := w.futs
	w.futs = nil
	select {
	case w.bg <- futs:
	default:
		for _, f := range futs {
			go w.runFuture(f)
		}
	}
}

// handle retires the segments sealed since the last wake-up, applies retention (which may
// recycle their files) and only then starts preparations, so that they find the recycled files.
func (w *QueueWriter) handle(futs []*prepFuture) {
	if w.retire() {
		w.retainPass()
	}
	for _, f := range futs {
		go w.runFuture(f)
	}
}

// retire takes the sealed segments queued by the writer, reporting whether there were any.
func (w *QueueWriter) retire() bool {
	w.retMu.Lock()
	rs := w.retQ
	w.retQ = nil
	w.retMu.Unlock()
	for _, r := range rs {
		w.retireNow(r)
	}
	return len(rs) > 0
}

func (w *QueueWriter) runFuture(f *prepFuture) {
	defer close(f.done)
	f.seg, f.err = w.prepare(f.num)
	testHook("prepared")
}

// retired is a sealed segment on its way out of the writer.
type retired struct {
	s *wseg
	h segHeader
}

// retireNow unmaps a sealed segment and only then lists it for retention: retention must never
// recycle a file the writer still maps.
// With a retention policy (and recycling) the writer keeps the mapping of up to keptMappings
// sealed segments, so that a recycled one comes back with its pages mapped: preparing it is
// then a header rewrite and a rename, with none of the page-table work (on this VM about 2 µs
// per 4 KiB page) that mapping a file again costs.
func (w *QueueWriter) retireNow(r retired) {
	if w.q.opts.Retention.zero() {
		r.s.close()
		return
	}
	if segRecycling && r.s.log.Header().Capacity == w.q.segSize {
		r.s.w.Close()
		w.poolMu.Lock()
		if w.kept == nil {
			w.kept = map[int64]*Log{}
		}
		w.kept[r.s.num] = r.s.log
		for len(w.kept) > keptMappings {
			oldest := int64(maxSegNum + 1)
			for n := range w.kept {
				oldest = min(oldest, n)
			}
			w.kept[oldest].Close()
			delete(w.kept, oldest)
		}
		w.poolMu.Unlock()
	} else {
		r.s.close()
	}
	w.segMu.Lock()
	w.sealed = append(w.sealed, r.h)
	w.segMu.Unlock()
}

const keptMappings = 256

// dropKept unmaps a kept segment that retention removed.
func (w *QueueWriter) dropKept(n int64) {
	w.poolMu.Lock()
	defer w.poolMu.Unlock()
	if l := w.kept[n]; l != nil {
		l.Close()
		delete(w.kept, n)
	}
}

// recycledSeg is a removed segment file kept for reuse.
type recycledSeg struct {
	f   *os.File
	tmp string
	log *Log // the writer's old mapping of it, or nil
}

// recycle takes a segment that retention removes and keeps its file for a later segment, when
// nobody maps it (it gets the exclusive lock that every reader's shared one excludes): preparing
// a segment then costs mapping pages the kernel already has instead of allocating and zeroing
// fresh memory, about a tenth. The file is renamed out of sight at once, so the segment is gone
// for readers exactly as if it were removed; its header is rewritten before it is reused.
func (w *QueueWriter) recycle(h segHeader) bool {
	if !segRecycling || h.fileSize != w.q.segSize {
		return false
	}
	w.poolMu.Lock()
	full := len(w.pool) > w.q.prepareDepth()
	w.poolMu.Unlock()
	if full {
		return false
	}
	path := w.q.segPath(h.num)
	w.poolMu.Lock()
	l := w.kept[h.num]
	delete(w.kept, h.num)
	w.poolMu.Unlock()
	var f *os.File
	if l != nil {
		f = l.file
	} else {
		var err error
		if f, err = os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0); err != nil {
			return false
		}
	}
	giveUp := func() bool {
		if l != nil {
			l.Close()
		} else {
			f.Close()
		}
		return false
	}
	var b [8]byte
	if !segTryWriteLock(f) {
		return giveUp()
	}
	if _, err := f.ReadAt(b[:], offSegNum); err != nil || int64(le.Uint64(b[:])) != h.num {
		segUnlock(f)
		return giveUp()
	}
	tmp := filepath.Join(w.q.dir, fmt.Sprintf(".%s.tmp-recycle-%d", segName(h.num), os.Getpid()))
	if err := os.Rename(path, tmp); err != nil {
		segUnlock(f)
		return giveUp()
	}
	w.poolMu.Lock()
	w.pool = append(w.pool, recycledSeg{f, tmp, l})
	w.poolMu.Unlock()
	return true
}

// prepare makes segment num from a recycled file when there is one, else a new file.
func (w *QueueWriter) prepare(num int64) (*wseg, error) {
	w.poolMu.Lock()
	var r recycledSeg
	if n := len(w.pool); n > 0 {
		r = w.pool[n-1]
		w.pool = w.pool[:n-1]
	}
	w.poolMu.Unlock()
	if r.f != nil {
		err := w.q.reuse(r, num)
		if err == nil && r.log != nil {
			if s, err := w.q.adopt(r.log, num); err == nil {
				w.recycled.Add(1)
				return s, nil
			}
			r.log.Close()
			return w.q.prepareSegment(num) // it is in place now, just not mapped
		}
		if r.log != nil {
			r.log.Close()
		} else {
			r.f.Close()
		}
		if err != nil {
			os.Remove(r.tmp)
		} else {
			w.recycled.Add(1)
		}
	}
	return w.q.prepareSegment(num)
}

// adopt makes segment num of a recycled file the writer still maps (see retireNow).
func (q *Queue) adopt(l *Log, num int64) (*wseg, error) {
	l.path = q.segPath(num)
	h := l.Header()
	if h.Size != h.DataOffset || h.Sealed || h.NodeFormat {
		return nil, errorf("roll", l.path, -1, ErrCorrupt, "recycled segment %d is not empty", num)
	}
	sw, err := l.Writer()
	if err != nil {
		return nil, err
	}
	u64at(l.mem, offSegNum).Store(uint64(num))
	return &wseg{num: num, log: l, w: sw, id: h.ID}, nil
}

// reuse gives a recycled file a fresh header (new identity, nothing committed, number num) and
// links it into place as segment num. The exclusive lock is held until the header is new, so a
// reader that opened the file under its old name sees either the lock or the new number.
func (q *Queue) reuse(r recycledSeg, num int64) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	hdr := newHeader(false, le.Uint64(rnd[:])|1, time.Now().UnixNano())
	le.PutUint64(hdr[offSegNum:], uint64(num))
	_, err := r.f.WriteAt(hdr, 0)
	segUnlock(r.f)
	if err != nil {
		return err
	}
	testHook("reuse-before-link")
	if err := os.Link(r.tmp, q.segPath(num)); err != nil {
		return err
	}
	return os.Remove(r.tmp)
}

// dropPool removes the recycled files still kept.
func (w *QueueWriter) dropPool() {
	w.poolMu.Lock()
	defer w.poolMu.Unlock()
	for _, r := range w.pool {
		os.Remove(r.tmp)
		if r.log != nil {
			r.log.Close()
		} else {
			r.f.Close()
		}
	}
	w.pool = nil
	for _, l := range w.kept {
		l.Close()
	}
	w.kept = nil
}

// sealPending publishes the frames of segments left behind by rolls, oldest first.
func (w *QueueWriter) sealPending() error {
	for len(w.pending) > 0 {
		if err := w.seal(w.pending[0]); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	w.pending = nil
	return nil
}

// Append allocates a frame of len(p) bytes and copies p into it.
func (w *QueueWriter) Append(p []byte) error {
	b, err := w.Allocate(len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Commit publishes every frame allocated since the last Commit and wakes sleeping readers.
func (w *QueueWriter) Commit() error {
	if w.closed {
		return newError("commit", w.q.dir, -1, ErrClosed)
	}
	if len(w.pending) > 0 {
		if err := w.sealPending(); err != nil {
			return err
		}
	}
	return w.sw.Commit()
}

// CommitTagged commits like Commit and stores tag with the new end, as Writer.CommitTagged;
// Queue.CommitTag reads it back. A tag names the batch's last frame, so it is stored only with
// the commit that makes that frame visible, in the current segment: the final commits of
// earlier segments the batch straddles keep the tag their end had before (see carryTag), and a
// kill between the commits leaves a tag that claims less than what is committed, never more.
func (w *QueueWriter) CommitTagged(tag uint64) error {
	if w.closed {
		return newError("commit", w.q.dir, -1, ErrClosed)
	}
	if len(w.pending) > 0 {
		if err := w.sealPending(); err != nil {
			return err
		}
		testHook("commit-between")
	}
	return w.sw.CommitTagged(tag)
}

// Sync flushes committed frames to storage (msync of the current and pending segments).
func (w *QueueWriter) Sync() error {
	if w.closed {
		return newError("sync", w.q.dir, -1, ErrClosed)
	}
	for _, s := range w.pending {
		if err := s.w.Sync(); err != nil {
			return err
		}
	}
	return w.sw.Sync()
}

// Segment returns the number of the segment being written.
func (w *QueueWriter) Segment() int64 { return w.seg }

// Stats returns the roll statistics since the writer opened.
func (w *QueueWriter) Stats() RollStats {
	st := w.stats
	st.Recycled = w.recycled.Load()
	return st
}

// Close releases the writer. Uncommitted frames are discarded; a prepared segment stays for the
// next writer to remove or use.
func (w *QueueWriter) Close() error {
	w.q.mu.Lock()
	defer w.q.mu.Unlock()
	if w.closed {
		return newError("close writer", w.q.dir, -1, ErrClosed)
	}
	return w.closeLocked()
}

func (w *QueueWriter) closeLocked() error {
	w.closed = true
	w.flush()
	close(w.stop)
	w.bgDone.Wait()
	for _, f := range w.ahead {
		<-f.done
		if f.seg != nil {
			f.seg.close()
		}
	}
	w.ahead = nil
	w.dropPool()
	w.closeSegs()
	w.q.writer = nil
	err := flock.Unlock(int(w.lock.Fd()))
	w.lock.Close()
	if err != nil {
		return newError("close writer", w.q.dir, -1, fmt.Errorf("unlock: %w", err))
	}
	return nil
}

func (w *QueueWriter) closeSegs() {
	for _, s := range w.pending {
		s.close()
	}
	w.pending = nil
	if w.cur != nil {
		w.cur.close()
	}
	w.cur, w.sw = nil, closedSegWriter
}
