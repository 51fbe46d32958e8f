package shmio

// Tests of issue 11 (hardening), log side. Each test is named after the behaviour it proves.

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenErrorNamesPathOnce: an OS error names the path once, not "open X: open X: ...".
func TestOpenErrorNamesPathOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	for _, writable := range []bool{false, true} {
		_, err := Open(Options{Path: path + "/sub", Writable: writable, Capacity: 4096})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open(writable=%v): %v, want fs.ErrNotExist", writable, err)
		}
		if n := strings.Count(err.Error(), path); n != 1 {
			t.Errorf("Open(writable=%v): %q names the path %d times, want once", writable, err, n)
		}
	}
}

// TestOpenNonRegularFileNamesItsKind: a non-regular file is refused with ErrBadHeader and a
// message that says what it is, a directory included.
func TestOpenNonRegularFileNamesItsKind(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{sub: "a directory", fifo: "a named pipe"}
	if os.Geteuid() == 0 {
		dev := filepath.Join(dir, "null")
		if err := unix.Mknod(dev, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err == nil {
			cases[dev] = "a character device"
		}
	}
	for path, kind := range cases {
		for _, writable := range []bool{false, true} {
			_, err := Open(Options{Path: path, Writable: writable, Capacity: 4096})
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("Open(%s, writable=%v): %v, want ErrBadHeader", kind, writable, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, kind) || strings.Contains(msg, "---") || strings.Count(msg, path) != 1 {
				t.Errorf("Open(%s, writable=%v): message %q should say %q once with the path, no mode string", kind, writable, msg, kind)
			}
		}
	}
}
