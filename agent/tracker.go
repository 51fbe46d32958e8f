package agent

import "sync"

// tracker records the prompts read but not yet covered by a committed outcome, in input order, so
// the checkpoint (the watermark) never passes a prompt without an outcome even when requests
// finish out of order.
type tracker struct {
	mu      sync.Mutex
	ring    []entry
	base    uint64 // seq of the oldest pending entry
	next    uint64 // seq the next add gets
	open    int64  // entries not done
	readEnd int64  // input cursor after the last frame read
	// recovered maps input cursors at or past the resume point to the response-log position of an
	// outcome a previous run already committed for them: those prompts are skipped.
	recovered map[int64]int64
	space     chan struct{} // poked when entries are retired
}

type entry struct {
	cursor int64
	outPos int64 // response-log position at or before the entry's outcome; -1 unknown
	done   bool
}

func newTracker(capacity int, start int64) *tracker {
	return &tracker{ring: make([]entry, capacity), readEnd: start, space: make(chan struct{}, 1)}
}

func (t *tracker) free() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ring) - int(t.next-t.base)
}

// pending counts prompts read whose outcome is not committed.
func (t *tracker) pending() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open
}

// window counts entries from the watermark on (pending or done out of order).
func (t *tracker) window() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int64(t.next - t.base)
}

// add registers a prompt read at cursor; the caller made sure there is room (free() > 0).
func (t *tracker) add(cursor int64) uint64 {
	t.mu.Lock()
	seq := t.next
	t.ring[seq%uint64(len(t.ring))] = entry{cursor: cursor, outPos: -1}
	t.next++
	t.open++
	t.mu.Unlock()
	return seq
}

// skipRecovered reports whether a previous run already wrote the outcome for the prompt at
// cursor; if so it is recorded as done right away.
func (t *tracker) skipRecovered(cursor int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	pos, ok := t.recovered[cursor]
	if !ok {
		return false
	}
	delete(t.recovered, cursor)
	seq := t.next
	t.ring[seq%uint64(len(t.ring))] = entry{cursor: cursor, outPos: pos, done: true}
	t.next++
	t.retireLocked()
	return true
}

func (t *tracker) setRecovered(m map[int64]int64) {
	t.mu.Lock()
	t.recovered = m
	t.mu.Unlock()
}

func (t *tracker) setReadEnd(c int64) {
	t.mu.Lock()
	t.readEnd = c
	t.mu.Unlock()
}

// done marks prompts whose outcome is committed at or after response-log position outPos.
func (t *tracker) done(seqs []uint64, outPos int64) {
	t.mu.Lock()
	for _, s := range seqs {
		e := &t.ring[s%uint64(len(t.ring))]
		if !e.done {
			t.open--
		}
		e.done, e.outPos = true, outPos
	}
	t.retireLocked()
	t.mu.Unlock()
}

func (t *tracker) retireLocked() {
	n := len(t.ring)
	before := t.base
	for t.base < t.next && t.ring[t.base%uint64(n)].done {
		t.base++
	}
	if t.base != before {
		select {
		case t.space <- struct{}{}:
		default:
		}
	}
}

// watermark is the input cursor below which every prompt has a committed outcome.
func (t *tracker) watermark() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.watermarkLocked()
}

func (t *tracker) watermarkLocked() int64 {
	if t.base < t.next {
		return t.ring[t.base%uint64(len(t.ring))].cursor
	}
	return t.readEnd
}

// checkpoint returns the watermark and the response-log position from which a restart must scan
// to find every outcome already written for prompts at or past the watermark. outEnd is the
// response log's committed end (-1 when positions are unknown).
func (t *tracker) checkpoint(outEnd int64) (cursor, outPos int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cursor, outPos = t.watermarkLocked(), outEnd
	if outEnd < 0 {
		return cursor, -1
	}
	n := uint64(len(t.ring))
	for s := t.base; s < t.next; s++ {
		if e := t.ring[s%n]; e.done && e.outPos >= 0 && e.outPos < outPos {
			outPos = e.outPos
		}
	}
	for _, p := range t.recovered {
		if p < outPos {
			outPos = p
		}
	}
	return cursor, outPos
}
