package shmio

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shmio/shmio/internal/fallocate"
	"golang.org/x/sys/unix"
)

// Background work of a process's shared writers, one goroutine at a time: retention, then the
// spare segment for this process's next roll (both after a seal; a spare of fresh memory is
// made in a goroutine of its own), and the pool of mappings (keep, warm). The spare is a file
// no one else can see, full size, with its header, mapped and populated, so that the roll (under
// the head's lock) only stamps it and links it into place as the next segment. It is either a
// segment that retention removes, recycled when nobody maps it (renamed out of sight, as
// QueueWriter recycles: shared writers hold the read lock readers hold on the segments they
// map), or an unnamed file (O_TMPFILE) of fresh memory. A segment that exists already wins: the
// link fails and the spare waits for a later roll. Each process keeps at most maxSpares (two:
// a roll that had to create its segment, because the spare was not ready, would otherwise leave
// the next recycling no room, and retention would remove what the next roll needs). Where
// neither kind can be had, rolls create the segment themselves, as Open creates a log.

// poolMax bounds the segment files a process keeps mapped after its writers let them go (see
// keep). In steady state retention recycles the same few files (the retained segments and the
// processes' spares) under new numbers, so each process maps each of them once.
const poolMax = 16

const maxSpares = 2

// spareSeg is a spare segment: l's file, unnamed, or named tmp if it is a recycled segment.
type spareSeg struct {
	l   *Log
	tmp string
}

// kick runs the background work, or runs it once more if it is running.
func (qs *queueShared) kick() {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.closing {
		return
	}
	if qs.busy {
		qs.again = true
		return
	}
	qs.busy = true
	qs.bg.Add(1)
	go qs.background()
}

func (qs *queueShared) background() {
	defer qs.bg.Done()
	q := qs.q
	for {
		if p := q.opts.Retention; !p.zero() {
			q.retMu.Lock()
			q.applyRetention(p, time.Now(), qs.recycle)
			q.retMu.Unlock()
			qs.pruneKept()
		}
		qs.mu.Lock()
		// One spare, replaced by recycling at each seal, unless the background came too late
		// for rolls of this process (a busy machine, or rolls every few ms): then two, so that
		// a late recycling costs nothing. Fresh memory costs every process a mapping.
		want := 1
		if qs.misses > 1 {
			want = maxSpares
		}
		if len(qs.spares) < want && !qs.noSpare && !qs.closing && !qs.making {
			// Apart: making fresh memory takes milliseconds, during which the next seal's
			// recycling must not wait (a roll would find no spare, and make a file itself).
			qs.making = true
			qs.bg.Add(1)
			go qs.makeSpare()
		}
		if !qs.warmed {
			qs.warmed = true
			qs.mu.Unlock()
			qs.warm()
			qs.mu.Lock()
		}
		if !qs.again || qs.closing {
			qs.busy = false
			qs.mu.Unlock()
			return
		}
		qs.again = false
		qs.mu.Unlock()
	}
}

// pruneTick is how often a process whose writers do nothing lets go of the mappings of files
// retention removed (pruneKept), which would otherwise hold their memory.
const pruneTick = time.Second

// ticker applies a retention policy with an age also while no writer of this process seals (as
// QueueWriter does), at a quarter of the shortest age, at least every retireTick; without an
// age, it prunes the pool every pruneTick.
func (qs *queueShared) ticker() {
	p := qs.q.opts.Retention
	if p.zero() {
		return
	}
	age := p.MaxAge > 0 || p.HardMaxAge > 0
	every := pruneTick
	if age {
		every = min(retireTick, max(min(nonZero(p.MaxAge), nonZero(p.HardMaxAge))/4, 10*time.Millisecond))
	}
	qs.tick.Add(1)
	go func() {
		defer qs.tick.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if age {
					qs.kick() // retention, then pruneKept
				} else {
					qs.pruneKept()
				}
			case <-qs.stop:
				return
			}
		}
	}()
}

// warmMax bounds the segments warm maps.
const warmMax = poolMax / 2

// warm maps, into the pool, the oldest segments of the queue (up to warmMax) when this process's
// first writer opens: retention recycles them next, and they come back as new segments, to this
// process's rolls or from other processes' (see keep). So a process joining a busy queue maps
// them here, in the background, not when its writers move on.
func (qs *queueShared) warm() {
	q := qs.q
	if q.opts.Retention.zero() || !segRecycling {
		return
	}
	nums, err := q.listSegments()
	if err != nil {
		return
	}
	for _, n := range nums[:min(len(nums), warmMax)] {
		path := q.segPath(n)
		f, err := openExisting(path, true)
		if err != nil {
			continue
		}
		key, st, ok := fileKeyOf(f)
		qs.mu.Lock()
		skip := !ok || qs.closing || qs.segs[n] != nil || qs.pool[key].l != nil || st.Size != q.segSize
		qs.mu.Unlock()
		var l *Log
		if !skip {
			l, err = mapLog(f, Options{Path: path, Writable: true, Prefault: q.opts.Prefault, DebugChecks: q.debug})
		}
		if skip || err != nil {
			f.Close()
			continue
		}
		l.private = true
		var drop []*Log
		qs.mu.Lock()
		if l.lo.nodeFormat || qs.closing || qs.pool[key].l != nil {
			drop = []*Log{l}
		} else {
			drop = qs.poolLocked(key, l)
		}
		qs.mu.Unlock()
		closeLogs(drop)
	}
}

// fileKey names a file (not a path): a recycled segment keeps it under its new number.
type fileKey struct{ dev, ino uint64 }

// pooled is a mapping of a segment file no writer of this process uses (see keep).
type pooled struct {
	l   *Log
	seq uint64 // age, for eviction
}

func fileKeyOf(f *os.File) (k fileKey, st unix.Stat_t, ok bool) {
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return k, st, false
	}
	return fileKey{uint64(st.Dev), st.Ino}, st, true
}

// keep parks the mapping of a segment no writer of this process uses any more while there is a
// retention policy: retention recycles segment files under new numbers, and when one comes back
// (to this process's recycle, or as a segment its writers move on to, made from another
// process's spare) the parked mapping is reused with its page tables (takePooled), instead of
// mapping and faulting 16 MiB again and unmapping it later (most of what several writer
// processes cost, see BENCHMARKS.md). A parked mapping is not locked: another process may
// recycle or remove the file (pruneKept then lets it go).
func (qs *queueShared) keep(e *qsLog) {
	l := e.log
	key, _, ok := fileKeyOf(l.file)
	if !ok || qs.q.opts.Retention.zero() || !segRecycling || l.fileSize() != qs.q.segSize {
		l.Close()
		return
	}
	segUnlock(l.file)
	qs.mu.Lock()
	if qs.closing || qs.pool[key].l != nil {
		qs.mu.Unlock()
		l.Close()
		return
	}
	evicted := qs.poolLocked(key, l)
	qs.mu.Unlock()
	closeLogs(evicted)
}

// poolLocked parks l and returns the oldest beyond poolMax, evicted, for the caller to close
// once it has let go of qs.mu (see closeLogs); qs.mu is held.
func (qs *queueShared) poolLocked(key fileKey, l *Log) (evicted []*Log) {
	qs.poolSeq++
	qs.pool[key] = pooled{l, qs.poolSeq}
	for len(qs.pool) > poolMax {
		var oldest fileKey
		seq := ^uint64(0)
		for k, p := range qs.pool {
			if p.seq < seq {
				oldest, seq = k, p.seq
			}
		}
		evicted = append(evicted, qs.pool[oldest].l)
		delete(qs.pool, oldest)
	}
	return evicted
}

// closeLogs closes (unmaps) logs outside qs.mu: unmapping 16 MiB takes about a millisecond,
// which a roll (taking a spare under qs.mu, holding the head's lock) must not wait for.
func closeLogs(ls []*Log) {
	for _, l := range ls {
		l.Close()
	}
}

// takePooled returns the parked mapping of f's file, ready to be used as path (nil if there is
// none, or the file changed size or layout); qs.mu is held. The caller closes f if it is not nil.
func (qs *queueShared) takePooled(f *os.File, path string) *Log {
	key, st, ok := fileKeyOf(f)
	if !ok {
		return nil
	}
	p, found := qs.pool[key]
	if !found {
		return nil
	}
	delete(qs.pool, key)
	l := p.l
	if st.Size != int64(len(l.mem)) {
		l.Close()
		return nil
	}
	if lo, err := parseHeader(l.mem, st.Size, path); err != nil || lo != l.lo {
		l.Close()
		return nil
	}
	l.path = path
	return l
}

// pruneKept unmaps parked mappings of files that are gone (removed by retention).
func (qs *queueShared) pruneKept() {
	var gone []*Log
	qs.mu.Lock()
	for k, p := range qs.pool {
		if _, st, ok := fileKeyOf(p.l.file); !ok || st.Nlink == 0 {
			gone = append(gone, p.l)
			delete(qs.pool, k)
		}
	}
	qs.mu.Unlock()
	closeLogs(gone)
}

// makeSpare adds a spare of fresh memory.
func (qs *queueShared) makeSpare() {
	defer qs.bg.Done()
	l, unsupported := qs.q.newSpare()
	qs.mu.Lock()
	defer qs.mu.Unlock()
	qs.making = false
	switch {
	case l == nil:
		qs.noSpare = unsupported // else, a full filesystem say, try again next time
	case qs.closing || len(qs.spares) >= maxSpares:
		l.Close()
	default:
		qs.spares = append(qs.spares, spareSeg{l: l})
	}
}

// newSpare makes an unnamed segment file, or returns nil: unsupported where that cannot be
// done at all.
func (q *Queue) newSpare() (_ *Log, unsupported bool) {
	mode := permOr600(q.opts.Mode)
	f, err := openTmpfile(q.dir, mode)
	if f == nil || err != nil {
		return nil, f == nil && err == nil
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	hdr := newHeader(false, le.Uint64(rnd[:])|1, time.Now().UnixNano())
	if err := f.Chmod(mode); err == nil {
		if err = f.Truncate(q.segSize); err == nil {
			if err = fallocate.Reserve(int(f.Fd()), q.segSize); err == nil {
				_, err = f.WriteAt(hdr, 0)
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, false
	}
	l, err := mapLog(f, Options{Path: q.dir, Writable: true, DebugChecks: q.debug})
	if err != nil {
		f.Close()
		return nil, false
	}
	l.private = true
	prefaultSegment(l.mem)
	return l, false
}

// recycle is retention's alternative to removing a segment (see retain): when this process has
// no spare and nobody else maps the segment (the exclusive lock every mapper's shared one
// excludes), it renames the file out of sight (to readers it is gone) under a temporary name
// that removeStaleTemps clears if this process dies, and keeps it, mapped and still locked, as
// the spare. The lock is held until a roll gives the file its new number (takeSpare).
func (qs *queueShared) recycle(h segHeader) bool {
	q := qs.q
	qs.mu.Lock()
	have := len(qs.spares) >= maxSpares || qs.closing
	qs.mu.Unlock()
	if have || !segRecycling || h.fileSize != q.segSize {
		return false
	}
	path := q.segPath(h.num)
	f, err := openQueueFile("recycle", path, unix.O_RDWR)
	if err != nil {
		return false
	}
	qs.mu.Lock()
	l := qs.takePooled(f, path)
	qs.mu.Unlock()
	if l != nil {
		f.Close()
		f = l.file
	}
	giveUp := func() bool {
		if l != nil {
			drop := []*Log{l}
			qs.mu.Lock()
			if key, _, ok := fileKeyOf(f); ok && !qs.closing && qs.pool[key].l == nil {
				drop = qs.poolLocked(key, l) // mapped by someone: still worth keeping
			}
			qs.mu.Unlock()
			closeLogs(drop)
		} else {
			f.Close()
		}
		return false
	}
	if !lockForRecycle(f, h.num) {
		return giveUp()
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(q.dir, fmt.Sprintf(".%s%s%d-%x", segName(h.num), tmpInfix, os.Getpid(), rnd))
	if err := os.Rename(path, tmp); err != nil {
		segUnlock(f)
		return giveUp()
	}
	if l != nil {
		l.path = tmp
	} else {
		var err error
		if l, err = mapLog(f, Options{Path: tmp, Writable: true, DebugChecks: q.debug}); err != nil {
			f.Close()
			os.Remove(tmp)
			return true // gone, as retention wanted
		}
		l.private = true
		prefaultSegment(l.mem)
	}
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if len(qs.spares) >= maxSpares || qs.closing {
		os.Remove(tmp)
		l.Close()
		return true
	}
	qs.spares = append(qs.spares, spareSeg{l, tmp})
	return true
}

// takeSpare links a spare into place as segment num and returns it, or nil (no spare, or
// segment num exists already: the spare is kept). qs.mu is held.
func (qs *queueShared) takeSpare(num int64) *Log {
	k := len(qs.spares)
	if k == 0 {
		return nil
	}
	sp := qs.spares[k-1]
	l, path := sp.l, qs.q.segPath(num)
	var err error
	unsupported := false
	if sp.tmp != "" {
		// A recycled file: a fresh header (new identity, nothing committed, number num) before
		// the exclusive lock goes, so that whoever opened it under its old name and then gets
		// the lock sees another number (see Queue.misnumbered).
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		hdr := newHeader(false, le.Uint64(rnd[:])|1, time.Now().UnixNano())
		le.PutUint64(hdr[offSegNum:], uint64(num))
		if _, err = l.file.WriteAt(hdr, 0); err == nil {
			segUnlock(l.file)
			if err = os.Link(sp.tmp, path); err == nil {
				os.Remove(sp.tmp)
			}
		}
	} else {
		l.word64(offSegNum).Store(uint64(num)) // before the name: nobody sees it unstamped
		unsupported, err = linkTmpfile(l.file, path)
	}
	switch {
	case err == nil:
		qs.spares = qs.spares[:k-1]
		l.path = path
		return l
	case errors.Is(err, unix.EEXIST):
		if sp.tmp == "" {
			l.word64(offSegNum).Store(0)
		}
	default:
		qs.noSpare = qs.noSpare || unsupported
		qs.spares = qs.spares[:k-1]
		sp.drop()
	}
	return nil
}

func (sp spareSeg) drop() {
	if sp.tmp != "" {
		os.Remove(sp.tmp)
	}
	sp.l.Close()
}

// dropSpares removes and unmaps the spares; qs.mu is held.
func (qs *queueShared) dropSpares() {
	for _, sp := range qs.spares {
		sp.drop()
	}
	qs.spares = nil
}
