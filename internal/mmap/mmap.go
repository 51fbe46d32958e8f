// Package mmap maps files into memory for the shmio log. It is thin glue over golang.org/x/sys/unix.
package mmap

import (
	"golang.org/x/sys/unix"
)

// Map maps length bytes of fd from offset 0 as a shared mapping. writable adds PROT_WRITE;
// populate asks the kernel to fault the whole range in now, so the first touch of a page
// does not stall on a page fault later.
func Map(fd int, length int, writable, populate bool) ([]byte, error) {
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	b, err := unix.Mmap(fd, 0, length, prot, unix.MAP_SHARED|populateFlag(populate))
	if err != nil {
		return nil, err
	}
	if populate {
		prefault(b, writable)
	}
	return b, nil
}

// Unmap releases a mapping made by Map.
func Unmap(b []byte) error { return unix.Munmap(b) }

// Sync flushes the mapping to its file and waits for the write (msync MS_SYNC).
func Sync(b []byte) error { return unix.Msync(b, unix.MS_SYNC) }
