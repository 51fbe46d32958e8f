package shmio

// Tests of issue 11 (hardening), log side. Each test is named after the behaviour it proves.

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenErrorNamesPathOnce: an OS error names the path once, not "open X: open X: ...".
func TestOpenErrorNamesPathOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	for _, writable := range []bool{false, true} {
		_, err := Open(Options{Path: path + "/sub", Writable: writable, Capacity: 4096})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open(writable=%v): %v, want fs.ErrNotExist", writable, err)
		}
		if n := strings.Count(err.Error(), path); n != 1 {
			t.Errorf("Open(writable=%v): %q names the path %d times, want once", writable, err, n)
		}
	}
}

// TestOpenNonRegularFileNamesItsKind: a non-regular file is refused with ErrBadHeader and a
// message that says what it is, a directory included.
func TestOpenNonRegularFileNamesItsKind(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{sub: "a directory", fifo: "a named pipe"}
	if os.Geteuid() == 0 {
		dev := filepath.Join(dir, "null")
		if err := unix.Mknod(dev, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err == nil {
			cases[dev] = "a character device"
		}
	}
	for path, kind := range cases {
		for _, writable := range []bool{false, true} {
			_, err := Open(Options{Path: path, Writable: writable, Capacity: 4096})
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("Open(%s, writable=%v): %v, want ErrBadHeader", kind, writable, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, kind) || strings.Contains(msg, "---") || strings.Count(msg, path) != 1 {
				t.Errorf("Open(%s, writable=%v): message %q should say %q once with the path, no mode string", kind, writable, msg, kind)
			}
		}
	}
}

// TestWriterOnSealedLogFails: Writer on a sealed log (or a queue's sealed segment) fails with
// ErrSealed instead of appending frames that readers which stopped at the seal never see.
func TestWriterOnSealedLogFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10)
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	utIs(t, errOf(l.Writer()), ErrSealed, "Writer on a sealed log")
	l2 := utReopen(t, path, true, false)
	utIs(t, errOf(l2.Writer()), ErrSealed, "Writer on a sealed log opened again")
	if held, _, err := l2.WriterStatus(); err != nil || held {
		t.Fatalf("refused Writer left the lock held (%v, %v)", held, err)
	}

	dir := filepath.Join(t.TempDir(), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, SegmentSize: MinSegmentSize, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	qw, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // 20 frames of 104 bytes: several 1 KiB segments
		if err := qw.Append(utPayload(i, 100)); err != nil {
			t.Fatal(err)
		}
		if err := qw.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	qw.Close()
	seg := utReopen(t, filepath.Join(dir, segName(1)), true, false)
	if !seg.Sealed() {
		t.Fatal("segment 1 is not sealed after rolls")
	}
	utIs(t, errOf(seg.Writer()), ErrSealed, "Writer on a sealed queue segment")
}

func errOf[T any](_ T, err error) error { return err }

// TestCommitRefusesEndMovedByLocklessWriter: a writer that takes no lock (Node shmio) commits
// behind a Go writer's back; the Go writer's next Commit fails with ErrConflict and leaves the
// other writer's committed end alone, and Header.Conflicts counts it.
func TestCommitRefusesEndMovedByLocklessWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10)
	end := int(l.Header().Size)
	if _, err := w.Allocate(40); err != nil { // the Go writer's frame, not committed yet
		t.Fatal(err)
	}
	// The lock-ignoring writer: its own mapping, a frame at the committed end, then the size word.
	other := utReopen(t, path, true, false)
	node := []byte{9, 0, 'n', 'o', 'd', 'e', 'x', 9, 0}
	copy(other.mem[end:], node)
	u64at(other.mem, offSize).Store(uint64(end + len(node)))

	for _, commit := range []func() error{w.Commit, func() error { return w.CommitTagged(5) }} {
		e := utIs(t, commit(), ErrConflict, "Commit after a lock-ignoring writer moved the end")
		if e.Offset != int64(end+len(node)) || !strings.Contains(e.Error(), "moved from") {
			t.Errorf("conflict error %q: want the offset %d and what moved", e, end+len(node))
		}
	}
	if got := l.Header().Size; got != int64(end+len(node)) {
		t.Fatalf("committed end %d after the refused commits, want the other writer's %d", got, end+len(node))
	}
	if h := other.Header(); h.Conflicts != 2 {
		t.Errorf("Header.Conflicts = %d, want 2", h.Conflicts)
	}
	got := utReadAll(t, utIter(t, other))
	if len(got) != 2 || string(got[1]) != "nodex" {
		t.Fatalf("frames %q, want frame 0 and the other writer's \"nodex\"", got)
	}
}

// TestWriterRefusesCommittedEndInsideFrame: a committed end that points into the middle of a
// frame is refused with ErrCorrupt (frames appended there could not be read forward); every
// real frame end is accepted.
func TestWriterRefusesCommittedEndInsideFrame(t *testing.T) {
	for _, wide := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "log")
		l := utOpen(t, Options{Path: path, WideFrames: wide})
		w := utWriter(t, l)
		sizes := []int{10, 30, 1, 200, 7, 64, 3, 90, 12, 5, 40}
		utAppend(t, w, 0, sizes...)
		w.Close()
		var ends []int
		p := int(l.Header().DataOffset)
		ends = append(ends, p)
		for _, n := range sizes {
			p += n + l.lo.overhead()
			ends = append(ends, p)
		}
		for e := ends[0]; e <= ends[len(ends)-1]; e++ {
			l.size.Store(uint64(e))
			w, err := l.Writer()
			if slices.Contains(ends, e) {
				if err != nil {
					t.Fatalf("wide=%v: Writer at the frame end %d: %v", wide, e, err)
				}
				w.Close()
				continue
			}
			if !errors.Is(err, ErrCorrupt) {
				if err == nil {
					w.Close()
				}
				t.Fatalf("wide=%v: Writer with the committed end %d inside a frame: %v, want ErrCorrupt", wide, e, err)
			}
		}
	}
}

// TestWriterCloseReportsUncommittedFrames: Close with frames allocated since the last Commit
// discards them and says so (ErrUncommitted, with the count), releasing the lock all the same;
// Log.Close does the same for a writer it closes.
func TestWriterCloseReportsUncommittedFrames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10)
	utAppendNoCommit(t, w, 1, 20, 30)
	err := w.Close()
	if !errors.Is(err, ErrUncommitted) || !strings.Contains(err.Error(), "2 frames (58 bytes)") {
		t.Fatalf("Close with 2 uncommitted frames: %v, want ErrUncommitted naming 2 frames (58 bytes)", err)
	}
	w = utWriter(t, l) // the lock was released
	utAppend(t, w, 1, 5)
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Commit: %v", err)
	}
	w = utWriter(t, l)
	utAppendNoCommit(t, w, 2, 7)
	if err := l.Close(); !errors.Is(err, ErrUncommitted) || !strings.Contains(err.Error(), "1 frame (11 bytes)") {
		t.Fatalf("Log.Close with an uncommitted frame: %v, want ErrUncommitted", err)
	}
	l = utReopen(t, path, false, false)
	if got := utReadAll(t, utIter(t, l)); len(got) != 2 {
		t.Fatalf("%d frames after the closes, want the 2 committed", len(got))
	}
}

// TestWideLogLooksFullAndEmptyToNode: Node shmio, reading by its own rules (u16 frames between
// dataOffset and size), sees a wide log as empty instead of reading u32 frames as garbage, and a
// Node writer finds no room to append; Go reads and appends to it as before, and a wide log made
// before the fence (size at offset 16, frames at dataOffset) still reads.
func TestWideLogLooksFullAndEmptyToNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	const capacity = 1 << 20
	l := utOpen(t, Options{Path: path, Capacity: capacity, WideFrames: true})
	w := utWriter(t, l)
	sizes := []int{1, 70000, 300, 12}
	utAppend(t, w, 0, sizes...)
	raw := utFileBytes(t, path)
	if frames := utNodeDecode(t, raw); len(frames) != 0 {
		t.Fatalf("Node's rules read %d frames out of a wide log, want none", len(frames))
	}
	// Node's writer appends at size and refuses a frame that would pass the file's end.
	if size := le.Uint64(raw[16:]); size+5 <= capacity {
		t.Fatalf("Node's writer would append at %d in a %d-byte file", size, capacity)
	}
	want := int64(goHeaderSize)
	for _, n := range sizes {
		want += int64(n) + 8
	}
	if h := l.Header(); h.DataOffset != goHeaderSize || h.Size != want || h.Capacity != capacity {
		t.Fatalf("Header: data offset %d, size %d, capacity %d; want %d, %d, %d", h.DataOffset, h.Size, h.Capacity, goHeaderSize, want, capacity)
	}
	r := utReopen(t, path, false, false)
	got := utReadAll(t, utIter(t, r))
	if len(got) != len(sizes) {
		t.Fatalf("Go reads %d frames of the wide log, want %d", len(got), len(sizes))
	}

	// A wide file of the earlier layout: frames at dataOffset, committed end at offset 16.
	old := bytes.Clone(raw)
	le.PutUint64(old[offDataOffset:], goHeaderSize)
	le.PutUint64(old[offSize:], le.Uint64(raw[offFenceEnd:]))
	le.PutUint64(old[offFenceEnd:], 0)
	le.PutUint32(old[offFlags:], flagWide)
	oldPath := filepath.Join(t.TempDir(), "old")
	if err := os.WriteFile(oldPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	ol := utReopen(t, oldPath, true, false)
	if got := utReadAll(t, utIter(t, ol)); len(got) != len(sizes) {
		t.Fatalf("a wide file of the earlier layout reads %d frames, want %d", len(got), len(sizes))
	}
	utAppend(t, utWriter(t, ol), 4, 8)
	if got := utReadAll(t, utIter(t, utReopen(t, oldPath, false, false))); len(got) != len(sizes)+1 {
		t.Fatalf("after an append the earlier-layout file reads %d frames", len(got))
	}
}
