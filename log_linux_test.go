package shmio

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A full filesystem fails at Open (fallocate), not with SIGBUS on a later write.
func TestOpenNoSpace(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	defer unix.Unmount(dir, 0)
	path := filepath.Join(dir, "log")
	_, err := Open(Options{Path: path, Capacity: 4 << 20, Writable: true})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("4 MiB log on a 1 MiB tmpfs: %v, want an error wrapping ENOSPC", err)
	}
	if !strings.Contains(err.Error(), "log") {
		t.Errorf("error %q does not name the file", err)
	}
	if names := utDirNames(t, dir); len(names) != 0 {
		t.Fatalf("failed create left %q", names)
	}
	// The same filesystem takes a log that fits.
	l, err := Open(Options{Path: path, Capacity: 512 << 10, Writable: true})
	if err != nil {
		t.Fatalf("512 KiB log on a 1 MiB tmpfs: %v", err)
	}
	w := utWriter(t, l)
	utAppend(t, w, 0, 1000)
	l.Close()
}
