package mmap

import "golang.org/x/sys/unix"

func populateFlag(populate bool) int {
	if populate {
		return unix.MAP_POPULATE
	}
	return 0
}

// prefault completes MAP_POPULATE, which faults pages in for reading only: on a writable mapping
// it also pre-faults them for writing (Linux 5.14+), so that on disk-backed files the first store
// to each page does not take a write-protect fault. Older kernels refuse: the read population is
// then all we get, which is all tmpfs needs.
func prefault(b []byte, writable bool) {
	if writable {
		populateWriteAdvice(b)
	}
}

// populateWriteAdvice asks the kernel to populate b for writing; false when it cannot.
func populateWriteAdvice(b []byte) bool { return unix.Madvise(b, unix.MADV_POPULATE_WRITE) == nil }
