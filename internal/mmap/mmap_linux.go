package mmap

import "golang.org/x/sys/unix"

func populateFlag(populate bool) int {
	if populate {
		return unix.MAP_POPULATE
	}
	return 0
}

// populateWrite pre-faults the pages for writing (Linux 5.14+), so that on disk-backed files the
// first store to each page does not take a write-protect fault. Older kernels return EINVAL: the
// read population done by MAP_POPULATE is then all we get, which is all tmpfs needs.
func populateWrite(b []byte) {
	_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}
