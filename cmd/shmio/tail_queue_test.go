package main

import (
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
)

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
	var frames []queueJSONFrame
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var f queueJSONFrame
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
