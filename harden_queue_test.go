package shmio

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Tests for the queue side of issue 11 (hardening).

// hqWaitFirstSegment waits (bounded) until retention has removed every segment before want.
func hqWaitFirstSegment(t *testing.T, q *Queue, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		first, err := q.firstSegment()
		if err != nil {
			t.Fatal(err)
		}
		if first >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention kept segment %d for 10 s", first)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueReaderAtSegmentEndSurvivesRetention (issue 11 point 1): a named reader that stopped
// at the end of the head segment before it was sealed stored (segment, end); once the writer
// rolled and retention removed that segment, the reader must resume at the start of the next.
func TestQueueReaderAtSegmentEndSurvivesRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 1 << 10, Retention: RetentionPolicy{MaxSegments: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	frame := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 100) }
	for i := range 8 { // 8 × 104 bytes: segment 1 exactly full
		if err := w.Append(frame(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if w.Segment() != 1 {
		t.Fatalf("eight frames went to segment %d", w.Segment())
	}
	r, err := q.NamedIterator("r", IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		f, err := r.Next()
		if err != nil || !bytes.Equal(f, frame(i)) {
			t.Fatalf("frame %d: %q, %v", i, f, err)
		}
	}
	if f, err := r.Next(); f != nil || err != nil {
		t.Fatalf("a ninth frame: %q, %v", f, err)
	}
	stored := r.Cursor()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if seg, off := SplitQueueCursor(stored); seg != 1 || off != 8*104 {
		t.Fatalf("stored cursor %#x, want segment 1 at its end", stored)
	}
	if err := w.Append(frame(8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	hqWaitFirstSegment(t, q, 2)
	infos, err := q.Readers()
	if err != nil || len(infos) != 1 || infos[0].Err != nil || infos[0].LagFrames != 1 {
		t.Fatalf("Readers: %+v, %v; want reader r one frame behind", infos, err)
	}
	if n, _, err := q.Lag(stored); err != nil || n != 1 {
		t.Fatalf("Lag(%#x) = %d, %v; want 1 frame", stored, n, err)
	}
	r, err = q.NamedIterator("r", IteratorOptions{})
	if err != nil {
		t.Fatalf("reopening reader r: %v", err)
	}
	defer r.Close()
	if f, err := r.Next(); err != nil || !bytes.Equal(f, frame(8)) {
		t.Fatalf("reader r resumed with %q, %v; want the new frame", f, err)
	}
	// Seek accepts the old cursor too; a cursor inside the removed segment stays an error.
	if c, err := r.Seek(stored, 0); err != nil || c != QueueCursor(2, 0) {
		t.Fatalf("Seek(%#x) = %#x, %v; want the start of segment 2", stored, c, err)
	}
	if _, err := r.Seek(QueueCursor(1, 104), 0); !errors.Is(err, ErrCursor) {
		t.Fatalf("Seek into the removed segment: %v, want ErrCursor", err)
	}
}

// hqTarget makes a file outside the queue for a planted link to point at, and returns a check
// that it is untouched.
func hqTarget(t *testing.T, content []byte) (string, func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "target")
	if content != nil {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path, func() {
		t.Helper()
		got, err := os.ReadFile(path)
		if content == nil {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the link's target %s was created (%d bytes, %v)", path, len(got), err)
			}
			return
		}
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("the link's target changed: %d bytes, %v", len(got), err)
		}
	}
}

// hqQueue makes a queue with a few committed frames in segment 1.
func hqQueue(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three"} {
		if err := w.Append([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func hqSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestQueueRefusesPlantedSymlinks (issue 11 point 9): a symbolic link planted in a queue
// directory in place of any of its files is never followed: its target is neither created,
// written, nor read as part of the queue, and the queue reports a clear error or works around it.
func TestQueueRefusesPlantedSymlinks(t *testing.T) {
	t.Run("writer.lock", func(t *testing.T) {
		dir := hqQueue(t)
		target, untouched := hqTarget(t, nil)
		os.Remove(filepath.Join(dir, lockFile))
		hqSymlink(t, target, filepath.Join(dir, lockFile))
		q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if w, err := q.Writer(); err == nil || !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("Writer with writer.lock a link: %v, %v; want ErrBadHeader naming the link", w, err)
		}
		untouched()
	})
	t.Run("queue.json temporary file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "q")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		target, untouched := hqTarget(t, []byte("precious\n"))
		hqSymlink(t, target, filepath.Join(dir, fmt.Sprintf("%s.tmp-%d", metaFile, os.Getpid())))
		q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		w, err := q.Writer()
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if fi, err := os.Lstat(filepath.Join(dir, metaFile)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("queue.json: %v, %v; want a regular file", fi, err)
		}
		untouched()
	})
	t.Run("queue.json", func(t *testing.T) {
		dir := hqQueue(t)
		b, err := os.ReadFile(filepath.Join(dir, metaFile))
		if err != nil {
			t.Fatal(err)
		}
		target, untouched := hqTarget(t, bytes.Replace(b, []byte(`"segment_size": 4096`), []byte(`"segment_size": 8192`), 1))
		os.Remove(filepath.Join(dir, metaFile))
		hqSymlink(t, target, filepath.Join(dir, metaFile))
		for _, writable := range []bool{false, true} {
			if q, err := OpenQueue(QueueOptions{Dir: dir, Writable: writable}); err == nil || !errors.Is(err, ErrBadHeader) {
				if err == nil {
					t.Errorf("OpenQueue (writable %v) read queue.json through a link: segment size %d", writable, q.SegmentSize())
					q.Close()
				} else {
					t.Errorf("OpenQueue (writable %v): %v, want ErrBadHeader", writable, err)
				}
			}
		}
		untouched()
	})
	t.Run("segment", func(t *testing.T) {
		dir := hqQueue(t)
		other := hqQueue(t) // a valid segment elsewhere, with frames
		content, err := os.ReadFile(filepath.Join(other, segName(1)))
		if err != nil {
			t.Fatal(err)
		}
		target, untouched := hqTarget(t, content)
		for n := int64(2); n < 20; n++ {
			os.Remove(filepath.Join(dir, segName(n))) // prepared ahead, empty
		}
		hqSymlink(t, target, filepath.Join(dir, segName(2)))
		q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		segs, err := q.Segments()
		if err != nil || len(segs) != 2 || segs[1].Err == nil || !errors.Is(segs[1].Err, ErrBadHeader) {
			t.Errorf("Segments with a linked segment 2: %+v, %v; want an ErrBadHeader for it", segs, err)
		}
		if _, err := q.Writer(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("Writer with a linked segment 2: %v; want an error naming the link", err)
		}
		if _, err := q.Verify(); err == nil {
			t.Errorf("Verify with a linked segment 2: no error")
		}
		untouched()
	})
	t.Run("reader file", func(t *testing.T) {
		dir, other := hqQueue(t), hqQueue(t)
		for _, d := range []string{dir, other} {
			q, err := OpenQueue(QueueOptions{Dir: d})
			if err != nil {
				t.Fatal(err)
			}
			it, err := q.NamedIterator("r", IteratorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			it.Next()
			it.Close()
			q.Close()
		}
		content, err := os.ReadFile(readerPath(other, "r"))
		if err != nil {
			t.Fatal(err)
		}
		target, untouched := hqTarget(t, content)
		os.Remove(readerPath(dir, "r"))
		hqSymlink(t, target, readerPath(dir, "r"))
		q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		rs, err := q.Readers()
		if err != nil || len(rs) != 1 || !errors.Is(rs[0].Err, ErrBadHeader) {
			t.Errorf("Readers with a linked reader file: %+v, %v; want ErrBadHeader for it", rs, err)
		}
		if _, err := q.NamedIterator("r", IteratorOptions{}); !errors.Is(err, ErrBadHeader) {
			t.Errorf("NewIterator on a linked reader file: %v, want ErrBadHeader", err)
		}
		if err := q.RemoveReader("r"); !errors.Is(err, ErrBadHeader) {
			t.Errorf("RemoveReader on a linked reader file: %v, want ErrBadHeader", err)
		}
		untouched()
	})
	t.Run("readers directory", func(t *testing.T) {
		dir := hqQueue(t)
		elsewhere := t.TempDir()
		hqSymlink(t, elsewhere, filepath.Join(dir, readersDir))
		q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if it, err := q.NamedIterator("r", IteratorOptions{}); !errors.Is(err, ErrBadHeader) {
			t.Errorf("NewIterator with readers/ a link: %v, %v; want ErrBadHeader", it, err)
		}
		if _, err := q.Readers(); !errors.Is(err, ErrBadHeader) {
			t.Errorf("Readers with readers/ a link: %v; want ErrBadHeader", err)
		}
		if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
			t.Errorf("a reader file was made in the link's target: %v", ents)
		}
	})
}
