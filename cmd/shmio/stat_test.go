package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statJSON runs "shmio stat --json" and decodes it; a damaged log (exit 1) is reported too.
func statJSON(t testing.TB, path string) statInfo {
	t.Helper()
	var s statInfo
	r := runShmio(t, []string{"stat", "--json", path})
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || r.code != 0 && (r.code != 1 || s.Corrupt == "") {
		t.Fatalf("stat --json: %+v: %v", r, err)
	}
	return s
}

func TestStat(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "a", "bb", "ccc") // frames of 5, 6 and 7 bytes at cursors 0, 5, 11

	s := statJSON(t, path)
	if s.Path != path || s.Format != "shmio-go" || !s.NodeCompatible || s.WideFrames || s.Version != 1 ||
		s.HeaderSize != 192 || s.DataOffset != 192 || s.Capacity != 1<<20 || s.DataCapacity != 1<<20-192 ||
		s.Committed != 18 || s.CommittedEnd != 192+18 || s.Frames != 3 || s.MaxPayload != 65531 ||
		s.FirstCursor == nil || *s.FirstCursor != 0 || s.LastCursor == nil || *s.LastCursor != 11 ||
		s.WriterLockHeld || s.WriterPID != 0 || s.LastWriterPID != 0 || s.ReadersWaiting != 0 || s.Corrupt != "" || len(s.ID) != 16 {
		t.Fatalf("stat --json = %+v", s)
	}
	if want := 18 * 100 / float64(1<<20-192); s.FillPercent != want {
		t.Fatalf("fill %v, want %v", s.FillPercent, want)
	}

	out := mustRun(t, []string{"stat", path})
	for _, line := range []string{
		"path:             " + path + "\n",
		"format:           shmio-go v1, u16 frame lengths (Node shmio compatible)\n",
		"id:               " + s.ID + "\n",
		"header:           192 bytes, data offset 192\n",
		"capacity:         1MiB (1048576 bytes), 1048384 bytes for frames\n",
		"committed:        18 bytes (<0.1% full), committed end at file offset 210\n",
		"frames:           3\n",
		"first cursor:     0\n",
		"last cursor:      11\n",
		"writer:           none\n",
		"readers waiting:  0\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("stat output lacks %q:\n%s", line, out)
		}
	}
}

// TestStatLiveWriterAndReader checks the lock holder's pid and the count of sleeping readers
// while a real writer and a real reader are running.
func TestStatLiveWriterAndReader(t *testing.T) {
	path := createLog(t, "1MiB")
	w, in := startAppend(t, path)
	writeInput(t, in, "first\n")
	waitFor(t, 10*time.Second, "the writer to commit its first line", func() bool { return statJSON(t, path).Frames == 1 })

	s := statJSON(t, path)
	if !s.WriterLockHeld || s.WriterPID != w.cmd.Process.Pid || s.LastWriterPID != w.cmd.Process.Pid {
		t.Fatalf("with a writer running (pid %d): %+v", w.cmd.Process.Pid, s)
	}
	out := mustRun(t, []string{"stat", path})
	if want := "writer:           lock held by pid " + itoa(w.cmd.Process.Pid) + "\n"; !strings.Contains(out, want) {
		t.Fatalf("stat output lacks %q:\n%s", want, out)
	}

	r := startShmio(t, []string{"tail", "-f", "--from", "end", path})
	waitFor(t, 10*time.Second, "the reader to sleep in Wait", func() bool { return statJSON(t, path).ReadersWaiting == 1 })

	writeInput(t, in, "second\n")
	waitFor(t, 10*time.Second, "the reader to print the new line", func() bool { return r.stdout.String() == "second\n" })
	r.signal(t, syscall.SIGTERM)
	if code := r.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("tail -f exit %d after SIGTERM, stderr %q", code, r.stderr.String())
	}
	in.Close()
	if code := w.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("append exit %d, stderr %q", code, w.stderr.String())
	}
	s = statJSON(t, path)
	if s.WriterLockHeld || s.WriterPID != 0 || s.LastWriterPID != 0 || s.ReadersWaiting != 0 || s.Frames != 2 {
		t.Fatalf("after both exited: %+v", s)
	}
}

// TestStatNodeLog reads the log made by Node shmio v1.0.4 in testdata: 220 committed frames
// (3 more allocated but uncommitted).
func TestStatNodeLog(t *testing.T) {
	path := copyNodeLog(t)
	s := statJSON(t, path)
	const committedEnd = 102808
	if s.Format != "node" || !s.NodeCompatible || s.Version != 0 || s.ID != "" || s.HeaderSize != 24 || s.DataOffset != 24 ||
		s.Capacity != 262144 || s.CommittedEnd != committedEnd || s.Committed != committedEnd-24 || s.Frames != 220 ||
		*s.FirstCursor != 0 || s.Corrupt != "" {
		t.Fatalf("stat of the Node log = %+v", s)
	}
	sizes := nodeFrameSizes(t)
	if want := s.Committed - int64(sizes[219]+4); *s.LastCursor != want {
		t.Fatalf("last cursor %d, want %d", *s.LastCursor, want)
	}
	out := mustRun(t, []string{"stat", path})
	if !strings.Contains(out, "format:           Node shmio (u16 frame lengths, no shmio-go header: readers poll)\n") {
		t.Fatalf("stat output:\n%s", out)
	}
}

// copyNodeLog copies testdata's Node-made log into a temporary directory.
func copyNodeLog(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "shmio-node-v1.0.4.log"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.log")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeFrameSizes returns the payload sizes of the Node log's frames, committed and not.
func nodeFrameSizes(t testing.TB) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "shmio-node-v1.0.4.log.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Frames []int }
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d.Frames
}

func TestStatErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a log at all ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	zeros := filepath.Join(dir, "zeros")
	if err := os.WriteFile(zeros, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(dir, "tiny")
	if err := os.WriteFile(tiny, []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	private := createLog(t, "64KiB") // mode 0600, owned by the test's user
	makeReachable(t, filepath.Dir(private))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name   string
		path   string
		opts   []runOpt
		stderr string
	}{
		{"missing", missing, nil, "shmio: " + missing + ": no such file (create one with: shmio create " + missing + " --capacity 64MiB)\n"},
		{"directory", dir, nil, "shmio: " + dir + ": is a directory, not a shmio log\n"},
		{"fifo", fifo, nil, "shmio: " + fifo + ": not a regular file (named pipe), not a shmio log\n"},
		{"device", "/dev/null", nil, "shmio: /dev/null: not a regular file (character device), not a shmio log\n"},
		{"garbage", garbage, nil, "not a log"},
		{"zeros", zeros, nil, "not a log"},
		{"tiny", tiny, nil, "not a log"},
		{"no permission", private, []runOpt{asNobody()}, "shmio: " + private + ": permission denied (need read access)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runShmio(t, []string{"stat", tc.path}, tc.opts...)
			if tc.stderr == "not a log" && isNotALog(r.stderr, tc.path) {
				tc.stderr = r.stderr // the detail is the library's wording
			}
			if r.code != 2 || r.stderr != tc.stderr || r.stdout != "" {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit 2, stderr %q", r.code, r.stdout, r.stderr, tc.stderr)
			}
		})
	}
}

// isNotALog reports whether stderr is the one-line "not a shmio log" message for path. The
// detail after it (which header field is off) is the library's to word.
func isNotALog(stderr, path string) bool {
	return strings.HasPrefix(stderr, "shmio: "+path+": not a shmio log: ") && strings.Count(stderr, "\n") == 1 && strings.HasSuffix(stderr, "\n")
}

func TestQueueStat(t *testing.T) {
	dir := createQueue(t, "4KiB", "--keep-segments", "50", "--hard-keep-bytes", "1MiB")
	appendLines(t, dir, queueLines(1, 1000)...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "billing", "-n", "100"}), queueLines(1, 100)...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "audit", "-n", "1000"}), queueLines(1, 1000)...)

	s := queueStatJSON(t, dir)
	if s.Kind != "queue" || s.SegmentSize != 4096 || s.Retention.MaxSegments != 50 || s.Retention.HardMaxBytes != 1<<20 ||
		s.RetentionText != "max segments 50, hard max bytes 1048576" || s.Committed != 1000*15 || s.WriterLockHeld {
		t.Fatalf("stat: %+v", s)
	}
	// 1000 frames of 15 bytes, 260 per segment: segments 1-3 sealed, 4 the head, then prepared ones.
	for i, want := range []struct {
		committed int64
		state     string
	}{{260 * 15, "sealed"}, {260 * 15, "sealed"}, {260 * 15, "sealed"}, {220 * 15, "head"}} {
		g := s.Segments[i]
		if g.Number != int64(i+1) || g.FileSize != 4096 || g.Committed != want.committed || g.State != want.state || g.Sealed != (want.state == "sealed") {
			t.Fatalf("segment %d: %+v, want %+v", i+1, g, want)
		}
	}
	for _, g := range s.Segments[4:] {
		if g.State != "prepared" || g.Committed != 0 {
			t.Fatalf("segment after the head: %+v", g)
		}
	}
	if len(s.Readers) != 2 {
		t.Fatalf("readers: %+v", s.Readers)
	}
	audit, billing := s.Readers[0], s.Readers[1]
	if audit.Name != "audit" || audit.LagFrames != 0 || audit.LagBytes != 0 || audit.LagSecs != 0 || audit.Segment != 4 || audit.Offset != 220*15 {
		t.Fatalf("audit reader: %+v", audit)
	}
	if billing.Name != "billing" || billing.LagFrames != 900 || billing.LagBytes != 900*15 || billing.LagSecs <= 0 ||
		billing.Segment != 1 || billing.Offset != 100*15 || billing.Cursor != 1<<32|100*15 || billing.Active {
		t.Fatalf("billing reader: %+v", billing)
	}

	out := mustRun(t, []string{"stat", dir})
	for _, re := range []string{
		`(?m)^retention: +max segments 50, hard max bytes 1048576$`,
		`(?m)^segments: +\d+, \d+KiB of files, 15000 bytes committed$`,
		`(?m)^writer: +none$`,
		`(?m)^ +2 +4KiB +3900 +sealed$`,
		`(?m)^ +4 +4KiB +3300 +head$`,
		`(?m)^  billing +4294968796 \(segment 1 offset 1500\) +900 +13500 +\d+ms +idle$`,
		`(?m)^  audit +17179872484 \(segment 4 offset 3300\) +0 +0 +0s +idle$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stat output lacks %s:\n%s", re, out)
		}
	}

	// A writer holding the queue: stat names its pid.
	pr, pw := io.Pipe()
	app := startShmio(t, []string{"append", dir, "-q"}, withStdinReader(pr))
	fmt.Fprintln(pw, "line-101001")
	waitFor(t, 10*time.Second, "the writer's line", func() bool { return queueStatJSON(t, dir).Committed == 1001*15 })
	s = queueStatJSON(t, dir)
	if !s.WriterLockHeld || s.WriterPID != app.cmd.Process.Pid {
		t.Fatalf("stat with a writer (pid %d): held %v pid %d", app.cmd.Process.Pid, s.WriterLockHeld, s.WriterPID)
	}
	if out := mustRun(t, []string{"stat", dir}); !strings.Contains(out, fmt.Sprintf("writer:        lock held by pid %d\n", app.cmd.Process.Pid)) {
		t.Errorf("stat with a writer:\n%s", out)
	}
	r := runShmio(t, []string{"append", dir}, withStdin("x\n"))
	if r.code != 2 || r.stderr != fmt.Sprintf("shmio: %s: another writer (pid %d) holds the queue; only one writer may append at a time\n", dir, app.cmd.Process.Pid) {
		t.Errorf("second writer: %+v", r)
	}
	pw.Close()
	if code := app.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("append: exit %d: %s", code, app.stderr.String())
	}
	if s := queueStatJSON(t, dir); s.WriterLockHeld || s.Readers[1].LagFrames != 901 {
		t.Fatalf("after the writer exited: %+v", s)
	}
}

// TestStatCorruptAndStale: stat of a damaged log prints what it found and exits 1; the waiting
// count is marked as possibly stale; a queue directory it cannot read says permission denied.
func TestStatCorruptAndStale(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "hello", "world", "again")
	writeAt(t, path, 9, []byte{3, 0})
	r := runShmio(t, []string{"stat", path})
	if r.code != 1 || !strings.Contains(r.stdout, "frames:           1 before a corrupt frame (run shmio verify)\n") ||
		!strings.Contains(r.stdout, "CORRUPT:          frame at cursor 9 (file offset 201): length 3 is smaller than the smallest frame (5 bytes)\n") ||
		r.stderr != "shmio: "+path+": corrupt frame at cursor 9 (file offset 201): length 3 is smaller than the smallest frame (5 bytes) (run shmio verify)\n" {
		t.Fatalf("stat of a damaged log: %+v", r)
	}

	live := createLog(t, "1MiB")
	tail := startShmio(t, []string{"tail", "-f", live})
	waitFor(t, 10*time.Second, "tail -f to sleep", func() bool { return statJSON(t, live).ReadersWaiting > 0 })
	if out := mustRun(t, []string{"stat", live}); !strings.Contains(out, "readers waiting:  1 (possibly stale: a reader killed while waiting stays counted)\n") {
		t.Fatalf("stat with a sleeping reader:\n%s", out)
	}
	tail.signal(t, syscall.SIGTERM)
	tail.wait(t, 10*time.Second)

	dir := createQueue(t, "4KiB")
	makeReachable(t, filepath.Dir(dir))
	mode := os.FileMode(0o700) // root's: nobody may not read it
	if os.Geteuid() != 0 {
		mode = 0 // nor may we
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	r = runShmio(t, []string{"stat", dir}, asNobody())
	if r.code != 2 || !strings.Contains(r.stderr, dir+": permission denied") {
		t.Fatalf("stat of an unreadable queue: %+v", r)
	}
}
