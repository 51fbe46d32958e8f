package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/shmio/shmio"
)

// memLog is an in-memory stand-in for a shmio log: cursors advance by payload+4 as in u16 frames.
// It serves as Source (through memIter), Sink and TagReader so the protocol can be tested without
// files, and so a future frame store with the same interfaces is known to plug in.
type memLog struct {
	mu      sync.Mutex
	frames  [][]byte
	starts  []int64
	end     int64 // committed end
	pending [][]byte
	tag     uint64
	tagOK   bool
	notify  chan struct{} // closed and replaced on every commit
}

func newMemLog() *memLog { return &memLog{notify: make(chan struct{})} }

func (l *memLog) Allocate(n int) ([]byte, error) {
	if n <= 0 {
		return nil, errors.New("memlog: empty frame")
	}
	b := make([]byte, n)
	l.mu.Lock()
	l.pending = append(l.pending, b)
	l.mu.Unlock()
	return b, nil
}

func (l *memLog) commit(tag uint64, tagged bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.pending {
		l.frames = append(l.frames, b)
		l.starts = append(l.starts, l.end)
		l.end += int64(len(b)) + 4
	}
	l.pending = l.pending[:0]
	if tagged {
		l.tag, l.tagOK = tag, true
	}
	close(l.notify)
	l.notify = make(chan struct{})
	return nil
}

func (l *memLog) Commit() error                 { return l.commit(0, false) }
func (l *memLog) CommitTagged(tag uint64) error { return l.commit(tag, true) }
func (l *memLog) CommitTag() (uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tag, l.tagOK, nil
}
func (l *memLog) append(p []byte) error { b, _ := l.Allocate(len(p)); copy(b, p); return nil }
func (l *memLog) snapshot() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.frames...)
}
func (l *memLog) iter() *memIter { return &memIter{l: l} }

// memIter is a Source over a memLog.
type memIter struct {
	l   *memLog
	idx int // index of the next frame
}

func (it *memIter) NextBatch(dst [][]byte, o shmio.BatchOptions) ([][]byte, error) {
	max := o.MaxFrames
	if max <= 0 {
		max = 64
	}
	it.l.mu.Lock()
	defer it.l.mu.Unlock()
	for n := 0; n < max && it.idx < len(it.l.frames); n++ {
		dst = append(dst, it.l.frames[it.idx])
		it.idx++
	}
	return dst, nil
}

func (it *memIter) Cursor() int64 {
	it.l.mu.Lock()
	defer it.l.mu.Unlock()
	if it.idx < len(it.l.starts) {
		return it.l.starts[it.idx]
	}
	return it.l.end
}

func (it *memIter) End() int64 { it.l.mu.Lock(); defer it.l.mu.Unlock(); return it.l.end }

func (it *memIter) Seek(off int64, whence int) (int64, error) {
	it.l.mu.Lock()
	defer it.l.mu.Unlock()
	if whence != io.SeekStart {
		return 0, errors.New("memlog: only SeekStart")
	}
	if off == it.l.end {
		it.idx = len(it.l.frames)
		return off, nil
	}
	for i, s := range it.l.starts {
		if s == off {
			it.idx = i
			return off, nil
		}
	}
	return 0, fmt.Errorf("memlog: %d is not a frame start", off)
}

func (it *memIter) Wait(ctx context.Context) error {
	it.l.mu.Lock()
	if it.idx < len(it.l.frames) {
		it.l.mu.Unlock()
		return nil
	}
	ch := it.l.notify
	it.l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
