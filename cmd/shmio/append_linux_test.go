package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAppendInterrupt: Ctrl-C while append waits for input commits everything read so far and
// exits with 130; what the summary counts is exactly what readers see.
func TestAppendInterrupt(t *testing.T) {
	path := createLog(t, "1MiB")
	w, in := startAppend(t, path, "--flush", "1h")
	writeInput(t, in, "x\n")
	waitFor(t, 10*time.Second, `"x" to be committed`, func() bool { return tailAll(t, path, "text") == "x\n" })
	// With the timer out of the way, "y" and "z" stay uncommitted while append waits for the
	// end of the unfinished last line.
	writeInput(t, in, "y\nz\nunfinished")
	waitFor(t, 10*time.Second, "append to read its input", func() bool {
		n, err := unix.IoctlGetInt(int(in.Fd()), unix.TIOCINQ)
		return err == nil && n == 0
	})
	w.signal(t, syscall.SIGINT)
	if code := w.wait(t, 10*time.Second); code != 130 {
		t.Fatalf("append exit %d after SIGINT, want 130; stderr %q", code, w.stderr.String())
	}
	var n int
	stderr := w.stderr.String()
	if _, err := fmt.Sscanf(stderr, "shmio: appended %d frame", &n); err != nil || n < 1 || n > 3 {
		t.Fatalf("summary %q", stderr)
	}
	wantLines(t, tailAll(t, path, "text"), []string{"x", "y", "z"}[:n]...)
	if s := statJSON(t, path); s.WriterLockHeld || s.LastWriterPID != 0 {
		t.Fatalf("after append was interrupted: %+v", s)
	}
}
