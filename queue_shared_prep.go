package shmio

import (
	"crypto/rand"
	"errors"
	"time"

	"github.com/shmio/shmio/internal/fallocate"
	"golang.org/x/sys/unix"
)

// A spare segment for shared writers' rolls: an unnamed file (O_TMPFILE) that a background
// goroutine of the process makes full size, with its header, mapped and prefaulted, so that the
// roll (under the head's lock) only stamps it and links it into place as the next segment. Being
// unnamed, it cannot be seen before the roll links it, and the kernel frees it if the process
// dies; a segment that exists already wins (the link fails and the spare waits for a later
// roll). Each process with shared writers keeps at most one. Where unnamed files cannot be made
// or linked, rolls create the segment themselves (as Open creates a log).

// kickSpare starts making the spare if there is none and none is being made.
func (qs *queueShared) kickSpare() {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.spare != nil || qs.making || qs.noSpare || qs.closing {
		return
	}
	qs.making = true
	qs.bg.Add(1)
	go func() {
		defer qs.bg.Done()
		l := qs.q.makeSpare()
		qs.mu.Lock()
		defer qs.mu.Unlock()
		qs.making = false
		switch {
		case l == nil:
			qs.noSpare = true
		case qs.closing:
			l.Close()
		default:
			qs.spare = l
		}
	}()
}

// makeSpare makes an unnamed segment file, or returns nil where that cannot be done.
func (q *Queue) makeSpare() *Log {
	mode := permOr600(q.opts.Mode)
	f, err := openTmpfile(q.dir, mode)
	if f == nil || err != nil {
		return nil
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
		return nil
	}
	l, err := mapLog(f, Options{Path: q.dir, Writable: true, DebugChecks: q.debug})
	if err != nil {
		f.Close()
		return nil
	}
	l.private = true
	prefaultSegment(l.mem)
	return l
}

// takeSpare links the spare into place as segment num and returns it, or nil (no spare, or
// segment num exists already: the spare is kept). qs.mu is held.
func (qs *queueShared) takeSpare(num int64) *Log {
	l := qs.spare
	if l == nil {
		return nil
	}
	path := qs.q.segPath(num)
	l.word64(offSegNum).Store(uint64(num)) // before the name: nobody sees it unstamped
	unsupported, err := linkTmpfile(l.file, path)
	switch {
	case err == nil:
		qs.spare = nil
		l.path = path
		return l
	case errors.Is(err, unix.EEXIST):
		l.word64(offSegNum).Store(0)
	default:
		qs.spare = nil
		qs.noSpare = unsupported
		l.Close()
	}
	return nil
}
