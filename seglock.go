package shmio

import (
	"os"

	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/mmap"
)

// prefaultSegment populates a prepared segment's writable mapping (not published yet, all zeros
// past its header).
func prefaultSegment(b []byte) { mmap.PrefaultZeroed(b, goHeaderSize) }

// Segment recycling is guarded by open-file-description locks on byte 0 of a segment
// (internal/flock; FORMAT.md, "Recycling"): every reader holds a shared one while it maps the
// segment, and retention recycles a segment (instead of removing it) only if it gets an
// exclusive one, that is, if nobody maps it. Without such locks segments are removed instead.
const segRecycling = flock.OFDSupported

// segReadLock takes a reader's shared lock; false means a recycler holds the segment.
func segReadLock(f *os.File) bool { return flock.ShareOFD(f.Fd()) }

// segTryWriteLock takes the recycler's exclusive lock; false means someone maps the segment.
func segTryWriteLock(f *os.File) bool { return flock.TryExclusiveOFD(f.Fd()) }

func segUnlock(f *os.File) { flock.UnlockOFD(f.Fd()) }
