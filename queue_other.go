//go:build !linux

package shmio

import (
	"os"

	"golang.org/x/sys/unix"
)

// prefaultSegment populates a prepared segment's writable mapping by storing to each page (the
// segment is not published yet and is all zeros past its header).
func prefaultSegment(b []byte) {
	page := unix.Getpagesize()
	for off := goHeaderSize; off < len(b); off += page - off%page {
		b[off] = 0
	}
}

// Without open-file-description locks a writer cannot know whether a reader maps an old
// segment, so segments are removed, never recycled.
const segRecycling = false

func segReadLock(*os.File) bool     { return true }
func segTryWriteLock(*os.File) bool { return false }
func segUnlock(*os.File)            {}
