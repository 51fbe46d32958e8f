package main

import (
	"encoding/json"
	"fmt"
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

// TestQueueTailFollow: tail -f sees lines appended after it started, across several rolls, and
// a named reader following stops at SIGINT with its cursor saved.
func TestQueueTailFollow(t *testing.T) {
	dir := createQueue(t, "4KiB")
	appendLines(t, dir, queueLines(1, 2)...)
	tail := startShmio(t, []string{"tail", "-f", "--from", "start", "--name", "follower", dir})
	waitFor(t, 10*time.Second, "existing lines", func() bool { return tail.stdout.String() == strings.Join(queueLines(1, 2), "\n")+"\n" })
	segsBefore := len(queueStatJSON(t, dir).Segments)

	appendLines(t, dir, queueLines(3, 3)...)
	want := strings.Join(queueLines(1, 3), "\n") + "\n"
	waitFor(t, 10*time.Second, "a line appended later", func() bool { return tail.stdout.String() == want })
	// 1000 more lines: several rolls while tail is asleep at a segment's end.
	appendLines(t, dir, queueLines(4, 1003)...)
	want = strings.Join(queueLines(1, 1003), "\n") + "\n"
	waitFor(t, 20*time.Second, "1000 lines across rolls", func() bool { return tail.stdout.String() == want })
	s := queueStatJSON(t, dir)
	if s.Segments[len(s.Segments)-1].Number < int64(segsBefore)+3 {
		t.Fatalf("no rolls? segments before %d, now %+v", segsBefore, s.Segments)
	}
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
