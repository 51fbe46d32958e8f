package mmap

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of b in memory (mincore).
func resident(t *testing.T, b []byte) int {
	t.Helper()
	vec := make([]byte, (len(b)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// mapHole maps a fresh sparse tmpfs file of pages pages, without populating it.
func mapHole(t *testing.T, pages int, writable bool) []byte {
	t.Helper()
	dir := "/dev/shm"
	if _, err := os.Stat(dir); err != nil {
		dir = t.TempDir()
	}
	f, err := os.CreateTemp(dir, "shmio-mmap-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()); f.Close() })
	if err := f.Truncate(int64(pages * os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	b, err := Map(int(f.Fd()), pages*os.Getpagesize(), writable, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unmap(b) })
	return b
}

// TestTouchFaultsEveryPage: touch, the prefault of systems without MAP_POPULATE (darwin), really
// reads each page (its loads are not optimised away): afterwards every page is resident.
func TestTouchFaultsEveryPage(t *testing.T) {
	const pages = 64
	b := mapHole(t, pages, false)
	if n := resident(t, b); n != 0 {
		t.Skipf("%d pages resident before touching: cannot tell", n)
	}
	touch(b)
	if n := resident(t, b); n != pages {
		t.Fatalf("%d of %d pages resident after touch", n, pages)
	}
}

// TestPrefaultZeroed: every page past the header is resident afterwards and the bytes are still
// zero; the header's bytes are untouched.
func TestPrefaultZeroed(t *testing.T) {
	const pages = 32
	b := mapHole(t, pages, true)
	copy(b, "header")
	PrefaultZeroed(b, 192)
	if n := resident(t, b); n != pages {
		t.Fatalf("%d of %d pages resident after PrefaultZeroed", n, pages)
	}
	if string(b[:6]) != "header" {
		t.Fatalf("header changed: %q", b[:6])
	}
	for i := 192; i < len(b); i++ {
		if b[i] != 0 {
			t.Fatalf("byte %d is %d, want 0", i, b[i])
		}
	}
}
