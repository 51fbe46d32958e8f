package shmio

import (
	"os"
	"slices"
	"time"
)

// Segments prepared ahead of the writer, and the background goroutine that makes them, retires
// sealed ones and applies retention, so that a roll finds its next segment ready.

// prepFuture is a segment being prepared ahead by a goroutine of its own: preparing is mostly
// the kernel providing fresh zeroed memory (about 1 ms per MiB here), so several run at once
// on machines with cores to spare.
type prepFuture struct {
	num  int64
	done chan struct{}
	seg  *wseg
	err  error
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
	l.word64(offSegNum).Store(uint64(num))
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

func (w *QueueWriter) runFuture(f *prepFuture) {
	defer close(f.done)
	f.seg, f.err = w.prepare(f.num)
	testHook("prepared")
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
