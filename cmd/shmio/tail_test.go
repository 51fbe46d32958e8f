package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/internal/cursorfile"
)

// numbered returns "prefix1" .. "prefixN".
func numbered(prefix string, from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprintf("%s%d", prefix, i))
	}
	return s
}

func TestTailStartingPoints(t *testing.T) {
	path := createLog(t, "1MiB")
	lines := numbered("line", 1, 15) // frames of 9 bytes ("line1".."line9") and 10 bytes
	appendLines(t, path, lines...)

	wantLines(t, mustRun(t, []string{"tail", path}), lines[5:]...) // the last 10, as tail(1)
	wantLines(t, mustRun(t, []string{"tail", path, "-n", "3"}), lines[12:]...)
	wantLines(t, mustRun(t, []string{"tail", path, "-n", "0"}))
	wantLines(t, mustRun(t, []string{"tail", path, "-n", "100"}), lines...)
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "start"}), lines...)
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "start", "-n", "2"}), lines[:2]...)
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "end"}))
	// line3 starts after two 9-byte frames.
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "18", "-n", "2"}), "line3", "line4")
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "0"}), lines...)
}

func TestTailFormats(t *testing.T) {
	path := createLog(t, "1MiB")
	binary := []byte{0xff, 0xfe, 0}
	input := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(input, rawRecords([]byte("héllo \"q\""), binary), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, []string{"append", "-q", path, "--raw", "--file", input})

	wantLines(t, tailAll(t, path, "hex"), hex.EncodeToString([]byte("héllo \"q\"")), "fffe00")
	wantLines(t, tailAll(t, path, "base64"), "aMOpbGxvICJxIg==", "//4A")
	out := tailAll(t, path, "json")
	wantLines(t, out,
		`{"cursor":0,"length":10,"next":14,"payload":"héllo \"q\""}`,
		`{"cursor":14,"length":3,"next":21,"payload_base64":"//4A"}`)
	// Every line is valid JSON.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var jf jsonFrame
		if err := json.Unmarshal([]byte(line), &jf); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
}

// TestTailFollow: tail -f prints what is there, then frames appended later by another process,
// and exits 0 on SIGINT.
func TestTailFollow(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "before1", "before2")
	tail := startShmio(t, []string{"tail", "-f", "--from", "start", path})
	waitFor(t, 10*time.Second, "existing lines", func() bool { return tail.stdout.String() == "before1\nbefore2\n" })

	appendLines(t, path, "after1")
	waitFor(t, 10*time.Second, "a line appended later", func() bool { return tail.stdout.String() == "before1\nbefore2\nafter1\n" })
	appendLines(t, path, "after2", "after3")
	waitFor(t, 10*time.Second, "two more lines", func() bool {
		return tail.stdout.String() == "before1\nbefore2\nafter1\nafter2\nafter3\n"
	})
	tail.signal(t, syscall.SIGINT)
	if code := tail.wait(t, 10*time.Second); code != 0 || tail.stderr.String() != "" {
		t.Fatalf("tail -f after SIGINT: exit %d stderr %q", code, tail.stderr.String())
	}

	// -f with -n: stops after N frames, waiting for them if needed.
	tail = startShmio(t, []string{"tail", "-f", "--from", "end", "-n", "2", path})
	waitFor(t, 10*time.Second, "the reader to wait", func() bool { return statJSON(t, path).ReadersWaiting == 1 })
	appendLines(t, path, "x", "y", "z")
	if code := tail.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("tail -f -n 2: exit %d stderr %q", code, tail.stderr.String())
	}
	wantLines(t, tail.stdout.String(), "x", "y")
}

// cursorFile reads a saved cursor file.
func cursorFile(t testing.TB, name string) cursorfile.Data {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var d cursorfile.Data
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("cursor file %q: %v", b, err)
	}
	return d
}

// TestTailCursorFile: successive runs with one cursor file see every frame exactly once, also
// when the run is a tail -f ended by SIGTERM or SIGINT.
func TestTailCursorFile(t *testing.T) {
	path := createLog(t, "1MiB")
	cf := filepath.Join(t.TempDir(), "cursor")
	appendLines(t, path, "a1", "a2") // 6-byte frames

	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf}), "a1", "a2")
	d := cursorFile(t, cf)
	if d.Cursor != 12 || d.ID != statJSON(t, path).ID || !filepath.IsAbs(d.Log) {
		t.Fatalf("saved %+v", d)
	}
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf})) // nothing new

	appendLines(t, path, "b1", "b2", "b3")
	// -n limits a run; the next run continues after the last printed frame.
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf, "-n", "1"}), "b1")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf}), "b2", "b3")

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		tail := startShmio(t, []string{"tail", "-f", path, "--cursor-file", cf})
		waitFor(t, 10*time.Second, "the reader to wait", func() bool { return statJSON(t, path).ReadersWaiting == 1 })
		appendLines(t, path, "c1-"+sig.String(), "c2-"+sig.String())
		waitFor(t, 10*time.Second, "followed lines", func() bool {
			return tail.stdout.String() == "c1-"+sig.String()+"\nc2-"+sig.String()+"\n"
		})
		tail.signal(t, sig)
		if code := tail.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("tail -f exit %d after %v, stderr %q", code, sig, tail.stderr.String())
		}
		if d := cursorFile(t, cf); d.Cursor != statJSON(t, path).Committed {
			t.Fatalf("after %v the saved cursor is %d, want the committed end %d", sig, d.Cursor, statJSON(t, path).Committed)
		}
	}
	appendLines(t, path, "d1")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf}), "d1")

	// A first run with --from end skips the history; later runs resume.
	cf2 := filepath.Join(t.TempDir(), "cursor2")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf2, "--from", "end"}))
	appendLines(t, path, "e1")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf2, "--from", "end"}), "e1")

	// A hand-written bare number works too.
	if err := os.WriteFile(cf2, []byte("6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf2, "-n", "1"}), "a2")
}

func TestTailErrors(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "aaaa", "bbbb") // 8-byte frames: cursors 0 and 8, end 16
	other := createLog(t, "64KiB")
	cf := filepath.Join(t.TempDir(), "cursor")
	mustRun(t, []string{"tail", other, "--cursor-file", cf})
	otherID := statJSON(t, other).ID
	garbageCF := filepath.Join(t.TempDir(), "garbage-cursor")
	if err := os.WriteFile(garbageCF, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	farCF := filepath.Join(t.TempDir(), "far-cursor")
	if err := os.WriteFile(farCF, []byte("1000"), 0o644); err != nil {
		t.Fatal(err)
	}
	notLog := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notLog, []byte(strings.Repeat("just some text\n", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	private := createLog(t, "64KiB")
	makeReachable(t, filepath.Dir(private))

	tests := []struct {
		name   string
		args   []string
		opts   []runOpt
		stderr string
	}{
		{"bad format", []string{"tail", path, "--format", "xml"}, nil, `shmio: invalid --format "xml": want text, hex, json or base64`},
		{"bad from", []string{"tail", path, "--from", "middle"}, nil, `shmio: invalid --from "middle": want start, end or a cursor`},
		{"negative n", []string{"tail", path, "-n", "-1"}, nil, `shmio: invalid -n -1: want a number of frames, 0 or more`},
		{"mid-frame cursor", []string{"tail", path, "--from", "3"}, nil,
			"shmio: " + path + ": cursor 3 is not the start of a frame (use a cursor printed by tail, dump or stat)"},
		{"cursor past end", []string{"tail", path, "--from", "17"}, nil, "shmio: " + path + ": cursor 17 is past the committed end (16)"},
		{"cursor file of another log", []string{"tail", path, "--cursor-file", cf}, nil,
			"shmio: --cursor-file " + cf + ": saved for log id " + otherID + ", but this log has id " + statJSON(t, path).ID + " (recreated?); delete the file to start over"},
		{"garbage cursor file", []string{"tail", path, "--cursor-file", garbageCF}, nil,
			"shmio: --cursor-file " + garbageCF + ": not a saved cursor (want JSON written by shmio tail, or a number)"},
		{"cursor file past end", []string{"tail", path, "--cursor-file", farCF}, nil,
			"shmio: " + path + ": cursor 1000 is past the committed end (16) (saved in " + farCF + "; delete it to start over)"},
		{"not a log", []string{"tail", notLog}, nil, "not a log"},
		{"missing", []string{"tail", "-f", path + ".missing"}, nil,
			"shmio: " + path + ".missing: no such file (create one with: shmio create " + path + ".missing --capacity 64MiB)"},
		{"no permission", []string{"tail", private}, []runOpt{asNobody()}, "shmio: " + private + ": permission denied (need read access)"},
		{"cursor file in a missing directory", []string{"tail", path, "--cursor-file", "/nonexistent/dir/cursor"}, nil,
			"shmio: --cursor-file /nonexistent/dir/cursor: directory /nonexistent/dir does not exist"},
		{"two paths", []string{"tail", path, path}, nil, "shmio: tail: want PATH, got 2 arguments (see shmio tail --help)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runShmio(t, tc.args, tc.opts...)
			if tc.stderr == "not a log" && isNotALog(r.stderr, tc.args[1]) {
				tc.stderr = strings.TrimSuffix(r.stderr, "\n")
			}
			if r.code != 2 || r.stderr != tc.stderr+"\n" || r.stdout != "" {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit 2, stderr %q", r.code, r.stdout, r.stderr, tc.stderr)
			}
		})
	}
	if d := cursorFile(t, cf); d.ID != otherID || d.Cursor != 0 {
		t.Fatalf("a failed run changed the cursor file: %+v", d)
	}
}

func init() {
	// sealLog appends its arguments as frames to the log at os.Args[1] and seals it.
	testHelpers["sealLog"] = func() int {
		l, err := shmio.Open(shmio.Options{Path: os.Args[1], Writable: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer l.Close()
		w, err := l.Writer()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, a := range os.Args[2:] {
			if err := w.Append([]byte(a)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := w.Seal(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
}

// TestTailFollowSealed: following a sealed log prints what it holds and ends.
func TestTailFollowSealed(t *testing.T) {
	path := createLog(t, "64KiB")
	h := startHelper(t, "sealLog", []string{path, "one", "two"})
	if code := h.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("sealLog helper: exit %d: %s", code, h.stderr.String())
	}
	r := runShmio(t, []string{"tail", "-f", "--from", "start", path})
	if r.code != 0 {
		t.Fatalf("tail -f of a sealed log: %+v", r)
	}
	wantLines(t, r.stdout, "one", "two")
	if out := mustRun(t, []string{"stat", path}); !strings.Contains(out, "sealed:           yes (no frame will follow)\n") {
		t.Fatalf("stat of a sealed log:\n%s", out)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and backslash \`, "tab\there\nnew line\r", "\x00\x01\x1f\x7f", "héllo ✓ 日本", "</script>&"} {
		b := appendJSONString(nil, []byte(s))
		var got string
		if err := json.Unmarshal(b, &got); err != nil || got != s {
			t.Errorf("appendJSONString(%q) = %s: decodes to %q, %v", s, b, got, err)
		}
	}
}

// queueLines are lines "line-100001"... of 11 bytes each: 15-byte frames, 260 per 4 KiB segment.
func queueLines(from, to int) []string { return numbered("line-", 100000+from, 100000+to) }

func TestQueueAppendTail(t *testing.T) {
	dir := createQueue(t, "4KiB")
	lines := queueLines(1, 2000)
	appendLines(t, dir, lines...)
	s := queueStatJSON(t, dir)
	sealed := 0
	for _, g := range s.Segments {
		if g.Sealed {
			sealed++
		}
	}
	if sealed < 5 || s.Committed != int64(2000*(len(lines[0])+4)) {
		t.Fatalf("after 2000 frames: %d sealed segments, %d bytes committed: %+v", sealed, s.Committed, s)
	}

	wantLines(t, mustRun(t, []string{"tail", dir, "--from", "start"}), lines...)
	wantLines(t, mustRun(t, []string{"tail", dir, "-n", "3"}), lines[1997:]...)
	// The last 300 frames cross at least one segment boundary backward.
	wantLines(t, mustRun(t, []string{"tail", dir, "-n", "300"}), lines[1700:]...)

	// JSON: cursors increase, split into segment and offset, and next is the following cursor.
	out := mustRun(t, []string{"tail", dir, "--from", "start", "--format", "json"})
	var frames []jsonFrame
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var f jsonFrame
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("json line %q: %v", l, err)
		}
		frames = append(frames, f)
	}
	if len(frames) != 2000 {
		t.Fatalf("%d json frames", len(frames))
	}
	segs := map[int64]bool{}
	for i, f := range frames {
		seg, off := shmio.SplitQueueCursor(f.Cursor)
		if f.Segment != seg || f.Offset != off || f.Payload != lines[i] || f.Length != 11 {
			t.Fatalf("frame %d: %+v", i, f)
		}
		if i > 0 && frames[i-1].Next != f.Cursor {
			t.Fatalf("frame %d: cursor %d, previous frame's next %d", i, f.Cursor, frames[i-1].Next)
		}
		if i > 0 && f.Segment != frames[i-1].Segment && (f.Segment != frames[i-1].Segment+1 || f.Offset != 0) {
			t.Fatalf("frame %d: roll from %+v to %+v", i, frames[i-1], f)
		}
		segs[f.Segment] = true
	}
	if len(segs) < 6 {
		t.Fatalf("frames in %d segments, want at least 6", len(segs))
	}

	// --from CURSOR (packed, and SEGMENT:OFFSET) starts at that frame, in a later segment.
	mid := frames[1000]
	wantLines(t, mustRun(t, []string{"tail", dir, "--from", strconv.FormatInt(mid.Cursor, 10), "-n", "2"}), lines[1000:1002]...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--from", fmt.Sprintf("%d:%d", mid.Segment, mid.Offset), "-n", "1"}), lines[1000])
	r := runShmio(t, []string{"tail", dir, "--from", strconv.FormatInt(mid.Cursor+1, 10)})
	if r.code != 2 || !strings.Contains(r.stderr, fmt.Sprintf("cursor %d (segment %d offset %d)", mid.Cursor+1, mid.Segment, mid.Offset+1)) {
		t.Fatalf("tail from a cursor inside a frame: %+v", r)
	}

	// A named reader resumes where it stopped, across segments.
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "billing", "-n", "300"}), lines[:300]...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "billing", "-n", "600"}), lines[300:900]...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "billing"}), lines[900:]...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "billing"}))
	r = runShmio(t, []string{"tail", dir, "--cursor-file", t.TempDir() + "/c"})
	if r.code != 2 || r.stderr != "shmio: --cursor-file is for log files; a queue keeps a reader's cursor itself: use --name READER\n" {
		t.Fatalf("tail --cursor-file on a queue: %+v", r)
	}
}

// queueHead returns the number of the segment being written (segments prepared ahead follow it,
// how many depends on the writer).
func queueHead(t testing.TB, dir string) int64 {
	t.Helper()
	for _, g := range queueStatJSON(t, dir).Segments {
		if g.State == "head" {
			return g.Number
		}
	}
	t.Fatalf("%s: no head segment", dir)
	return 0
}

// TestQueueTailFollow: tail -f sees lines appended after it started, across several rolls, and
// a named reader following stops at SIGINT with its cursor saved.
func TestQueueTailFollow(t *testing.T) {
	dir := createQueue(t, "4KiB")
	appendLines(t, dir, queueLines(1, 2)...)
	tail := startShmio(t, []string{"tail", "-f", "--from", "start", "--name", "follower", dir})
	waitFor(t, 10*time.Second, "existing lines", func() bool { return tail.stdout.String() == strings.Join(queueLines(1, 2), "\n")+"\n" })
	headBefore := queueHead(t, dir)

	appendLines(t, dir, queueLines(3, 3)...)
	want := strings.Join(queueLines(1, 3), "\n") + "\n"
	waitFor(t, 10*time.Second, "a line appended later", func() bool { return tail.stdout.String() == want })
	// 1000 more lines: several rolls while tail is asleep at a segment's end.
	appendLines(t, dir, queueLines(4, 1003)...)
	want = strings.Join(queueLines(1, 1003), "\n") + "\n"
	waitFor(t, 20*time.Second, "1000 lines across rolls", func() bool { return tail.stdout.String() == want })
	if head := queueHead(t, dir); head < headBefore+3 {
		t.Fatalf("no rolls? head segment %d before, %d after", headBefore, head)
	}
	s := queueStatJSON(t, dir)
	if len(s.Readers) != 1 || s.Readers[0].Name != "follower" || !s.Readers[0].Active {
		t.Fatalf("stat while following: readers %+v", s.Readers)
	}
	tail.signal(t, syscall.SIGINT)
	if code := tail.wait(t, 10*time.Second); code != 0 || tail.stderr.String() != "" {
		t.Fatalf("tail -f after SIGINT: exit %d stderr %q", code, tail.stderr.String())
	}
	r := queueStatJSON(t, dir).Readers[0]
	if r.Active || r.LagFrames != 0 || r.LagBytes != 0 {
		t.Fatalf("follower after SIGINT: %+v", r)
	}
	appendLines(t, dir, queueLines(1004, 1005)...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "follower"}), queueLines(1004, 1005)...)
}

// TestQueueTailNamedKill9: a named reader's cursor never passes a line tail has not written
// out. tail -f --name runs as a child writing to a file and is killed with SIGKILL while
// frames stream in, then restarted under the same name, a few times: the union of the outputs
// holds every frame (at least once; the lines around a kill may repeat).
func TestQueueTailNamedKill9(t *testing.T) {
	dir := createQueue(t, "64KiB")
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: dir, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	next := 1
	// appendBurst appends n numbered frames, committing every 100.
	appendBurst := func(n int) {
		t.Helper()
		var b []byte
		for end := next + n; next < end; next++ {
			b = strconv.AppendInt(b[:0], int64(next), 10)
			if err := w.Append(b); err != nil {
				t.Fatalf("append %d: %v", next, err)
			}
			if next%100 == 0 {
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	fileSize := func(path string) int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	const kills = 4
	var outputs []string
	midStream := 0 // kills that left frames committed but not yet printed
	for round := 0; round <= kills; round++ {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("out-%d", round))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, path)
		if round == kills {
			appendBurst(1000)
		} else {
			// Many more frames than one batch, committed before the child starts, and a kill
			// as soon as it has written some: it is then in the middle of the stream.
			appendBurst(100000)
		}
		// The child writes to the file itself (no pipe in between), as it would in production.
		tail := startShmio(t, []string{"tail", "-f", "--name", "x", dir}, func(c *exec.Cmd) { c.Stdout = f })
		f.Close()
		if round == kills {
			last := strconv.Itoa(next-1) + "\n"
			waitFor(t, 30*time.Second, "the last line", func() bool {
				b, err := os.ReadFile(path)
				return err == nil && strings.HasSuffix(string(b), last)
			})
			tail.signal(t, syscall.SIGINT)
			if code := tail.wait(t, 10*time.Second); code != 0 || tail.stderr.String() != "" {
				t.Fatalf("tail after SIGINT: exit %d stderr %q", code, tail.stderr.String())
			}
			break
		}
		// Polled tightly (waitFor's 5ms would let the child finish).
		for deadline := time.Now().Add(30 * time.Second); fileSize(path) == 0; time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no output within 30s; stderr %q", round, tail.stderr.String())
			}
		}
		tail.signal(t, syscall.SIGKILL)
		tail.wait(t, 10*time.Second)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if lines[len(lines)-1] != strconv.Itoa(next-1) {
			midStream++
		}
		t.Logf("round %d: killed after %d lines, the last %s of %d committed", round, len(lines), lines[len(lines)-1], next-1)
	}
	if midStream == 0 {
		t.Fatalf("every kill came after the child had printed all it was given: the test proved nothing")
	}
	total := next - 1
	seen := make([]bool, total+1)
	var printed, dups int
	for _, path := range outputs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if i := strings.LastIndexByte(s, '\n'); i+1 < len(s) {
			s = s[:i+1] // a write cut short by the kill: that line was not acknowledged either
		}
		for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			if l == "" {
				continue
			}
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 || n > total {
				t.Fatalf("%s: line %q is not a frame number in [1, %d]", path, l, total)
			}
			printed++
			if seen[n] {
				dups++
			}
			seen[n] = true
		}
	}
	var missing []int
	for n := 1; n <= total; n++ {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d frames never printed across %d kills (first %d); the named reader's cursor passed unwritten lines",
			len(missing), total, kills, missing[0])
	}
	t.Logf("%d frames, %d lines printed across %d kills (%d mid-stream), %d repeated", total, printed, kills, midStream, dups)
}

// TestTailEscapesControlBytes: --format text shows control bytes the way cat -v does, so a frame
// cannot drive the terminal; --raw prints them as they are.
func TestTailEscapesControlBytes(t *testing.T) {
	path := createLog(t, "1MiB")
	input := filepath.Join(t.TempDir(), "in.bin")
	evil := []byte("red \x1b[31mtext\x1b]0;title\x07 del\x7f tab\tnew\nline héllo")
	if err := os.WriteFile(input, rawRecords(evil), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, []string{"append", "-q", path, "--raw", "--file", input})
	wantLines(t, tailAll(t, path, "text"), "red ^[[31mtext^[]0;title^G del^? tab\tnew^Jline héllo")
	if out := mustRun(t, []string{"tail", path, "--from", "start", "--raw"}); out != string(evil)+"\n" {
		t.Fatalf("tail --raw printed %q", out)
	}
}
