package shmio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriterAllocateCommit(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	r := utIter(t, l)
	p, err := w.Allocate(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 10 || cap(p) != 10 {
		t.Fatalf("Allocate(10): len %d cap %d, want 10 and 10 (append must not spill)", len(p), cap(p))
	}
	copy(p, "0123456789")
	if err := w.Append([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	// Nothing is visible before Commit.
	if f, err := r.Next(); f != nil || err != nil {
		t.Fatalf("Next before Commit = %q, %v", f, err)
	}
	if got := r.End(); got != 0 {
		t.Fatalf("End before Commit = %d", got)
	}
	if got := l.Header().Size; got != 192 {
		t.Fatalf("Header().Size before Commit = %d", got)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := r.End(); got != 14+7 {
		t.Fatalf("End = %d, want 21", got)
	}
	if got := l.Header().Size; got != 192+21 {
		t.Fatalf("Header().Size = %d, want 213", got)
	}
	f, err := r.Next()
	if err != nil || string(f) != "0123456789" || r.Cursor() != 14 {
		t.Fatalf("Next = %q, %v at cursor %d", f, err, r.Cursor())
	}
	f, err = r.Next()
	if err != nil || string(f) != "abc" || r.Cursor() != 21 {
		t.Fatalf("Next = %q, %v at cursor %d", f, err, r.Cursor())
	}
	// A commit with nothing allocated changes nothing.
	if err := w.Commit(); err != nil || l.Header().Size != 213 {
		t.Fatalf("empty Commit: %v, size %d", err, l.Header().Size)
	}
	// Append copies: changing the source afterwards does not change the frame.
	src := []byte("xyz")
	if err := w.Append(src); err != nil {
		t.Fatal(err)
	}
	src[0] = '!'
	utAppend(t, w, 0)
	if f, _ := r.Next(); string(f) != "xyz" {
		t.Fatalf("appended frame %q, want xyz", f)
	}
}

// utFileBytes reads the whole file, to prove a failed call changed nothing.
func utFileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriterLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	const capacity = 192 + (65531 + 4) + 1000
	l := utOpen(t, Options{Path: path, Capacity: capacity})
	w := utWriter(t, l)

	before := utFileBytes(t, path)
	for _, n := range []int{0, -1, -65536} {
		_, err := w.Allocate(n)
		e := utIs(t, err, ErrEmptyFrame, "Allocate(0)")
		if e.Offset != 192 || e.Op != "allocate" || e.Path != path {
			t.Fatalf("Allocate(%d): error %+v, want op allocate at offset 192", n, e)
		}
	}
	utIs(t, w.Append(nil), ErrEmptyFrame, "Append(nil)")
	utIs(t, w.Append([]byte{}), ErrEmptyFrame, "Append(empty)")
	_, err := w.Allocate(65532)
	e := utIs(t, err, ErrFrameTooLarge, "Allocate(65532)")
	if e.Offset != 192 || ErrorCode(err) != "ERR_SHM_FRAME_TOO_LARGE" {
		t.Fatalf("Allocate(65532): %+v code %q", e, ErrorCode(err))
	}
	_, err = w.Allocate(1 << 40)
	utIs(t, err, ErrFrameTooLarge, "Allocate(1<<40)")
	if after := utFileBytes(t, path); !bytes.Equal(before, after) {
		t.Fatal("refused allocations changed the file")
	}

	// The largest frame fits, with lengths 65535 at both ends.
	big := utPayload(0, 65531)
	if err := w.Append(big); err != nil {
		t.Fatalf("Append(65531 bytes): %v", err)
	}
	utAppend(t, w, 0)
	raw := utFileBytes(t, path)
	if le.Uint16(raw[192:]) != 65535 || le.Uint16(raw[192+2+65531:]) != 65535 {
		t.Fatalf("max frame lengths %d/%d, want 65535", le.Uint16(raw[192:]), le.Uint16(raw[192+2+65531:]))
	}
	end := 192 + 65535

	// 1000 bytes are left: a 997-byte payload fills them exactly; 997 is ErrFull now.
	utAppend(t, w, 1, 500)
	before = utFileBytes(t, path)
	_, err = w.Allocate(997)
	e = utIs(t, err, ErrFull, "Allocate beyond the capacity")
	if !strings.Contains(err.Error(), "shared memory exhausted") {
		t.Fatalf("ErrFull message %q lacks \"shared memory exhausted\"", err)
	}
	if !strings.Contains(ErrFull.Error(), "shared memory exhausted") || ErrorCode(err) != "ERR_SHM_EXHAUSTED" {
		t.Fatalf("ErrFull = %q, code %q", ErrFull, ErrorCode(err))
	}
	if e.Offset != int64(end+504) {
		t.Fatalf("ErrFull offset %d, want %d (the allocation point)", e.Offset, end+504)
	}
	// Too large for even an empty log of this capacity, but within the format: ErrFrameTooLarge.
	small := utOpen(t, Options{Capacity: 4096})
	ws := utWriter(t, small)
	_, err = ws.Allocate(4096 - 192 - 3)
	utIs(t, err, ErrFrameTooLarge, "frame larger than an empty log")
	if _, err := ws.Allocate(4096 - 192 - 4); err != nil {
		t.Fatalf("frame filling an empty log exactly: %v", err)
	}
	if after := utFileBytes(t, path); !bytes.Equal(before, after) {
		t.Fatal("ErrFull changed the file")
	}

	// After the errors the writer goes on: the rest of the capacity still takes frames.
	utAppend(t, w, 2, 492)
	if l.Header().Size != capacity {
		t.Fatalf("size %d, want the capacity %d", l.Header().Size, capacity)
	}
	_, err = w.Allocate(1)
	utIs(t, err, ErrFull, "Allocate(1) in a full log")
	got := utReadAll(t, utIter(t, l))
	if len(got) != 3 || !bytes.Equal(got[0], big) || !bytes.Equal(got[1], utPayload(1, 500)) || !bytes.Equal(got[2], utPayload(2, 492)) {
		t.Fatalf("frames after the errors: %d", len(got))
	}
	// Errors in the middle of a batch of allocations do not lose the ones before.
	l2 := utOpen(t, Options{Capacity: 192 + 3*104})
	w2 := utWriter(t, l2)
	for i := range 4 {
		err := w2.Append(utPayload(i, 100))
		if i < 3 && err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			utIs(t, err, ErrFull, "fourth frame")
		}
	}
	utAppend(t, w2, 0)
	if got := utReadAll(t, utIter(t, l2)); len(got) != 3 || !bytes.Equal(got[2], utPayload(2, 100)) {
		t.Fatalf("frames allocated before ErrFull: %d", len(got))
	}
}

func TestWriterWideFrames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 1 << 20, WideFrames: true})
	if !l.Header().WideFrames || l.MaxPayload() != 1<<32-1-8 {
		t.Fatalf("wide log: header %+v, MaxPayload %d", l.Header(), l.MaxPayload())
	}
	w := utWriter(t, l)
	utAppend(t, w, 0, 70000, 65532, 1)
	_, err := w.Allocate(0)
	utIs(t, err, ErrEmptyFrame, "wide Allocate(0)")
	_, err = w.Allocate(1 << 20)
	utIs(t, err, ErrFrameTooLarge, "wide frame beyond the capacity")
	got := utReadAll(t, utIter(t, utReopen(t, path, false, false)))
	if len(got) != 3 || !bytes.Equal(got[0], utPayload(0, 70000)) || !bytes.Equal(got[1], utPayload(1, 65532)) || !bytes.Equal(got[2], utPayload(2, 1)) {
		t.Fatalf("wide frames read back: %d", len(got))
	}
	if l.Header().Size != 192+70008+65540+9 {
		t.Fatalf("wide size %d", l.Header().Size)
	}
}

func TestWriterUncommittedDiscarded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10, 20)
	reader := utIter(t, l)
	for i := range 3 {
		p, err := w.Allocate(50)
		if err != nil {
			t.Fatal(err)
		}
		for j := range p {
			p[j] = 0xee
		}
		_ = i
	}
	if got := utReadAll(t, reader); len(got) != 2 {
		t.Fatalf("%d frames visible with 3 allocated but uncommitted, want 2", len(got))
	}
	if err := w.Close(); !errors.Is(err, ErrUncommitted) || !strings.Contains(err.Error(), "3 frames (162 bytes)") {
		t.Fatalf("Close with 3 frames allocated: %v, want ErrUncommitted naming 3 frames (162 bytes)", err)
	}
	if h := l.Header(); h.Size != 192+14+24 {
		t.Fatalf("size %d after Close, want %d", h.Size, 192+14+24)
	}
	if f, err := reader.Next(); f != nil || err != nil {
		t.Fatalf("Next after the writer closed = %v, %v", f, err)
	}
	// A new writer resumes at the committed end, over the discarded frames.
	w2 := utWriter(t, l)
	utAppend(t, w2, 2, 7)
	f, err := reader.Next()
	if err != nil || !bytes.Equal(f, utPayload(2, 7)) || reader.Cursor() != 14+24+11 {
		t.Fatalf("frame after resume = %v, %v, cursor %d", f, err, reader.Cursor())
	}
	// Allocated frames also vanish when the Log closes with its writer open.
	if _, err := w2.Allocate(33); err != nil {
		t.Fatal(err)
	}
	l.Close()
	got := utReadAll(t, utIter(t, utReopen(t, path, false, false)))
	if len(got) != 3 || !bytes.Equal(got[2], utPayload(2, 7)) {
		t.Fatalf("after reopening: %d frames", len(got))
	}
	for _, f := range got {
		if len(f) == 50 || len(f) == 33 {
			t.Fatalf("an uncommitted frame is visible")
		}
	}
}

func TestWriterClosed(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	utAppend(t, w, 0, 5)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	closed := func(what string, err error) {
		t.Helper()
		utIs(t, err, ErrClosed, what)
	}
	_, err := w.Allocate(1)
	closed("Allocate", err)
	closed("Append", w.Append([]byte("x")))
	closed("Commit", w.Commit())
	closed("CommitTagged", w.CommitTagged(9))
	closed("Sync", w.Sync())
	closed("Close", w.Close())
	// The log is unaffected and the next writer works.
	w2 := utWriter(t, l)
	utAppend(t, w2, 1, 6)
	if got := utReadAll(t, utIter(t, l)); len(got) != 2 || !bytes.Equal(got[1], utPayload(1, 6)) {
		t.Fatalf("frames: %d", len(got))
	}
	// The closed writer still cannot touch the log while the new one is open.
	closed("Append after a new writer opened", w.Append([]byte("x")))
	if tag, ok, _ := l.CommitTag(); ok {
		t.Fatalf("CommitTag = %d after a closed writer's CommitTagged", tag)
	}
}

func TestWriterSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	if err := w.Sync(); err != nil {
		t.Fatalf("Sync of an empty log: %v", err)
	}
	utAppend(t, w, 0, 100)
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	raw := utFileBytes(t, path)
	if le.Uint64(raw[16:]) != 192+104 || !bytes.Equal(raw[194:294], utPayload(0, 100)) {
		t.Fatalf("file after Sync: size %d", le.Uint64(raw[16:]))
	}
}

func TestCommitTags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	if tag, ok, _ := l.CommitTag(); ok || tag != 0 {
		t.Fatalf("new log CommitTag = %d, %v", tag, ok)
	}
	w := utWriter(t, l)
	check := func(what string, wantTag uint64, wantOK bool) {
		t.Helper()
		tag, ok, _ := l.CommitTag()
		if ok != wantOK || (ok && tag != wantTag) {
			t.Fatalf("%s: CommitTag = %d, %v; want %d, %v", what, tag, ok, wantTag, wantOK)
		}
	}
	if err := w.Append([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := w.CommitTagged(100); err != nil {
		t.Fatal(err)
	}
	check("after CommitTagged(100)", 100, true)
	if l.Header().Size != 192+5 {
		t.Fatalf("CommitTagged did not commit: size %d", l.Header().Size)
	}
	// No new frames: the tag of the current end is replaced.
	if err := w.CommitTagged(101); err != nil {
		t.Fatal(err)
	}
	check("CommitTagged(101) with no new frames", 101, true)
	// Several tagged commits in a row alternate the slots; each read gives the latest.
	for i := range 5 {
		utAppendNoCommit(t, w, i, 3)
		if err := w.CommitTagged(uint64(200 + i)); err != nil {
			t.Fatal(err)
		}
		check("tagged commit in a row", uint64(200+i), true)
	}
	// A plain Commit moves the end past the tagged one.
	utAppend(t, w, 9, 4)
	check("after a plain Commit", 0, false)
	// A plain Commit with nothing to commit keeps the end, and so the tag of a tagged no-op after it.
	if err := w.CommitTagged(300); err != nil {
		t.Fatal(err)
	}
	check("CommitTagged(300) after a plain commit, no new frames", 300, true)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	check("empty plain Commit", 300, true)
	// The tag is in the file: another handle and a later writer see it.
	w.Close()
	check("after the writer closed", 300, true)
	l2 := utReopen(t, path, false, false)
	if tag, ok, _ := l2.CommitTag(); !ok || tag != 300 {
		t.Fatalf("reopened CommitTag = %d, %v", tag, ok)
	}
	w2 := utWriter(t, l)
	check("after a new writer opened", 300, true)
	utAppend(t, w2, 20, 1)
	check("new writer's plain commit", 0, false)
}

// utAppendNoCommit appends frames without committing them.
func utAppendNoCommit(t *testing.T, w *Writer, first int, sizes ...int) {
	t.Helper()
	for k, n := range sizes {
		if err := w.Append(utPayload(first+k, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// A writer that stored a tag for an end it never committed (it died between the two stores)
// must not leave that tag for the next writer to adopt when its own commit reaches the same end.
func TestCommitTagStaleSlotCleared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	utAppendNoCommit(t, w, 0, 10)
	if err := w.CommitTagged(1); err != nil {
		t.Fatal(err)
	}
	end := l.Header().Size
	// Simulate the crash: the dead writer allocated a 20-byte frame and filled the free slot
	// (the one not holding the committed end) with tag 666 for end+24, but never stored the end.
	utAppendNoCommit(t, w, 1, 20)
	free := offTag0End
	if u64at(l.mem, offTag0End).Load() == uint64(end) {
		free = offTag1End
	}
	u64at(l.mem, free+8).Store(666)
	u64at(l.mem, free).Store(uint64(end + 24))
	w.Close()
	check := func(what string, wantTag uint64, wantOK bool) {
		t.Helper()
		tag, ok, _ := l.CommitTag()
		if ok != wantOK || (ok && tag != wantTag) {
			t.Fatalf("%s: CommitTag = %d, %v; want %d, %v", what, tag, ok, wantTag, wantOK)
		}
	}
	check("after the crash", 1, true)

	w2 := utWriter(t, l)
	if got := u64at(l.mem, free).Load(); got != 0 {
		t.Fatalf("Writer left the stale slot's end at %d, want it cleared", got)
	}
	utAppend(t, w2, 1, 20) // reaches end+24, the stale slot's end, with a plain commit
	if l.Header().Size != end+24 {
		t.Fatalf("size %d, want %d", l.Header().Size, end+24)
	}
	check("plain commit reaching the dead writer's end", 0, false)
}

func TestCommitTagNodeFormat(t *testing.T) {
	path := utGoldenCopy(t)
	l := utReopen(t, path, true, false)
	w := utWriter(t, l)
	if err := w.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	before := l.Header().Size
	err := w.CommitTagged(5)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CommitTagged on a Node-made file: %v, want errors.ErrUnsupported", err)
	}
	if l.Header().Size != before {
		t.Fatalf("refused CommitTagged committed: size %d -> %d", before, l.Header().Size)
	}
	if tag, ok, _ := l.CommitTag(); ok {
		t.Fatalf("CommitTag on a Node-made file = %d, true", tag)
	}
	// Plain commits still work there.
	if err := w.Commit(); err != nil || l.Header().Size != before+5 {
		t.Fatalf("Commit: %v, size %d", err, l.Header().Size)
	}
}

func TestWriterZeroAllocs(t *testing.T) {
	l := utOpen(t, Options{Capacity: 1 << 20})
	w := utWriter(t, l)
	payload := utPayload(0, 32)
	allocs := testing.AllocsPerRun(200, func() {
		p, err := w.Allocate(32)
		if err != nil {
			panic(err)
		}
		copy(p, payload)
		if err := w.Commit(); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Allocate+Commit: %v allocations per frame, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(200, func() {
		if err := w.Append(payload); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Append: %v allocations per frame, want 0", allocs)
	}
	if err := w.CommitTagged(3); err != nil {
		t.Fatal(err)
	}
	if n := len(utReadAll(t, utIter(t, l))); n != 402 {
		t.Fatalf("%d frames written, want 402", n)
	}
}

// DebugChecks make the writer verify the frame it allocated last, and the committed end.
func TestWriterDebugChecks(t *testing.T) {
	for _, viaEnv := range []bool{false, true} {
		if viaEnv {
			t.Setenv("SHMIO_DEBUG", "1")
		}
		l := utOpen(t, Options{DebugChecks: !viaEnv})
		w := utWriter(t, l)
		p, err := w.Allocate(10)
		if err != nil {
			t.Fatal(err)
		}
		// Write two bytes past the payload, over the trailing length (what a buggy caller
		// using unsafe would do).
		copy(p, "0123456789")
		l.mem[192+12], l.mem[192+13] = 0xff, 0xff
		_, err = w.Allocate(5)
		e := utIs(t, err, ErrCorrupt, "Allocate after the previous frame was damaged")
		if e.Offset != 192 {
			t.Fatalf("offset %d, want 192 (the damaged frame)", e.Offset)
		}
		utIs(t, w.Commit(), ErrCorrupt, "Commit of a damaged frame")
		utIs(t, w.CommitTagged(1), ErrCorrupt, "CommitTagged of a damaged frame")
		if l.Header().Size != 192 {
			t.Fatalf("a damaged frame was committed (size %d)", l.Header().Size)
		}
		l.mem[192+12], l.mem[192+13] = 14, 0
		utAppend(t, w, 1, 5)

		// Someone moved the committed end under the writer (a second writer ignoring the lock).
		l.size.Store(l.size.Load() + 9)
		utAppendNoCommit(t, w, 2, 1)
		utIs(t, w.Commit(), ErrConflict, "Commit after the end moved")
		l.Close()
	}
}

func TestWriterSeal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	r := utReopen(t, path, false, false)
	w := utWriter(t, l)
	if l.Sealed() || r.Header().Sealed {
		t.Fatal("new log sealed")
	}
	utAppendNoCommit(t, w, 0, 8)
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	// Seal commits what was allocated, and every handle sees the flag.
	if !l.Sealed() || !r.Sealed() || !r.Header().Sealed {
		t.Fatalf("after Seal: Sealed %v/%v, header %+v", l.Sealed(), r.Sealed(), r.Header())
	}
	if got := utReadAll(t, utIter(t, r)); len(got) != 1 || !bytes.Equal(got[0], utPayload(0, 8)) {
		t.Fatalf("frames after Seal: %d", len(got))
	}
	w.Close()
	utIs(t, w.Seal(), ErrClosed, "Seal after Close")
	r.Close()
	if r.Sealed() {
		t.Fatal("closed log reports sealed")
	}
	// Reopened: still sealed.
	if !utReopen(t, path, false, false).Sealed() {
		t.Fatal("seal not stored in the file")
	}

	// Node-made files have no flags word.
	gl := utReopen(t, utGoldenCopy(t), true, false)
	gw := utWriter(t, gl)
	size := gl.Header().Size
	utAppendNoCommit(t, gw, 0, 3)
	if err := gw.Seal(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Seal on a Node-made file: %v, want errors.ErrUnsupported", err)
	}
	if gl.Sealed() || gl.Header().Size != size+7 {
		t.Fatalf("Node-made file: sealed %v, size %d (want the frame committed: %d)", gl.Sealed(), gl.Header().Size, size+7)
	}
}

// A committed end damaged after Open (by another process) stops a new writer with ErrCorrupt
// instead of letting it write outside the mapping.
func TestWriterDamagedCommittedEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := Open(Options{Path: path, Capacity: 4096, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, bad := range []uint64{1 << 63, 8, 4097} {
		l.size.Store(bad)
		if _, err := l.Writer(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("committed end %d: Writer() = %v, want ErrCorrupt", bad, err)
		}
	}
	l.size.Store(goHeaderSize)
	w, err := l.Writer()
	if err != nil {
		t.Fatalf("after repair: %v", err)
	}
	if err := w.Append([]byte("ok")); err != nil {
		t.Fatal(err)
	}
}
