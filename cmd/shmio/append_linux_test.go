package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
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

// TestAppendQueueRollFailure: a queue that cannot roll (here the file size limit stands in for a
// full file system) is reported with the cause, not as "log is full".
func TestAppendQueueRollFailure(t *testing.T) {
	dir := createQueue(t, "64KiB")
	script := "trap '' XFSZ; ulimit -f 64; exec " + shmioBin + " append " + dir
	r := runSh(t, script, withStdin(strings.Repeat("0123456789\n", 10000)))
	if r.code != 2 || strings.Contains(r.stderr, "log is full") || !strings.Contains(r.stderr, "could not be appended: cannot make segment 2: ") ||
		!strings.Contains(r.stderr, "file too large") {
		t.Fatalf("append past a failed roll: %+v", r)
	}
}

// runSh runs a shell script (for its ulimit) and returns the result like runShmio.
func runSh(t testing.TB, script string, opts ...runOpt) result {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	for _, o := range opts {
		o(cmd)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}
