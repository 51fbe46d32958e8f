//go:build !linux

package mmap

import "golang.org/x/sys/unix"

func populateFlag(bool) int { return 0 }

// prefault faults the mapping in by reading a byte of each page: other systems have no
// MAP_POPULATE. Reading never changes a byte, so it is safe on a live log; on a writable mapping
// a page's first store may still take a (cheaper) write fault.
func prefault(b []byte, _ bool) {
	_ = unix.Madvise(b, unix.MADV_WILLNEED)
	touch(b)
}

func populateWriteAdvice([]byte) bool { return false }
