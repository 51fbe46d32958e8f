package shmio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCursor(t *testing.T) {
	for _, tc := range []struct {
		s     string
		queue bool
		want  int64
		ok    bool
	}{
		{"42", false, 42, true},
		{" 7 ", true, 7, true},
		{"3:16", true, QueueCursor(3, 16), true},
		{"3:16", false, 0, false},
		{"-1", false, 0, false},
		{"1:4294967296", true, 0, false},
		{"2147483648:0", true, 0, false},
		{"x", true, 0, false},
	} {
		got, err := ParseCursor(tc.s, tc.queue)
		if tc.ok != (err == nil) || tc.ok && got != tc.want || !tc.ok && !errors.Is(err, ErrCursor) {
			t.Errorf("ParseCursor(%q, %v) = %d, %v; want %d ok %v", tc.s, tc.queue, got, err, tc.want, tc.ok)
		}
	}
}

func TestFrameProblemAt(t *testing.T) {
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
	defer w.Close()
	if err := w.Append([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if p := l.FrameProblemAt(0, false); p.What != "" || p.Kind != ProblemFrame || p.Offset != l.Header().DataOffset {
		t.Fatalf("intact frame: %+v", p)
	}
	// Damage the tail length of the 7-byte frame (u16 lengths around 3 bytes; FORMAT.md).
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{9, 0}, l.Header().DataOffset+5); err != nil {
		t.Fatal(err)
	}
	p := l.FrameProblemAt(0, false)
	if p.Kind != ProblemFrame || p.Cursor != 0 || p.Segment != -1 || !strings.Contains(p.What, "head length 7 but tail length 9") {
		t.Fatalf("damaged frame: %+v", p)
	}
	if p := l.FrameProblemAt(7, true); p.Kind != ProblemFrameEnd || p.What == "" || p.Offset != l.Header().DataOffset+7 {
		t.Fatalf("read backward: %+v", p)
	}
}
