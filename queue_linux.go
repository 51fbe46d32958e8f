package shmio

import (
	"os"

	"golang.org/x/sys/unix"
)

// prefaultSegment populates a prepared segment's writable mapping. MADV_POPULATE_WRITE alone
// (Linux 5.14+) costs about half of MAP_POPULATE plus it on tmpfs; older kernels refuse it, and
// then a store to each page does the same (the segment is not published yet and is all zeros).
func prefaultSegment(b []byte) {
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) == nil {
		return
	}
	page := unix.Getpagesize()
	for off := goHeaderSize; off < len(b); off += page - off%page {
		b[off] = 0
	}
}

// Segment recycling is guarded by open-file-description locks on byte 0 of a segment, which on
// Linux are independent of the flock that guards a segment's writer: every reader holds a
// shared one while it maps the segment, and retention recycles a segment (instead of removing
// it) only if it gets an exclusive one, that is, if nobody maps it.
const segRecycling = true

func ofdLock(f *os.File, typ int16) bool {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 1}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			return err == nil
		}
	}
}

// segReadLock takes a reader's shared lock; false means a recycler holds the segment.
func segReadLock(f *os.File) bool { return ofdLock(f, unix.F_RDLCK) }

// segTryWriteLock takes the recycler's exclusive lock; false means someone maps the segment.
func segTryWriteLock(f *os.File) bool { return ofdLock(f, unix.F_WRLCK) }

func segUnlock(f *os.File) { ofdLock(f, unix.F_UNLCK) }
