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
	"time"

	"github.com/shmio/shmio/internal/format"
	"github.com/shmio/shmio/internal/mmap"
	"golang.org/x/sys/unix"
)

// storeSrc is the frames of a store as Inspect sees them: a log is one segment numbered 0.
type storeSrc struct {
	path func(seg int64) string
	segs []segSnap // present, ascending, up to the head
}

func (s storeSrc) origin() pos { return pos{s.segs[0].num, 0} }

func (s storeSrc) find(n int64) (segSnap, bool) {
	i, ok := slices.BinarySearchFunc(s.segs, n, func(g segSnap, n int64) int { return int(g.num - n) })
	if !ok {
		return segSnap{}, false
	}
	return s.segs[i], true
}

// committed is segment n's committed bytes: present, or remembered once it was sealed.
func (s storeSrc) committed(n int64, cache map[int64]segSnap) int64 {
	if g, ok := s.find(n); ok {
		return g.committed
	}
	return cache[n].committed
}

// bytesBetween counts the frame bytes from a to b (a before b). The segments wholly between them
// are sealed, so their sizes are present or remembered; ones never seen count 0.
func (s storeSrc) bytesBetween(a, b pos, cache map[int64]segSnap) int64 {
	if !a.less(b) {
		return 0
	}
	if a.seg == b.seg {
		return b.off - a.off
	}
	total := s.committed(a.seg, cache) - a.off + b.off
	for n, g := range cache {
		if n > a.seg && n < b.seg {
			total += g.committed
		}
	}
	return total
}

// walk counts the frames from a toward b, reading at most budget bytes with pread. It returns
// the frames and bytes walked and where it stopped. Segments removed before they were walked
// are skipped, their frames estimated with mean (skipped true).
func (s storeSrc) walk(a, b pos, budget int64, mean float64, buf []byte, cache map[int64]segSnap) (frames, bytes int64, p pos, skipped bool) {
	p = a
	for p.less(b) && budget > 0 {
		g, ok := s.find(p.seg)
		if !ok || p.off >= g.committed && p.seg < b.seg {
			// Gone, or walked to its end: continue at the next segment present.
			i, _ := slices.BinarySearchFunc(s.segs, p.seg+1, func(g segSnap, n int64) int { return int(g.num - n) })
			if i == len(s.segs) {
				break
			}
			next := pos{s.segs[i].num, 0}
			if !ok {
				gap := s.bytesBetween(p, next, cache)
				bytes += gap
				if mean > 0 {
					frames += int64(float64(gap) / mean)
				}
				skipped = true
			}
			p = next
			continue
		}
		end := g.committed
		if p.seg == b.seg {
			end = b.off
		}
		fr, reached, err := walkFile(s.path(p.seg), g, p.off, end, budget, buf)
		frames += fr
		bytes += reached - p.off
		budget -= reached - p.off
		p.off = reached
		if err != nil || reached < end {
			break
		}
	}
	return frames, bytes, p, skipped
}

// walkFile counts the frames of segment g from offset from up to to (offsets from its data
// offset), reading at most about budget bytes. Frames below the committed end never change, so
// pread sees them whole; a queue segment recycled meanwhile is caught by its changed ID.
func walkFile(path string, g segSnap, from, to, budget int64, buf []byte) (frames, reached int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, from, err
	}
	defer f.Close()
	lsz := int64(g.lenSize)
	off := from
	for off < to && off-from < budget {
		n := min(int64(len(buf)), to-off, max(budget-(off-from), 64))
		if k, err := f.ReadAt(buf[:n], g.dataOffset+off); int64(k) < n {
			return 0, from, fmt.Errorf("read %s at %d: %w", path, g.dataOffset+off, err)
		}
		b := buf[:n]
		var p int64
		for p+lsz <= n {
			l := int64(le.Uint16(b[p:]))
			if lsz == 4 {
				l = int64(le.Uint32(b[p:]))
			}
			if l < 2*lsz+1 || off+p+l > to {
				return 0, from, errorf("inspect", path, g.dataOffset+off+p, ErrCorrupt, "frame length %d", l)
			}
			if p+l <= n {
				t := int64(le.Uint16(b[p+l-lsz:]))
				if lsz == 4 {
					t = int64(le.Uint32(b[p+l-lsz:]))
				}
				if t != l {
					return 0, from, errorf("inspect", path, g.dataOffset+off+p, ErrCorrupt, "leading length %d, trailing length %d", l, t)
				}
			}
			p += l
			frames++
		}
		if p == 0 {
			return 0, from, errorf("inspect", path, g.dataOffset+off, ErrCorrupt, "truncated frame")
		}
		off += p
	}
	if !g.node {
		var id [8]byte
		if k, _ := f.ReadAt(id[:], offID); k != 8 || le.Uint64(id[:]) != g.id {
			return 0, from, errorf("inspect", path, offID, ErrMappingGone, "segment recycled while inspected")
		}
	}
	return frames, off, nil
}

func (in *Inspector) inspectQueue(dir string, locks lockTable, now time.Time) Snapshot {
	s := Snapshot{Path: dir, Kind: KindQueue, At: now}
	var dst unix.Stat_t
	if err := unix.Stat(dir, &dst); err != nil {
		s.Err = newError("inspect", dir, -1, err)
		return s
	}
	q := &Queue{dir: dir}
	nums, err := q.listSegments()
	if err != nil {
		s.Err = err
		return s
	}
	st := in.state(dir, uint64(dst.Dev), uint64(dst.Ino), 0)
	if st.qid == 0 {
		if m, err := q.readMeta(); err == nil {
			st.qid = format.QueueID(m.ID)
		}
	}
	s.ID = st.qid
	var segs []segSnap
	for _, n := range nums {
		g, ok := st.segs[n]
		if !ok {
			g, err = readSnap(q.segPath(n))
			if errors.Is(err, fs.ErrNotExist) || err == nil && g.num != 0 && g.num != n {
				continue // removed or being recycled meanwhile
			}
			if err != nil {
				s.Err = err
				return s
			}
			g.num = n
			if g.sealed {
				st.segs[n] = g
			}
		}
		segs = append(segs, g)
		if !g.sealed {
			break // the head; later ones are prepared ahead, empty
		}
	}
	if len(segs) == 0 {
		s.Err = newError("inspect", dir, -1, fmt.Errorf("%w: queue has no segments", ErrCorrupt))
		return s
	}
	for n := range st.segs { // forget sealed segments removed and no longer needed for counting
		if n < segs[0].num && n < st.walked.seg && n < st.end.seg {
			delete(st.segs, n)
		}
	}
	head := segs[len(segs)-1]
	src := storeSrc{path: q.segPath, segs: segs}
	s.Segments, s.HeadSegment = len(segs), head.num
	s.End = QueueCursor(head.num, head.committed)
	s.Capacity = head.fileSize - head.dataOffset
	if s.Capacity > 0 {
		s.Fill = float64(head.committed) / float64(s.Capacity)
	}
	s.Sealed, s.Wide = head.sealed, head.lenSize == 4
	for _, g := range segs {
		s.Committed += g.committed
	}
	s.Sleepers, s.Waiters = head.sleepers, head.waiters
	s.LockKnown = locks != nil
	var lst unix.Stat_t
	if unix.Stat(filepath.Join(dir, lockFile), &lst) == nil {
		s.WriterLocked, s.WriterLockPID = locks.holder(uint64(lst.Dev), uint64(lst.Ino))
	}
	in.writer(&s, head, q.segPath(head.num))
	in.advance(&s, st, src, pos{head.num, head.committed}, now)
	s.Readers = in.queueReaders(dir, src, st, locks, now)
	return s
}

func (in *Inspector) queueReaders(dir string, src storeSrc, st *storeState, locks lockTable, now time.Time) []ReaderSnapshot {
	ents, err := os.ReadDir(filepath.Join(dir, readersDir))
	if err != nil {
		return nil
	}
	head := src.segs[len(src.segs)-1]
	end := pos{head.num, head.committed}
	var out []ReaderSnapshot
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), readerSuffix)
		if !ok || validReaderName(name) != nil {
			continue
		}
		r := ReaderSnapshot{Name: name}
		var created time.Time
		var dev, ino uint64
		r.Cursor, r.CaughtUp, created, dev, ino, r.Err = readReaderFile(readerPath(dir, name))
		if r.Err != nil {
			out = append(out, r)
			continue
		}
		r.Active, r.PID = locks.holder(dev, ino)
		p := pos{r.Cursor >> cursorOffBits, r.Cursor & cursorOffMask}
		if r.Cursor == 0 {
			p = src.origin()
		}
		switch {
		case p.seg < src.segs[0].num:
			r.Err = errorf("inspect", dir, -1, ErrCursor, "reader %q: cursor %d is in segment %d, removed by retention", name, r.Cursor, p.seg)
		case end.less(p):
			r.Err = errorf("inspect", dir, -1, ErrCursor, "reader %q: cursor %d is beyond the committed end %d", name, r.Cursor, QueueCursor(end.seg, end.off))
		default:
			r.LagBytes = src.bytesBetween(p, end, st.segs)
			fr, by, _, skipped := src.walk(p, end, in.opts.MaxWalk, st.meanFrame(), in.buf, st.segs)
			r.LagFrames = fr
			if rest := r.LagBytes - by; rest > 0 && st.meanFrame() > 0 {
				r.LagFrames += int64(float64(rest) / st.meanFrame())
			}
			r.LagExact = by == r.LagBytes && !skipped
		}
		if r.LagBytes > 0 {
			since := r.CaughtUp
			if since.IsZero() {
				since = created
			}
			if !since.IsZero() {
				r.Lag = max(now.Sub(since), 0)
			}
		}
		out = append(out, r)
	}
	return out
}

// readReaderFile maps a named reader's file read-only and loads its cursor atomically.
func readReaderFile(path string) (cursor int64, caughtUp, created time.Time, dev, ino uint64, err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, caughtUp, created, 0, 0, newError("inspect", path, -1, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size < rdSize {
		return 0, caughtUp, created, 0, 0, errorf("inspect", path, -1, ErrBadHeader, "not a reader file")
	}
	mem, err := mmap.Map(fd, rdSize, false, false)
	if err != nil {
		return 0, caughtUp, created, 0, 0, newError("inspect", path, -1, err)
	}
	defer mmap.Unmap(mem)
	defer recoverFault(debug.SetPanicOnFault(true), "inspect", path, -1, &err)
	if [8]byte(mem[:8]) != readerMagic {
		return 0, caughtUp, created, 0, 0, errorf("inspect", path, 0, ErrBadHeader, "not a reader file")
	}
	if t := int64(u64at(mem, rdOffCaughtUp).Load()); t != 0 {
		caughtUp = time.Unix(0, t)
	}
	if t := int64(le.Uint64(mem[rdOffCreated:])); t != 0 {
		created = time.Unix(0, t)
	}
	return int64(u64at(mem, rdOffCursor).Load()), caughtUp, created, uint64(st.Dev), uint64(st.Ino), nil
}
