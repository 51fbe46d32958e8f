//go:build !linux

package mmap

import "golang.org/x/sys/unix"

func populateFlag(bool) int { return 0 }

// populateWrite touches one byte per page without changing it: other systems have no
// MAP_POPULATE, so this is how the mapping is faulted in up front.
func populateWrite(b []byte) {
	_ = unix.Madvise(b, unix.MADV_WILLNEED)
	page := unix.Getpagesize()
	var sink byte
	for i := 0; i < len(b); i += page {
		sink ^= b[i]
	}
	_ = sink
}
