package mmap

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sink receives the sum of the bytes touch reads: a store the compiler must keep, so it keeps
// the loads (a sum left in a local is dead code, and the loads go with it).
var sink atomic.Uint32

// touch faults in every page of b by reading one byte of each, without changing anything:
// safe on a live mapping that other processes write.
func touch(b []byte) {
	page := unix.Getpagesize()
	var sum byte
	for i := 0; i < len(b); i += page {
		sum += b[i]
	}
	sink.Add(uint32(sum))
}

// PrefaultZeroed populates a writable mapping whose bytes from `from` on are all zero and not
// yet seen by anyone else (a file being prepared), so that no later store to it takes a page
// fault: with MADV_POPULATE_WRITE where the kernel has it (Linux 5.14+, about half the cost),
// else by storing a zero into each page.
func PrefaultZeroed(b []byte, from int) {
	if populateWriteAdvice(b) {
		return
	}
	page := unix.Getpagesize()
	for off := from; off < len(b); off += page - off%page {
		b[off] = 0
	}
}
