package shmio

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The golden file was written by Node shmio 1.0.4 itself (see testdata/ and
// ../shared/compat/README.md): 220 committed frames with payload byte j of frame i equal to
// (i*31 + j*7) & 0xff, then 3 allocated but uncommitted 50-byte frames of 0xee.
const (
	goldenLog  = "testdata/shmio-node-v1.0.4.log"
	goldenGz   = "testdata/shmio-node-v1.0.4.log.gz"
	goldenJSON = "testdata/shmio-node-v1.0.4.log.json"
)

type utGoldenInfo struct {
	Capacity    int64  `json:"capacity"`
	Frames      []int  `json:"frames"`
	Uncommitted int    `json:"uncommitted"`
	HeaderSize  string `json:"headerSize"`
	DataOffset  string `json:"dataOffset"`
	Committed   string `json:"committedSizeAbsolute"`
}

func utGolden(t testing.TB) (info utGoldenInfo, headerSize, dataOffset, committed int64) {
	t.Helper()
	b, err := os.ReadFile(goldenJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	headerSize, dataOffset, committed = num(info.HeaderSize), num(info.DataOffset), num(info.Committed)
	if len(info.Frames) != 220 || info.Uncommitted != 3 || headerSize != 24 || dataOffset != 24 || committed != 102808 {
		t.Fatalf("unexpected golden description: %d frames, %d uncommitted, header %d/%d, committed %d",
			len(info.Frames), info.Uncommitted, headerSize, dataOffset, committed)
	}
	return info, headerSize, dataOffset, committed
}

// utGoldenCopy copies the golden file into a temporary directory: tests never touch testdata.
func utGoldenCopy(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(goldenLog)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "golden.log")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// utNodeDecode decodes a log using only Node shmio's rules (compat README): u64 headerSize,
// dataOffset and absolute committed end at 0/8/16, then packed [u16 len][payload][u16 len]
// frames with len = payload + 4. It is the reference the Go-written files are checked against.
func utNodeDecode(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	if len(raw) < 24 {
		t.Fatalf("node decode: %d bytes", len(raw))
	}
	hs, do, size := le.Uint64(raw[0:]), le.Uint64(raw[8:]), le.Uint64(raw[16:])
	// Node shmio resets a header field that is 0 or beyond the file: none may be.
	if hs == 0 || do == 0 || size == 0 || hs > uint64(len(raw)) || do > uint64(len(raw)) || size > uint64(len(raw)) || do < hs || size < do {
		t.Fatalf("node decode: header %d/%d/%d in a %d-byte file", hs, do, size, len(raw))
	}
	var frames [][]byte
	for off := do; off < size; {
		if size-off < 4 {
			t.Fatalf("node decode: %d stray bytes at %d", size-off, off)
		}
		n := uint64(le.Uint16(raw[off:]))
		if n < 5 || off+n > size {
			t.Fatalf("node decode: frame length %d at %d (committed end %d)", n, off, size)
		}
		if tr := uint64(le.Uint16(raw[off+n-2:])); tr != n {
			t.Fatalf("node decode: frame at %d: leading length %d, trailing %d", off, n, tr)
		}
		frames = append(frames, raw[off+2:off+n-2])
		off += n
	}
	return frames
}

func TestGoldenFileMatchesGzip(t *testing.T) {
	f, err := os.Open(goldenGz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	unz, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(goldenLog)
	if err != nil {
		t.Fatal(err)
	}
	info, _, _, _ := utGolden(t)
	if !bytes.Equal(unz, raw) || int64(len(raw)) != info.Capacity || len(raw) != 262144 {
		t.Fatalf("testdata log (%d bytes) is not the gunzipped golden file (%d bytes)", len(raw), len(unz))
	}
	// The reference decoder agrees with the JSON, so it can judge Go-written files.
	frames := utNodeDecode(t, raw)
	if len(frames) != len(info.Frames) {
		t.Fatalf("reference decoder: %d frames, want %d", len(frames), len(info.Frames))
	}
	for i, f := range frames {
		if !bytes.Equal(f, utPayload(i, info.Frames[i])) {
			t.Fatalf("reference decoder: frame %d differs", i)
		}
	}
}

func TestGoldenRead(t *testing.T) {
	info, _, _, committed := utGolden(t)
	path := utGoldenCopy(t)
	raw := utFileBytes(t, path)
	// The 3 uncommitted frames are really there past the committed end: readers must skip them.
	for k, off := 0, int(committed); k < info.Uncommitted; k++ {
		if le.Uint16(raw[off:]) != 54 || le.Uint16(raw[off+52:]) != 54 || !bytes.Equal(raw[off+2:off+52], bytes.Repeat([]byte{0xee}, 50)) {
			t.Fatalf("uncommitted frame %d not found at %d", k, off)
		}
		off += 54
	}
	// Frame starts, as cursors.
	starts := make([]int64, len(info.Frames)+1)
	for i, n := range info.Frames {
		starts[i+1] = starts[i] + int64(n) + 4
	}
	if starts[len(info.Frames)] != committed-24 {
		t.Fatalf("frames end at cursor %d, committed %d", starts[len(info.Frames)], committed-24)
	}

	for _, debug := range []bool{false, true} {
		l := utReopen(t, path, false, debug)
		h := l.Header()
		if h.HeaderSize != 24 || h.DataOffset != 24 || h.Size != committed || h.Capacity != 262144 ||
			!h.NodeFormat || h.WideFrames || h.ID != 0 || h.Version != 0 || h.WriterPID != 0 {
			t.Fatalf("golden header %+v", h)
		}
		if l.MaxPayload() != 65531 {
			t.Fatalf("MaxPayload %d", l.MaxPayload())
		}
		it := utIter(t, l)
		if it.End() != committed-24 {
			t.Fatalf("End %d, want %d", it.End(), committed-24)
		}
		for i, n := range info.Frames {
			if it.Cursor() != starts[i] {
				t.Fatalf("cursor before frame %d: %d, want %d", i, it.Cursor(), starts[i])
			}
			f, err := it.Next()
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if !bytes.Equal(f, utPayload(i, n)) {
				t.Fatalf("frame %d: %d bytes, payload differs from the rule (want %d bytes)", i, len(f), n)
			}
		}
		// None of the uncommitted frames.
		for range 3 {
			if f, err := it.Next(); f != nil || err != nil {
				t.Fatalf("Next past the committed end = %d bytes, %v", len(f), err)
			}
		}
		if b, err := it.NextBatch(nil, BatchOptions{}); len(b) != 0 || err != nil {
			t.Fatalf("NextBatch past the committed end = %d frames, %v", len(b), err)
		}
		// Backward through all of them.
		for i := len(info.Frames) - 1; i >= 0; i-- {
			f, err := it.Prev()
			if err != nil {
				t.Fatalf("Prev to frame %d: %v", i, err)
			}
			if !bytes.Equal(f, utPayload(i, info.Frames[i])) || it.Cursor() != starts[i] {
				t.Fatalf("Prev to frame %d: %d bytes at cursor %d", i, len(f), it.Cursor())
			}
		}
		if f, err := it.Prev(); f != nil || err != nil || it.Cursor() != 0 {
			t.Fatalf("Prev at the start = %v, %v, cursor %d", f, err, it.Cursor())
		}
		// Seek to each frame start, in each whence, and read that frame.
		end := starts[len(info.Frames)]
		for i, n := range info.Frames {
			want := utPayload(i, n)
			for whence := range 3 {
				off := []int64{starts[i], starts[i] - it.Cursor(), starts[i] - end}[whence]
				c, err := it.Seek(off, whence)
				if err != nil || c != starts[i] || it.Cursor() != starts[i] {
					t.Fatalf("Seek(%d, %d) to frame %d = %d, %v", off, whence, i, c, err)
				}
				if f, err := it.Next(); err != nil || !bytes.Equal(f, want) {
					t.Fatalf("Next after Seek to frame %d: %v", i, err)
				}
			}
			// A resumed iterator starts there too.
			it2, err := l.NewIterator(IteratorOptions{StartCursor: starts[i]})
			if err != nil {
				t.Fatalf("StartCursor %d: %v", starts[i], err)
			}
			if f, _ := it2.Next(); !bytes.Equal(f, want) {
				t.Fatalf("iterator started at frame %d read something else", i)
			}
		}
		// In batches: the defaults give 64 frames at most.
		it.Seek(0, 0)
		var sizes []int
		var all [][]byte
		for {
			b, err := it.NextBatch(nil, BatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 {
				break
			}
			sizes = append(sizes, len(b))
			all = append(all, b...)
		}
		if len(all) != 220 || len(sizes) != 4 || sizes[0] != 64 || sizes[3] != 220-3*64 {
			t.Fatalf("batches %v", sizes)
		}
		for i, f := range all {
			if !bytes.Equal(f, utPayload(i, info.Frames[i])) {
				t.Fatalf("batched frame %d differs", i)
			}
		}
		l.Close()
	}
}

// Offsets inside frames are refused by Seek (ErrCursor, cursor unchanged). With DebugChecks
// Seek walks the frame chain, so it is exact whatever the payload bytes look like.
func TestGoldenSeekInsideFrames(t *testing.T) {
	info, _, _, committed := utGolden(t)
	path := utGoldenCopy(t)
	isStart, nearStart := map[int64]bool{}, map[int64]bool{}
	var c int64
	for _, n := range info.Frames {
		isStart[c] = true
		for d := int64(-3); d <= 3; d++ {
			nearStart[c+d] = true
		}
		c += int64(n) + 4
	}
	end := committed - 24
	for _, debug := range []bool{true, false} {
		l := utReopen(t, path, false, debug)
		it := utIter(t, l)
		home := int64(0)
		for i := range 10 {
			home += int64(info.Frames[i]) + 4
		}
		if _, err := it.Seek(home, 0); err != nil { // the start of frame 10
			t.Fatal(err)
		}
		accepted := 0
		for off := int64(1); off < end; off++ {
			// Every offset near a frame boundary or in the first frames, and every 5th beyond
			// (each refusal formats an error: all 100k of them are slow under -race).
			if isStart[off] || !(nearStart[off] || off < 4000 || off%5 == 0) {
				continue
			}
			got, err := it.Seek(off, 0)
			if err == nil {
				accepted++
				if debug {
					t.Fatalf("DebugChecks: Seek(%d) inside a frame accepted", off)
				}
				it.Seek(home, 0)
				continue
			}
			if !errors.Is(err, ErrCursor) || got != home || it.Cursor() != home {
				t.Fatalf("Seek(%d) = %d, %v; want ErrCursor with the cursor left at %d", off, got, err, home)
			}
		}
		if !debug && accepted > 0 {
			t.Errorf("without DebugChecks, Seek accepted %d offsets inside frames of the golden file", accepted)
		}
		l.Close()
	}
}

func TestGoldenAppend(t *testing.T) {
	info, _, _, committed := utGolden(t)
	path := utGoldenCopy(t)
	orig := utFileBytes(t, path)
	l := utReopen(t, path, true, false)
	if !l.Header().NodeFormat {
		t.Fatal("golden file not opened in Node format")
	}
	w := utWriter(t, l)
	more := []int{1, 2, 3, 4, 5, 100, 1000, 65531, 7, 4096, 50, 50, 50}
	utAppend(t, w, len(info.Frames), more[:7]...)
	utAppend(t, w, len(info.Frames)+7, more[7:]...)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l.Close()

	raw := utFileBytes(t, path)
	// Old bytes untouched: the header except the committed end, and every committed frame.
	if !bytes.Equal(raw[:16], orig[:16]) || !bytes.Equal(raw[24:committed], orig[24:committed]) {
		t.Fatal("appending changed bytes of the Node-written header or frames")
	}
	newEnd := committed
	for _, n := range more {
		newEnd += int64(n) + 4
	}
	if got := int64(le.Uint64(raw[16:])); got != newEnd {
		t.Fatalf("committed end %d, want %d", got, newEnd)
	}
	if !bytes.Equal(raw[newEnd:], orig[newEnd:]) {
		t.Fatal("appending changed bytes past the new committed end")
	}
	// The reference decoder (Node's rules) reads old and new frames.
	frames := utNodeDecode(t, raw)
	all := append(append([]int{}, info.Frames...), more...)
	if len(frames) != len(all) {
		t.Fatalf("reference decoder: %d frames, want %d", len(frames), len(all))
	}
	// And so does this package, forward and backward.
	r := utReopen(t, path, false, true)
	it := utIter(t, r)
	got := utReadAll(t, it)
	if len(got) != len(all) {
		t.Fatalf("read %d frames, want %d", len(got), len(all))
	}
	for i, n := range all {
		if !bytes.Equal(got[i], utPayload(i, n)) || !bytes.Equal(frames[i], got[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		f, err := it.Prev()
		if err != nil || !bytes.Equal(f, utPayload(i, all[i])) {
			t.Fatalf("Prev frame %d: %v", i, err)
		}
	}
}

// A file written here in the default (compatible) format is laid out exactly as Node shmio
// expects, byte by byte, so Node shmio can read it.
func TestGoWrittenFileNodeLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 200000})
	w := utWriter(t, l)
	sizes := []int{1, 2, 3, 100, 65531, 7, 255, 256}
	utAppend(t, w, 0, sizes...)
	if _, err := w.Allocate(40); err != nil { // allocated, not committed: outside the layout
		t.Fatal(err)
	}
	raw := utFileBytes(t, path)
	if len(raw) != 200000 {
		t.Fatalf("file is %d bytes, want the capacity", len(raw))
	}
	// Node's three header words, little-endian u64.
	if got := le.Uint64(raw[0:]); got != 192 {
		t.Fatalf("headerSize at 0 = %d, want 192", got)
	}
	if got := le.Uint64(raw[8:]); got != 192 {
		t.Fatalf("dataOffset at 8 = %d, want 192", got)
	}
	want := uint64(192)
	for _, n := range sizes {
		want += uint64(n) + 4
	}
	if got := le.Uint64(raw[16:]); got != want {
		t.Fatalf("committed end at 16 = %d, want %d (absolute)", got, want)
	}
	// The extension Node ignores.
	if string(raw[24:32]) != "SHMIOGO\x00" || le.Uint32(raw[32:]) != 1 || le.Uint32(raw[36:]) != 0 {
		t.Fatalf("extension: magic %q version %d flags %d", raw[24:32], le.Uint32(raw[32:]), le.Uint32(raw[36:]))
	}
	// Packed frames, u16 lengths = payload + 4 on both sides.
	off := 192
	for i, n := range sizes {
		if got := int(le.Uint16(raw[off:])); got != n+4 {
			t.Fatalf("frame %d: leading u16 at %d = %d, want %d", i, off, got, n+4)
		}
		if !bytes.Equal(raw[off+2:off+2+n], utPayload(i, n)) {
			t.Fatalf("frame %d: payload at %d differs", i, off+2)
		}
		if got := int(le.Uint16(raw[off+2+n:])); got != n+4 {
			t.Fatalf("frame %d: trailing u16 at %d = %d, want %d", i, off+2+n, got, n+4)
		}
		off += n + 4
	}
	if uint64(off) != want {
		t.Fatalf("frames end at %d, committed end %d", off, want)
	}
	frames := utNodeDecode(t, raw)
	if len(frames) != len(sizes) {
		t.Fatalf("reference decoder: %d frames", len(frames))
	}
	for i, n := range sizes {
		if !bytes.Equal(frames[i], utPayload(i, n)) {
			t.Fatalf("reference decoder: frame %d differs", i)
		}
	}
}

func TestWideFileLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 300000, WideFrames: true})
	w := utWriter(t, l)
	sizes := []int{1, 65532, 100000, 9}
	utAppend(t, w, 0, sizes...)
	raw := utFileBytes(t, path)
	// Fenced (issue 11): Node's dataOffset and size words hold the file size; frames start at
	// headerSize and the committed end is at offset 120.
	if le.Uint64(raw[0:]) != 192 || le.Uint64(raw[8:]) != 300000 || le.Uint64(raw[16:]) != 300000 || le.Uint32(raw[36:]) != flagWide|flagNodeFence {
		t.Fatalf("wide header: %d/%d/%d flags %#x", le.Uint64(raw[0:]), le.Uint64(raw[8:]), le.Uint64(raw[16:]), le.Uint32(raw[36:]))
	}
	off := 192
	for i, n := range sizes {
		if got := int(le.Uint32(raw[off:])); got != n+8 {
			t.Fatalf("wide frame %d: leading u32 at %d = %d, want %d", i, off, got, n+8)
		}
		if !bytes.Equal(raw[off+4:off+4+n], utPayload(i, n)) {
			t.Fatalf("wide frame %d: payload differs", i)
		}
		if got := int(le.Uint32(raw[off+4+n:])); got != n+8 {
			t.Fatalf("wide frame %d: trailing u32 = %d, want %d", i, got, n+8)
		}
		off += n + 8
	}
	if le.Uint64(raw[120:]) != uint64(off) {
		t.Fatalf("committed end %d, want %d", le.Uint64(raw[120:]), off)
	}
	// Read back forward, backward and by cursor; the cursor moves by payload + 8.
	r := utReopen(t, path, false, true)
	it := utIter(t, r)
	var c int64
	for i, n := range sizes {
		f, err := it.Next()
		if err != nil || !bytes.Equal(f, utPayload(i, n)) {
			t.Fatalf("wide Next %d: %v", i, err)
		}
		c += int64(n) + 8
		if it.Cursor() != c {
			t.Fatalf("wide cursor %d, want %d", it.Cursor(), c)
		}
	}
	for i := len(sizes) - 1; i >= 0; i-- {
		if f, err := it.Prev(); err != nil || !bytes.Equal(f, utPayload(i, sizes[i])) {
			t.Fatalf("wide Prev %d: %v", i, err)
		}
	}
	if _, err := it.Seek(9, 0); err != nil { // 1-byte frame + 8
		t.Fatalf("wide Seek to frame 1: %v", err)
	}
	if _, err := it.Seek(5, 0); !errors.Is(err, ErrCursor) {
		t.Fatalf("wide Seek(5): %v", err)
	}
}
