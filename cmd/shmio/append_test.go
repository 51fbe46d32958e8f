package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

func itoa(n int) string { return strconv.Itoa(n) }

// startAppend starts "shmio append PATH args..." reading from a pipe the test writes with
// writeInput; closing the returned file ends the input.
func startAppend(t testing.TB, path string, args ...string) (*proc, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startShmio(t, append([]string{"append", path}, args...), withStdinReader(r))
	r.Close() // the child has its own copy
	t.Cleanup(func() { w.Close() })
	return p, w
}

func writeInput(t testing.TB, w *os.File, s string) {
	t.Helper()
	if _, err := w.WriteString(s); err != nil {
		t.Fatalf("writing to append's input: %v", err)
	}
}

// tailAll prints every committed frame in the given format.
func tailAll(t testing.TB, path string, format string) string {
	t.Helper()
	return mustRun(t, []string{"tail", path, "--from", "start", "--format", format})
}

func TestAppendLines(t *testing.T) {
	path := createLog(t, "1MiB")
	// Empty lines are skipped with a count; a last line without a newline still counts; a
	// carriage return is payload like any other byte.
	r := runShmio(t, []string{"append", path}, withStdin("one\n\ntwo words\r\n\n\nthree"))
	if r.code != 0 || r.stdout != "" ||
		r.stderr != "shmio: skipped 3 empty lines (shmio frames cannot be empty)\nshmio: appended 3 frames (18 payload bytes) to "+path+"\n" {
		t.Fatalf("append: %+v", r)
	}
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "start", "--raw"}), "one", "two words\r", "three")

	// Appending again continues after the existing frames; -q silences the summary.
	r = runShmio(t, []string{"append", "-q", path}, withStdin("four\n"))
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("append -q: %+v", r)
	}
	wantLines(t, tailAll(t, path, "text"), "one", "two words^M", "three", "four")

	// No input at all is not an error.
	r = runShmio(t, []string{"append", path}, withStdin(""))
	if r.code != 0 || r.stderr != "shmio: appended 0 frames (0 payload bytes) to "+path+"\n" {
		t.Fatalf("append of nothing: %+v", r)
	}
}

// rawRecords encodes payloads in --raw input format: u32 little-endian length, then the bytes.
func rawRecords(payloads ...[]byte) []byte {
	var b []byte
	for _, p := range payloads {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func TestAppendRawFromFile(t *testing.T) {
	path := createLog(t, "1MiB")
	payloads := [][]byte{
		{0, 1, 2, 0xff, '\n'},
		{},
		[]byte("line\nbreaks\ninside"),
		bytes.Repeat([]byte{0xab}, 65531),
	}
	input := filepath.Join(t.TempDir(), "records.bin")
	if err := os.WriteFile(input, rawRecords(payloads...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runShmio(t, []string{"append", path, "--raw", "--file", input})
	if r.code != 0 || r.stderr != "shmio: skipped 1 empty record (shmio frames cannot be empty)\nshmio: appended 3 frames (65554 payload bytes) to "+path+"\n" {
		t.Fatalf("append --raw: %+v", r)
	}
	var want []string
	for _, p := range payloads {
		if len(p) > 0 {
			want = append(want, base64.StdEncoding.EncodeToString(p))
		}
	}
	wantLines(t, tailAll(t, path, "base64"), want...)
}

func TestAppendErrors(t *testing.T) {
	long := strings.Repeat("x", 65532)
	tests := []struct {
		name       string
		capacity   string
		args       []string
		stdin      string
		stderr     string // after "shmio: " and the path
		wantFrames []string
	}{
		{"line too long", "1MiB", nil, "ok\n" + long + "\nnot reached\n",
			"standard input: line 2 is 65532 bytes, longer than 65531 bytes, the largest frame payload of this log (a --wide log holds more); the frame before it was committed", []string{"ok"}},
		{"log full", "300", nil, strings.Repeat("0123456789\n", 10),
			"{path}: log is full: line 8 (10 bytes) of standard input does not fit; the 7 frames before it were committed",
			strings.Split(strings.Repeat("0123456789\n", 7), "\n")[:7]},
		{"raw truncated length", "1MiB", []string{"--raw"}, string(rawRecords([]byte("abc"))) + "\x05\x00",
			"standard input: record 2 at byte 7: input ends inside its 4-byte length (2 bytes); the frame before it was committed", []string{"abc"}},
		{"raw truncated payload", "1MiB", []string{"--raw"}, string(rawRecords([]byte("abc"))) + "\x05\x00\x00\x00ab",
			"standard input: record 2 at byte 7: input ends after 2 of its 5 bytes; the frame before it was committed", []string{"abc"}},
		{"raw too long", "1MiB", []string{"--raw"}, "\xff\xff\x00\x00",
			"standard input: record 1 at byte 0 has length 65535, more than 65531 bytes, the largest frame payload of this log; nothing was committed", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := createLog(t, tc.capacity)
			r := runShmio(t, append([]string{"append", path}, tc.args...), withStdin(tc.stdin))
			want := "shmio: " + strings.ReplaceAll(tc.stderr, "{path}", path) + "\n"
			if r.code != 2 || r.stderr != want {
				t.Fatalf("exit %d stderr %q, want exit 2 and %q", r.code, r.stderr, want)
			}
			wantLines(t, tailAll(t, path, "text"), tc.wantFrames...)
		})
	}

	// A missing --file, a missing log (never created by append), a directory.
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.log")
	r := runShmio(t, []string{"append", missing}, withStdin("x\n"))
	if r.code != 2 || r.stderr != "shmio: "+missing+": no such file (create one with: shmio create "+missing+" --capacity 64MiB)\n" {
		t.Fatalf("append to a missing log: %+v", r)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("append created the missing log")
	}
	path := createLog(t, "64KiB")
	r = runShmio(t, []string{"append", path, "--file", filepath.Join(dir, "nope")})
	if r.code != 2 || r.stderr != "shmio: --file "+filepath.Join(dir, "nope")+": no such file or directory\n" {
		t.Fatalf("append --file missing: %+v", r)
	}
	r = runShmio(t, []string{"append", path, "--flush", "0s"})
	if r.code != 2 || r.stderr != "shmio: --flush must be positive (for example 10ms)\n" {
		t.Fatalf("append --flush 0: %+v", r)
	}

	// Readable but not writable: as nobody, a 0644 log owned by root.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	makeReachable(t, filepath.Dir(path))
	r = runShmio(t, []string{"append", path}, withStdin("x\n"), asNobody())
	if r.code != 2 || r.stderr != "shmio: "+path+": permission denied (need read and write access)\n" {
		t.Fatalf("append without write permission: %+v", r)
	}
}

func TestAppendWideLongLine(t *testing.T) {
	path := createLog(t, "1MiB", "--wide")
	long := strings.Repeat("y", 300_000) // longer than append's read buffer, too
	r := runShmio(t, []string{"append", path}, withStdin("short\n"+long+"\n"))
	if r.code != 0 {
		t.Fatalf("append to a wide log: %+v", r)
	}
	wantLines(t, tailAll(t, path, "text"), "short", long)
}

func TestAppendOneWriterOnly(t *testing.T) {
	path := createLog(t, "1MiB")
	w, in := startAppend(t, path)
	writeInput(t, in, "held\n")
	waitFor(t, 10*time.Second, "the first writer to commit", func() bool { return tailAll(t, path, "text") == "held\n" })

	r := runShmio(t, []string{"append", path}, withStdin("second writer\n"))
	want := "shmio: " + path + ": another writer (pid " + itoa(w.cmd.Process.Pid) + ") holds the log; only one writer may append at a time\n"
	if r.code != 2 || r.stderr != want {
		t.Fatalf("second writer: exit %d stderr %q, want %q", r.code, r.stderr, want)
	}
	in.Close()
	if code := w.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("first writer exit %d: %s", code, w.stderr.String())
	}
}

// TestAppendCommitsPromptly: lines become visible while append is still reading, both when the
// input pauses after a line and when append is blocked in the middle of an unfinished line (the
// --flush timer's job).
func TestAppendCommitsPromptly(t *testing.T) {
	path := createLog(t, "1MiB")
	w, in := startAppend(t, path, "--flush", "5ms")
	writeInput(t, in, "a\n")
	waitFor(t, 10*time.Second, `"a" to be committed`, func() bool { return tailAll(t, path, "text") == "a\n" })
	// "b" and "c" arrive in one read together with the start of "d": append blocks reading the
	// rest of "d" with "b" and "c" uncommitted until the timer commits them.
	writeInput(t, in, "b\nc\nd")
	waitFor(t, 10*time.Second, `"b" and "c" to be committed`, func() bool { return tailAll(t, path, "text") == "a\nb\nc\n" })
	writeInput(t, in, "\n")
	in.Close()
	if code := w.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("append exit %d: %s", code, w.stderr.String())
	}
	wantLines(t, tailAll(t, path, "text"), "a", "b", "c", "d")
}

// TestAppendTruncatedLog: a log truncated under append ends it with one line naming the
// truncation and a non-zero exit, not a SIGBUS goroutine dump.
func TestAppendTruncatedLog(t *testing.T) {
	path := createLog(t, "1MiB")
	w, in := startAppend(t, path)
	writeInput(t, in, "before\n")
	waitFor(t, 10*time.Second, "the first line to be committed", func() bool { return tailAll(t, path, "text") == "before\n" })
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	writeInput(t, in, "after\n")
	in.Close()
	code := w.wait(t, 10*time.Second)
	want := "shmio: " + path + ": line 2 of standard input: the file was truncated while mapped here (recreated or cut by another program?); the frame before it was committed\n"
	if code != 2 || w.stderr.String() != want {
		t.Fatalf("append on a truncated log: exit %d stderr %q, want 2 and %q", code, w.stderr.String(), want)
	}
}

// TestRootCauseNamesTruncation: a reader's fault on a truncated file is worded as a truncation,
// not as the runtime's "invalid memory address or nil pointer dereference".
func TestRootCauseNamesTruncation(t *testing.T) {
	err := fmt.Errorf("shmio: next /dev/shm/x: %w: invalid memory address or nil pointer dereference", shmio.ErrMappingGone)
	if got := rootCause(err); strings.Contains(got, "invalid memory address") || !strings.Contains(got, "truncated") {
		t.Fatalf("rootCause = %q", got)
	}
}
