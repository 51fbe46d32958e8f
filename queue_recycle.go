package shmio

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Recycling: segments retention removed are renamed out of sight and reused for new segments
// when nobody maps them (see Queue, and FORMAT.md, "Recycling").

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
	if !lockForRecycle(f, h.num) {
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
	l.word64(offSegNum).Store(uint64(num))
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

// lockForRecycle takes a removed segment file's write lock (no reader or writer maps it) and
// checks that the file still holds segment num, as recycling in both writer modes needs.
func lockForRecycle(f *os.File, num int64) bool {
	if !segTryWriteLock(f) {
		return false
	}
	var b [8]byte
	if _, err := f.ReadAt(b[:], offSegNum); err != nil || int64(le.Uint64(b[:])) != num {
		segUnlock(f)
		return false
	}
	return true
}
