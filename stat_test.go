package shmio

import (
	"path/filepath"
	"testing"
)

func TestLogStat(t *testing.T) {
	l, err := Open(Options{Path: filepath.Join(t.TempDir(), "log"), Capacity: 1 << 16, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := l.Stat()
	if err != nil || s.Frames != 0 || s.FirstCursor != nil || s.Format != "shmio-go" || s.Committed != 0 || s.Corrupt != "" {
		t.Fatalf("empty: %+v %v", s, err)
	}
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, p := range []string{"a", "bcd", "ef"} {
		if err := w.Append([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CommitTagged(7); err != nil {
		t.Fatal(err)
	}
	s, err = l.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// Each frame is its payload plus two u16 lengths (FORMAT.md): 5, 7 and 6 bytes.
	if s.Frames != 3 || s.Committed != 18 || *s.FirstCursor != 0 || *s.LastCursor != 12 || s.CommittedEnd != 18+s.DataOffset ||
		!s.WriterLockHeld || s.CommitTag == nil || *s.CommitTag != 7 || s.ID == "" || s.FillPercent <= 0 {
		t.Fatalf("3 frames: %+v", s)
	}
}

func TestQueueStat(t *testing.T) {
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	for range 3 {
		if err := w.Append([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	it, err := q.NamedIterator("r1", IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	it.Close()
	s, err := q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != "queue" || s.SegmentSize != 4096 || len(s.Segments) == 0 || s.Segments[0].State != "head" || s.Committed != 3*14 ||
		!s.WriterLockHeld || len(s.Readers) != 1 || s.Readers[0].Name != "r1" || s.Readers[0].LagFrames != 3 {
		t.Fatalf("%+v", s)
	}
}
