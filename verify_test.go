package shmio

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
)

// TestLogVerify: a clean log verifies; damage is located forward (the first bad frame) and the
// intact end is measured backward, with the words FrameProblem gives the same frame.
func TestLogVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := Open(Options{Path: path, Capacity: 1 << 16, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hello", "world", "again", "fours"} { // 9-byte frames at 0, 9, 18, 27
		if err := w.Append([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	res, err := l.Verify()
	if err != nil || res.Frames != 4 || res.Bytes != 36 || res.End != 36 || len(res.Problems) != 0 || res.Head != -1 {
		t.Fatalf("clean: %+v, %v", res, err)
	}
	var s Store = l
	if _, err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	base := l.Header().DataOffset
	l.mem[base+9] = 3 // head length of the frame at cursor 9 (the mapping is writable: the writer's)
	res, err = l.Verify()
	if !errors.Is(err, ErrCorrupt) || res.Frames != 1 || res.Bytes != 9 || len(res.Problems) != 2 {
		t.Fatalf("damaged: %+v, %v", res, err)
	}
	p := res.Problems[0]
	const what = "length 3 is smaller than the smallest frame (5 bytes)"
	if p.Kind != ProblemFrame || p.Cursor != 9 || p.Offset != base+9 || p.Segment != -1 || p.What != what || !errors.Is(p.Err, ErrCorrupt) {
		t.Fatalf("forward problem %+v", p)
	}
	if got := p.String(); got != "frame at cursor 9 (file offset "+itoa(base+9)+"): "+what {
		t.Fatalf("String() = %q", got)
	}
	if got := l.FrameProblem(9, false); got != what {
		t.Fatalf("FrameProblem = %q", got)
	}
	// Backward from 36: frames at 27 and 18 are intact; the one ending at 18 points back to 9.
	b := res.Problems[1]
	if res.TailFrames != 2 || res.TailStart != 18 || b.Kind != ProblemFrameEnd || b.Cursor != 18 ||
		b.What != "tail length 9 points back to cursor 9, where the head length is 3 (asymmetric frame)" {
		t.Fatalf("backward: %+v", res)
	}
	if got := l.FrameProblem(18, true); got != b.What {
		t.Fatalf("FrameProblem ending = %q", got)
	}
	if got, err := l.Bytes(9, 3); err != nil || string(got) != "\x03\x00w" {
		t.Fatalf("Bytes = %q, %v", got, err)
	}
	if l.FrameProblem(0, false) != "" || l.FrameProblem(36, true) != "" {
		t.Fatal("intact frames reported as damaged")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
