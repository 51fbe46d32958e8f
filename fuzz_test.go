package shmio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/shmio/shmio/internal/testproc"
)

// FuzzOpen opens arbitrary bytes as a log file and reads it every way there is: forward with
// Next and with NextBatch, backward with Prev, Seek to the fuzzed cursor (from the start, the
// current position and the end), and, when mode asks, appends a frame with a Writer. Nothing may
// panic; every frame returned must lie inside the committed range of the mapping; errors must be
// the documented sentinels; forward and backward must agree when the frames are sound; a frame
// the writer appends must read back.
//
// mode bit 0: DebugChecks; bit 1: append with a Writer; bits 2-4 and 5-7: NextBatch limits.
//
//	go test -run '^$' -fuzz FuzzOpen -fuzztime 30s .
func FuzzOpen(f *testing.F) {
	// The seeds are the files in testdata/fuzz/FuzzOpen (see TestXPWriteFuzzSeeds).
	// One file per process, rewritten for each input: creating and removing a file per input
	// cost more than the rest of an execution, and minimizing an input takes many executions.
	// Inputs run one at a time in a process.
	path := filepath.Join(testproc.ShmDir(f), "fuzz.log")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { file.Close() })
	f.Fuzz(func(t *testing.T, data []byte, seek int64, mode uint8) {
		if err := file.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := file.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		xpFuzzCheck(t, path, data, seek, mode)
	})
}

// xpFrame is a frame a reader returned, with the cursor it started at.
type xpFrame struct {
	cursor int64
	p      []byte
}

func xpFuzzCheck(t *testing.T, path string, data []byte, seek int64, mode uint8) {
	debug := mode&1 != 0
	l, err := Open(Options{Path: path, DebugChecks: debug})
	if err != nil {
		if !errors.Is(err, ErrBadHeader) {
			t.Fatalf("Open: %v, want ErrBadHeader or success", err)
		}
		return
	}
	defer l.Close()
	h := l.Header()
	base, end := h.DataOffset, h.Size
	if base < h.HeaderSize || end < base || end > int64(len(data)) || h.Capacity != int64(len(data)) {
		t.Fatalf("header %+v does not fit a %d-byte file", h, len(data))
	}
	lsize := int64(l.lo.lenSize)
	committed := end - base

	// inside checks that frame p, returned at cursor c, lies in the committed range and is the
	// payload of a frame starting at c.
	inside := func(op string, c int64, p []byte) {
		off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(p))) - uintptr(unsafe.Pointer(unsafe.SliceData(l.mem))))
		if len(p) == 0 || cap(p) != len(p) || off != base+c+lsize || off+int64(len(p))+lsize > end {
			t.Fatalf("%s: frame of %d bytes (cap %d) at file offset %d, cursor %d: outside the committed range [%d, %d)",
				op, len(p), cap(p), off, c, base, end)
		}
	}
	isCorrupt := func(op string, err error) {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", op, err)
		}
	}

	// Forward with Next.
	it, err := l.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var fwd []xpFrame
	var fwdErr error
	symmetric := true // every frame's trailing length equals its leading one
	for {
		c := it.Cursor()
		p, err := it.Next()
		if err != nil {
			isCorrupt("Next", err)
			if it.Cursor() != c {
				t.Fatalf("Next moved the cursor from %d to %d on error %v", c, it.Cursor(), err)
			}
			fwdErr = err
			break
		}
		if p == nil {
			break
		}
		inside("Next", c, p)
		if it.Cursor() != c+int64(len(p))+2*lsize {
			t.Fatalf("Next: cursor %d after a %d-byte frame at %d", it.Cursor(), len(p), c)
		}
		if trailerLen(l.mem, int(it.Cursor()+base), int(lsize)) != len(p)+int(2*lsize) {
			symmetric = false
		}
		fwd = append(fwd, xpFrame{c, p})
	}
	if fwdErr == nil && it.Cursor() != committed {
		t.Fatalf("Next stopped at cursor %d without error, committed size %d", it.Cursor(), committed)
	}
	if debug && !symmetric {
		t.Fatal("DebugChecks: Next returned a frame whose lengths differ")
	}

	// Forward with NextBatch: the same frames, the same error at the same place.
	bo := BatchOptions{
		MaxFrames: []int{0, 1, 2, 3, 7, 64, 1000, -1}[mode>>2&7],
		MaxBytes:  []int{0, 1, 5, 16, 100, 4096, 1 << 20, -1}[mode>>5&7],
	}
	it2, err := l.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var batch [][]byte
	i := 0
	for {
		c := it2.Cursor()
		batch, err = it2.NextBatch(batch[:0], bo)
		for _, p := range batch {
			if i >= len(fwd) || unsafe.SliceData(p) != unsafe.SliceData(fwd[i].p) || len(p) != len(fwd[i].p) {
				t.Fatalf("NextBatch(%+v) frame %d (%d bytes) differs from Next's", bo, i, len(p))
			}
			i++
		}
		if err != nil {
			isCorrupt("NextBatch", err)
			if fwdErr == nil || i != len(fwd) {
				t.Fatalf("NextBatch error %v after %d frames; Next: %v after %d", err, i, fwdErr, len(fwd))
			}
			if it2.Cursor() != it.Cursor() {
				t.Fatalf("NextBatch stopped at cursor %d, Next at %d", it2.Cursor(), it.Cursor())
			}
			break
		}
		if len(batch) == 0 {
			if fwdErr != nil || i != len(fwd) || it2.Cursor() != committed {
				t.Fatalf("NextBatch ended at cursor %d after %d frames; Next: %d frames, %v", it2.Cursor(), i, len(fwd), fwdErr)
			}
			break
		}
		if it2.Cursor() <= c {
			t.Fatal("NextBatch returned frames without moving the cursor")
		}
	}

	// Backward with Prev from the committed end.
	it3, err := l.NewIterator(IteratorOptions{StartCursor: committed})
	if err != nil {
		t.Fatalf("NewIterator at the committed end %d: %v", committed, err)
	}
	var back []xpFrame
	for len(back) <= len(fwd)+1 { // a garbage trailer chain cannot be longer than the forward one
		p, err := it3.Prev()
		if err != nil {
			isCorrupt("Prev", err)
			if fwdErr == nil && symmetric {
				t.Fatalf("Prev failed after %d frames on a log Next read whole: %v", len(back), err)
			}
			break
		}
		if p == nil {
			if it3.Cursor() != 0 {
				t.Fatalf("Prev returned nil, nil at cursor %d", it3.Cursor())
			}
			break
		}
		inside("Prev", it3.Cursor(), p)
		back = append(back, xpFrame{it3.Cursor(), p})
	}
	if fwdErr == nil && symmetric {
		if len(back) != len(fwd) {
			t.Fatalf("Prev walked %d frames, Next %d", len(back), len(fwd))
		}
		for i, b := range back {
			if f := fwd[len(fwd)-1-i]; f.cursor != b.cursor || len(f.p) != len(b.p) {
				t.Fatalf("Prev frame %d at cursor %d (%d bytes), Next had it at %d (%d bytes)", i, b.cursor, len(b.p), f.cursor, len(f.p))
			}
		}
	}

	// Every frame start Next found is a valid cursor when the frames are sound.
	if fwdErr == nil && symmetric {
		for i := 0; i < len(fwd); i += 1 + len(fwd)/32 {
			if got, err := it3.Seek(fwd[i].cursor, io.SeekStart); err != nil || got != fwd[i].cursor {
				t.Fatalf("Seek to frame start %d: %d, %v", fwd[i].cursor, got, err)
			}
		}
	}

	// Seek to the fuzzed cursor three ways, then read from there.
	starts := map[int64]bool{0: true, committed: true}
	for _, f := range fwd {
		starts[f.cursor] = true
	}
	for _, whence := range []int{io.SeekStart, io.SeekCurrent, io.SeekEnd} {
		it4, err := l.NewIterator(IteratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var target int64
		switch whence {
		case io.SeekStart:
			target = seek
		case io.SeekCurrent:
			if len(fwd) > 0 {
				it4.Seek(fwd[len(fwd)/2].cursor, io.SeekStart)
			}
			target = it4.Cursor() + seek
		case io.SeekEnd:
			target = committed - seek
		}
		from := it4.Cursor()
		offset := seek
		if whence == io.SeekEnd {
			offset = -seek
		}
		got, err := it4.Seek(offset, whence)
		if err != nil {
			if !errors.Is(err, ErrCursor) {
				t.Fatalf("Seek(%d, %d): %v, want ErrCursor", offset, whence, err)
			}
			if got != from || it4.Cursor() != from {
				t.Fatalf("failed Seek moved the cursor from %d to %d", from, it4.Cursor())
			}
			if fwdErr == nil && symmetric && starts[target] {
				t.Fatalf("Seek to frame start %d failed: %v", target, err)
			}
			continue
		}
		if got != target || it4.Cursor() != target || target < 0 || target > committed {
			t.Fatalf("Seek(%d, %d) = %d, cursor %d; want %d within [0, %d]", offset, whence, got, it4.Cursor(), target, committed)
		}
		if debug && fwdErr == nil && !starts[target] {
			t.Fatalf("DebugChecks: Seek accepted cursor %d, which is not a frame start", target)
		}
		c := it4.Cursor()
		if p, err := it4.Next(); err != nil {
			isCorrupt("Next after Seek", err)
		} else if p != nil {
			inside("Next after Seek", c, p)
		}
		it4.Seek(target, io.SeekStart)
		if p, err := it4.Prev(); err != nil {
			isCorrupt("Prev after Seek", err)
		} else if p != nil {
			inside("Prev after Seek", it4.Cursor(), p)
		}
	}

	// A writer appends after the committed end, whatever came before, and its frame reads back.
	if mode&2 == 0 {
		return
	}
	it5, err := l.NewIterator(IteratorOptions{StartCursor: committed})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := Open(Options{Path: path, Writable: true, DebugChecks: debug})
	if err != nil {
		t.Fatalf("Open writable a file that opened read-only: %v", err)
	}
	defer wl.Close()
	w, err := wl.Writer()
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrSealed) {
		return // a committed end that is not a frame's end, or a sealed log, takes no writer
	}
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{0xa5}, 1+int(uint64(seek)%100))
	if err := w.Append(payload); err != nil {
		if !errors.Is(err, ErrFull) && !errors.Is(err, ErrFrameTooLarge) && !(debug && errors.Is(err, ErrCorrupt)) {
			t.Fatalf("Append %d bytes at %d of %d: %v", len(payload), end, len(data), err)
		}
		return
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := it5.Next()
	if err != nil || !bytes.Equal(p, payload) {
		t.Fatalf("frame appended at cursor %d reads back as %d bytes, %v", committed, len(p), err)
	}
	if p, err := it5.Prev(); err != nil || !bytes.Equal(p, payload) || it5.Cursor() != committed {
		t.Fatalf("Prev over the appended frame: %d bytes, %v, cursor %d", len(p), err, it5.Cursor())
	}
}

// xpFuzzSeed is one seed input of FuzzOpen.
type xpFuzzSeed struct {
	name string
	data []byte
	seek int64
	mode uint8
}

// xpFuzzSeeds builds the seed inputs: valid logs in each format made by the Writer, the head
// of the golden Node file, and damaged files. TestXPWriteFuzzSeeds stores them as the committed
// corpus in testdata/fuzz/FuzzOpen.
func xpFuzzSeeds(tb testing.TB) []xpFuzzSeed {
	dir := tb.TempDir()
	n := 0
	// made writes frames of the given sizes with a Writer and returns the file's bytes.
	made := func(capacity int64, wide bool, sizes []int, commitAfter int) []byte {
		n++
		path := filepath.Join(dir, fmt.Sprint("seed", n))
		l, err := Open(Options{Path: path, Capacity: capacity, Writable: true, WideFrames: wide})
		if err != nil {
			tb.Fatal(err)
		}
		w, err := l.Writer()
		if err != nil {
			tb.Fatal(err)
		}
		for i, s := range sizes {
			p, err := w.Allocate(s)
			if err != nil {
				tb.Fatal(err)
			}
			for j := range p {
				p[j] = byte(i*31 + j*7)
			}
			if i+1 == commitAfter {
				w.Commit()
			}
		}
		w.Close()
		l.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	sizes := []int{1, 2, 3, 7, 30, 100, 1, 250, 12, 64}
	var seeds []xpFuzzSeed
	add := func(name string, data []byte, seek int64, mode uint8) {
		seeds = append(seeds, xpFuzzSeed{name, data, seek, mode})
	}

	valid := made(1024, false, sizes, len(sizes))
	add("valid", valid, 5, 0)
	add("valid-debug-write", valid, 11, 0b001_011_11)
	add("valid-batch", valid, 21, 0b011_010_00)
	add("valid-uncommitted-tail", made(1024, false, sizes, 6), 26, 0b100_101_01)
	wide := made(1024, true, sizes, len(sizes))
	add("wide", wide, 9, 0b010_110_01)
	add("wide-write", wide, 60, 0b111_000_10)
	add("full", made(192+3*(100+4), false, []int{100, 100, 100}, 3), 104, 0b001_001_11)
	add("empty", made(512, false, nil, 0), 0, 0b000_000_11)

	// A Node-made file: the 24-byte header, then frames.
	node := make([]byte, 600)
	le.PutUint64(node[0:], 24)
	le.PutUint64(node[8:], 24)
	pos := 24
	for i, s := range sizes[:7] {
		le.PutUint16(node[pos:], uint16(s+4))
		for j := range s {
			node[pos+2+j] = byte(i*31 + j*7)
		}
		le.PutUint16(node[pos+2+s:], uint16(s+4))
		pos += s + 4
	}
	le.PutUint64(node[16:], uint64(pos))
	add("node", node, 5, 0b000_011_10)

	// The first 2 KB of the golden file Node shmio 1.0.4 wrote, the committed end moved back
	// to the last frame boundary that fits. (Seeds stay small: the fuzzer minimizes each new
	// input it finds by removing bytes, which costs executions quadratic in the input's size.)
	if golden, err := os.ReadFile(filepath.Join("testdata", "shmio-node-v1.0.4.log")); err == nil && len(golden) >= 2048 {
		head := bytes.Clone(golden[:2048])
		end := int(le.Uint64(head[16:]))
		p := int(le.Uint64(head[8:]))
		for p < end && p+2 <= len(head) {
			fl := int(le.Uint16(head[p:]))
			if fl < 5 || p+fl > len(head) {
				break
			}
			p += fl
		}
		le.PutUint64(head[16:], uint64(p))
		add("golden-head", head, 0, 0b000_100_01)
		add("golden-head-write", head, 60, 0b101_000_10)
	}

	// Damaged files.
	add("zero-1k", make([]byte, 1024), 0, 0)
	add("zero-small", make([]byte, 23), 0, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 2048)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	add("garbage", garbage, 77, 0b010_010_01)
	garbageBody := bytes.Clone(garbage)
	copy(garbageBody, valid[:goHeaderSize])
	le.PutUint64(garbageBody[16:], uint64(len(garbageBody)))
	add("garbage-body", garbageBody, 40, 0b011_011_00)

	asym := bytes.Clone(valid)
	// Frame 4 (30 bytes) starts after frames of 1, 2, 3 and 7 bytes: give it a different trailer.
	f4 := goHeaderSize + (1 + 4) + (2 + 4) + (3 + 4) + (7 + 4)
	le.PutUint16(asym[f4+2+30:], 30+4+2)
	add("asymmetric", asym, int64(f4-goHeaderSize), 0b001_001_00)
	add("asymmetric-debug", asym, int64(f4-goHeaderSize), 0b001_001_01)
	asymLead := bytes.Clone(valid)
	le.PutUint16(asymLead[f4:], 30+4-2)
	add("asymmetric-lead", asymLead, int64(f4-goHeaderSize+30+4), 0b010_000_00)

	short := bytes.Clone(valid)
	le.PutUint16(short[f4:], 3) // below the smallest frame
	add("short-frame", short, 0, 0b000_000_01)
	zeroLen := bytes.Clone(valid)
	le.PutUint16(zeroLen[f4:], 0)
	le.PutUint16(zeroLen[f4+2+30:], 0)
	add("zero-length-frame", zeroLen, int64(f4-goHeaderSize), 0b000_000_00)
	long := bytes.Clone(valid)
	le.PutUint16(long[f4:], 0xffff) // runs past the committed end
	add("frame-past-end", long, 0, 0b011_000_00)

	truncated := bytes.Clone(valid[:400]) // committed end beyond the file
	add("truncated", truncated, 0, 0)
	badEnd := bytes.Clone(valid)
	le.PutUint64(badEnd[16:], 7) // committed end before the data offset
	add("end-before-data", badEnd, 0, 0)
	hugeHdr := bytes.Clone(valid)
	le.PutUint64(hugeHdr[0:], 1<<63)
	add("huge-header-size", hugeHdr, 0, 0)
	badVersion := bytes.Clone(valid)
	le.PutUint32(badVersion[offVersion:], 99)
	add("bad-version", badVersion, 0, 0)
	badFlags := bytes.Clone(valid)
	le.PutUint32(badFlags[offFlags:], 1<<7)
	add("unknown-flags", badFlags, 0, 0)
	wideFlag := bytes.Clone(valid) // u16 frames read as u32 ones
	le.PutUint32(wideFlag[offFlags:], flagWide)
	add("wide-flag-on-u16-frames", wideFlag, 5, 0b001_001_01)
	oddOffset := bytes.Clone(node)
	le.PutUint64(oddOffset[8:], 25) // data offset not at a frame start
	add("node-odd-data-offset", oddOffset, 1, 0b000_000_11)
	return seeds
}

// TestXPWriteFuzzSeeds regenerates the committed seed corpus of FuzzOpen:
//
//	SHMIO_WRITE_FUZZ_SEEDS=1 go test -run TestXPWriteFuzzSeeds .
func TestXPWriteFuzzSeeds(t *testing.T) {
	writeSeedCorpus(t, "FuzzOpen", func() []encodedSeed {
		var out []encodedSeed
		for _, s := range xpFuzzSeeds(t) {
			b := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\nint64(%d)\nbyte(%q)\n", s.data, s.seek, s.mode)
			out = append(out, encodedSeed{s.name, b})
		}
		return out
	})
}

// encodedSeed is one input of a seed corpus, in the "go test fuzz v1" encoding.
type encodedSeed struct {
	name string
	b    []byte
}

// writeSeedCorpus replaces testdata/fuzz/TARGET/seed-* with the seeds, when
// SHMIO_WRITE_FUZZ_SEEDS=1; otherwise it skips the test. Other inputs there (reproducers of
// fixed bugs) stay.
func writeSeedCorpus(t *testing.T, target string, seeds func() []encodedSeed) {
	if os.Getenv("SHMIO_WRITE_FUZZ_SEEDS") != "1" {
		t.Skipf("set SHMIO_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/%s/seed-*", target)
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	for _, p := range old {
		os.Remove(p)
	}
	for _, s := range seeds() {
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), s.b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
