package shmio

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/format"
)

// Shared-writer test frames: [writer u32][seq u64][body][crc32 u32], 16 to 79 bytes, the body a
// window of xpPattern and the size a function of (writer, seq), so a reader checks that a frame
// is exactly the one it expected next from that writer, whole.
func shSize(w uint32, seq uint64) int { return 16 + int(xpMix(uint64(w)<<40^seq)%64) }

func shFill(p []byte, w uint32, seq uint64) {
	le.PutUint32(p, w)
	le.PutUint64(p[4:], seq)
	n := len(p) - 4
	copy(p[12:n], xpPattern[seq%256:])
	le.PutUint32(p[n:], crc32.ChecksumIEEE(p[:n]))
}

// shCheck decodes and verifies a frame: its writer and sequence, or why it is not whole.
func shCheck(p []byte) (w uint32, seq uint64, err error) {
	if len(p) < 16 {
		return 0, 0, fmt.Errorf("frame of %d bytes, too short", len(p))
	}
	n := len(p) - 4
	if got, sum := le.Uint32(p[n:]), crc32.ChecksumIEEE(p[:n]); got != sum {
		return 0, 0, fmt.Errorf("torn frame (%d bytes): crc %#x, computed %#x", len(p), got, sum)
	}
	w, seq = le.Uint32(p), le.Uint64(p[4:])
	if len(p) != shSize(w, seq) {
		return w, seq, fmt.Errorf("writer %d frame %d: %d bytes, want %d", w, seq, len(p), shSize(w, seq))
	}
	return w, seq, nil
}

// shTracker checks that each writer's frames arrive once and in order.
type shTracker map[uint32]uint64

func (tr shTracker) add(p []byte) error {
	w, seq, err := shCheck(p)
	if err != nil {
		return err
	}
	if seq != tr[w] {
		return fmt.Errorf("writer %d: frame %d, want %d", w, seq, tr[w])
	}
	tr[w]++
	return nil
}

func shWriter(t testing.TB, l *Log) *SharedWriter {
	t.Helper()
	w, err := l.SharedWriter()
	if err != nil {
		t.Fatalf("SharedWriter: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// shAppend appends frames seq..seq+n-1 of writer id and commits them (any writer: logs' and
// queues').
func shAppend(t testing.TB, w FrameWriter, id uint32, seq uint64, n int) {
	t.Helper()
	for i := range n {
		p, err := w.Allocate(shSize(id, seq+uint64(i)))
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		shFill(p, id, seq+uint64(i))
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// shReadAll checks every committed frame of the log and returns the tracker.
func shReadAll(t testing.TB, l *Log) shTracker {
	t.Helper()
	it := utIter(t, l)
	defer it.Close()
	return shTrackAll(t, it)
}

// shTrackAll checks every committed frame from the iterator's cursor on (a log's or a queue's).
func shTrackAll(t testing.TB, it FrameIterator) shTracker {
	t.Helper()
	tr := shTracker{}
	for {
		p, err := it.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if p == nil {
			return tr
		}
		if err := tr.add(p); err != nil {
			t.Fatalf("at cursor %#x: %v", it.Cursor(), err)
		}
	}
}

// TestSharedWriterModes: shared writers and the exclusive writer exclude each other, in one
// Log, across Logs and with a clear error naming the mode; shared writers need a writable
// shmio-go file.
func TestSharedWriterModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	other := utReopen(t, path, true, false)
	a := shWriter(t, l)
	b := shWriter(t, other)
	shAppend(t, a, 1, 0, 3)
	shAppend(t, b, 2, 0, 2)
	shAppend(t, a, 1, 3, 1)
	for _, x := range []*Log{l, other} {
		_, err := x.Writer()
		e := utIs(t, err, ErrLocked, "Writer beside shared writers")
		if x == other && !errorsContain(e, "shared writers hold it") {
			t.Fatalf("error does not name the mode: %v", e)
		}
	}
	ro := utReopen(t, path, false, false)
	if held, pid, err := ro.WriterStatus(); err != nil || !held || pid != os.Getpid() {
		t.Fatalf("WriterStatus beside shared writers = %v %d %v", held, pid, err)
	}
	if tr := shReadAll(t, l); tr[1] != 4 || tr[2] != 2 {
		t.Fatalf("frames per writer %v, want 1:4 2:2", tr)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	utIs(t, a.Close(), ErrClosed, "second Close")
	utIs(t, a.Append([]byte("x")), ErrClosed, "Append after Close")
	utIs(t, a.Commit(), ErrClosed, "Commit after Close")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	w := utWriter(t, l)
	_, err := other.SharedWriter()
	if e := utIs(t, err, ErrLocked, "SharedWriter beside the writer"); !errorsContain(e, "exclusive writer holds it") {
		t.Fatalf("error does not name the mode: %v", e)
	}
	_, err = l.SharedWriter()
	utIs(t, err, ErrLocked, "SharedWriter on the Log with the writer")
	w.Close()
	shWriter(t, other) // the exclusive writer's lock is gone

	_, err = ro.SharedWriter()
	utIs(t, err, ErrReadOnly, "SharedWriter on a reader")

	node := utGoldenCopy(t)
	nl := utReopen(t, node, true, false)
	if _, err := nl.SharedWriter(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("SharedWriter on a Node-made file: %v, want ErrUnsupported", err)
	}
}

func errorsContain(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// TestSharedWriterLogClose: closing the Log closes its shared writers and releases the locks.
func TestSharedWriterLogClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := Open(Options{Path: path, Capacity: 64 << 10, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := l.SharedWriter()
	if err != nil {
		t.Fatal(err)
	}
	shAppend(t, w, 1, 0, 2)
	if err := w.Append([]byte("pending")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	utIs(t, w.Commit(), ErrClosed, "Commit after Log.Close")
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Log.Close: %v", err)
	}
	l2 := utReopen(t, path, true, false)
	utWriter(t, l2).Close() // no lock left behind
	if tr := shReadAll(t, l2); tr[1] != 2 || len(tr) != 1 {
		t.Fatalf("frames %v, want the two committed ones", tr)
	}
}

// TestSharedWriterFullAndTags: ErrFull without a change; commit tags as Writer.CommitTagged;
// frames larger than a chunk and commits spanning chunks.
func TestSharedWriterFullAndTags(t *testing.T) {
	l := utOpen(t, Options{Capacity: 300 << 10})
	w := shWriter(t, l)
	if _, err := w.Allocate(0); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("Allocate(0): %v", err)
	}
	if _, err := w.Allocate(MaxPayload + 1); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Allocate(max+1): %v", err)
	}
	big := utPayload(7, MaxPayload)
	for range 3 { // 3 chunk-sized frames and small ones between: one commit over 4 chunks
		if err := w.Append(big); err != nil {
			t.Fatal(err)
		}
		if err := w.Append([]byte("small")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CommitTagged(42); err != nil {
		t.Fatal(err)
	}
	if tag, ok, err := l.CommitTag(); err != nil || !ok || tag != 42 {
		t.Fatalf("CommitTag = %d %v %v, want 42", tag, ok, err)
	}
	if err := w.CommitTagged(43); err != nil { // nothing pending: retags the end
		t.Fatal(err)
	}
	if tag, ok, _ := l.CommitTag(); !ok || tag != 43 {
		t.Fatalf("CommitTag = %d %v, want 43", tag, ok)
	}
	end := l.Header().Size
	if err := w.Append(big); err != nil {
		t.Fatal(err)
	}
	_, err := w.Allocate(MaxPayload)
	utIs(t, err, ErrFull, "Allocate past the end")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	it := utIter(t, l)
	frames := utReadAll(t, it)
	if len(frames) != 7 || string(frames[1]) != "small" || len(frames[6]) != MaxPayload || l.Header().Size != end+MaxPayload+4 {
		t.Fatalf("%d frames, size %d", len(frames), l.Header().Size)
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestSharedWriterTurns: a writer's first Allocate waits while another writer holds the lock
// (from its first Allocate to its Commit), then sees the log as that commit left it: here, too
// full for its frame (ErrFull, the log unchanged).
func TestSharedWriterTurns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 4096})
	a := shWriter(t, l)
	b := shWriter(t, utReopen(t, path, true, false))
	room := 4096 - 192
	if err := a.Append(make([]byte, room/2)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Append(make([]byte, room/2)) }()
	select {
	case err := <-done:
		t.Fatalf("b allocated while a held the lock: %v", err)
	case <-time.After(20 * time.Millisecond): // b waits (a bounded look, not a speed check)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	shWaitErr(t, done, ErrFull, "Allocate after a filled the log")
	if err := b.Commit(); err != nil { // nothing allocated, lock released already
		t.Fatal(err)
	}
	shAppend(t, a, 1, 0, 1) // the lock is free again
	if err := a.Append([]byte("dropped")); err != nil {
		t.Fatal(err)
	}
	utIs(t, a.Close(), ErrUncommitted, "Close with an allocated frame")
	shAppend(t, b, 2, 0, 1) // Close released the lock
	if n := len(utReadAll(t, utIter(t, l))); n != 3 {
		t.Fatalf("%d frames, want 3", n)
	}
}

// TestSharedWriterCloseHolding: closing the Log while one of its shared writers holds the lock
// (frames allocated, not committed; here in the same goroutine) and another waits for it
// neither hangs nor publishes anything, and frees the lock for other processes' writers.
func TestSharedWriterCloseHolding(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := Open(Options{Path: path, Capacity: 64 << 10, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := l.SharedWriter()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte("never")); err != nil {
		t.Fatal(err)
	}
	b, err := l.SharedWriter() // a second writer of the Log waits for the turn
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- b.Append([]byte("b")) }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiting:
		utIs(t, err, ErrClosed, "Allocate waiting for the turn at Log.Close")
	case <-time.After(30 * time.Second):
		t.Fatal("a writer waiting for the turn hangs after Log.Close")
	}
	if _, err := w.Allocate(3); !errors.Is(err, ErrClosed) {
		t.Fatalf("Allocate after Log.Close: %v", err)
	}
	utIs(t, w.Commit(), ErrClosed, "Commit after Log.Close")
	w.Close()
	other := utReopen(t, path, true, false)
	shAppend(t, shWriter(t, other), 1, 0, 1)
	if tr := shReadAll(t, other); len(tr) != 1 || tr[1] != 1 {
		t.Fatalf("frames %v", tr)
	}
}

// TestSharedWriterGoroutines: writers in goroutines of one process, on one Log and on a second
// Log of the same file (two lock holders in one process), each commit contiguous and every
// writer's frames once and in order.
func TestSharedWriterGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	const writers, per = 8, 3000
	l := utOpen(t, Options{Path: path, Capacity: 4 << 20})
	l2 := utReopen(t, path, true, false)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for id := range uint32(writers) {
		x := l
		if id%2 == 1 {
			x = l2
		}
		w := shWriter(t, x)
		wg.Go(func() {
			for seq := uint64(0); seq < per; {
				n := min(1+int(xpMix(seq^uint64(id))%17), per-int(seq))
				for i := range n {
					p, err := w.Allocate(shSize(id, seq+uint64(i)))
					if err != nil {
						errs <- err
						return
					}
					shFill(p, id, seq+uint64(i))
				}
				if err := w.Commit(); err != nil {
					errs <- err
					return
				}
				seq += uint64(n)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tr := shReadAll(t, l)
	for id := range uint32(writers) {
		if tr[id] != per {
			t.Fatalf("writer %d: %d frames, want %d", id, tr[id], per)
		}
	}
}

// TestSharedWriterSeal: Seal commits the pending frames and seals the log; another shared
// writer's Allocate after it is refused with ErrSealed and publishes nothing.
func TestSharedWriterSeal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	a := shWriter(t, l)
	b := shWriter(t, utReopen(t, path, true, false))
	shAppend(t, b, 2, 0, 1)
	if err := a.Append(make([]byte, shSize(1, 0))); err != nil {
		t.Fatal(err)
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	if !l.Sealed() {
		t.Fatal("log not sealed")
	}
	size := l.Header().Size
	utIs(t, b.Append([]byte("late")), ErrSealed, "Append after the seal")
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if l.Header().Size != size || len(utReadAll(t, utIter(t, l))) != 2 {
		t.Fatalf("a frame was published after the seal")
	}
}

// shWaitErr waits for a waiting writer's result (30 s bound a hang, not a speed check) and checks
// it is want.
func shWaitErr(t *testing.T, done <-chan error, want error, what string) {
	t.Helper()
	select {
	case err := <-done:
		utIs(t, err, want, what)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still waiting after 30 s", what)
	}
}

// TestSharedWriterSealEndsWaits: writers waiting for the word when another seals the log stop
// with ErrSealed without taking the word, and publish nothing.
func TestSharedWriterSealEndsWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	a := shWriter(t, l)
	b := shWriter(t, utReopen(t, path, true, false))
	if err := a.Append([]byte("last")); err != nil { // a holds the word
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Append([]byte("late")) }()
	time.Sleep(5 * time.Millisecond) // b polls, then sleeps (a bounded look)
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	shWaitErr(t, done, ErrSealed, "a waiter's Allocate when the log is sealed")
	if w := u64at(l.mem, format.OffShareLock).Load(); w != 0 {
		t.Fatalf("lock word %#x after the seal: the waiter took it", w)
	}
	if got := utReadAll(t, utIter(t, l)); len(got) != 1 || string(got[0]) != "last" {
		t.Fatalf("read %q, want only the sealing commit's frame", got)
	}
}

// TestSharedWriterWide: wide files take frames beyond 64 KiB (a chunk of their own) and small
// ones, in order.
func TestSharedWriterWide(t *testing.T) {
	l := utOpen(t, Options{Capacity: 1 << 20, WideFrames: true})
	w := shWriter(t, l)
	big := utPayload(3, 200_000)
	for _, p := range [][]byte{[]byte("a"), big, []byte("b")} {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got := utReadAll(t, utIter(t, l))
	if len(got) != 3 || string(got[0]) != "a" || !bytes.Equal(got[1], big) || string(got[2]) != "b" {
		t.Fatalf("read %d frames", len(got))
	}
}
