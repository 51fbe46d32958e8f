package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmio/shmio"
)

// TestSeqCheck: the consumers' verification catches every way a transport could cheat or break.
func TestSeqCheck(t *testing.T) {
	frame := func(size int, seq uint64) []byte {
		p := benchTemplate(size)
		benchFill(p, seq)
		return p
	}
	torn := frame(32, 2)
	torn[31] ^= 1
	for _, tc := range []struct {
		name           string
		frames         [][]byte
		gaps, bad      int64
		done, verified bool
	}{
		{"clean", [][]byte{frame(32, 0), frame(32, 1), frame(32, 2), frame(32, 3)}, 0, 0, true, true},
		{"lost", [][]byte{frame(32, 0), frame(32, 2), frame(32, 3)}, 1, 0, true, false},
		{"repeated", [][]byte{frame(32, 0), frame(32, 1), frame(32, 1), frame(32, 2), frame(32, 3)}, 1, 0, true, false},
		{"reordered", [][]byte{frame(32, 0), frame(32, 2), frame(32, 1), frame(32, 3)}, 3, 0, true, false},
		{"torn", [][]byte{frame(32, 0), frame(32, 1), torn, frame(32, 3)}, 0, 1, true, false},
		{"wrong size", [][]byte{frame(32, 0), frame(32, 1), frame(31, 2), frame(32, 3)}, 1, 1, true, false},
		{"zeroed", [][]byte{frame(32, 0), make([]byte, 32)}, 1, 1, false, false},
		{"short", [][]byte{frame(32, 0), frame(32, 1), frame(32, 2)}, 0, 0, false, false},
	} {
		c := seqCheck{size: 32}
		done := false
		for _, f := range tc.frames {
			done = c.checkBatch([][]byte{f}, 3) // one at a time, as ping and pong check
		}
		r := c.result(0, 0, usage{})
		if r.Gaps != tc.gaps || r.Bad != tc.bad || done != tc.done || r.verified(4) != tc.verified {
			t.Errorf("%s: gaps %d bad %d done %v verified %v, want %d %d %v %v (%s)",
				tc.name, r.Gaps, r.Bad, done, r.verified(4), tc.gaps, tc.bad, tc.done, tc.verified, r.FirstBad)
		}
		if (tc.gaps+tc.bad > 0) != (r.FirstBad != "") {
			t.Errorf("%s: first problem %q", tc.name, r.FirstBad)
		}
		// The batch form (shmio's consumer) agrees frame for frame.
		cb := seqCheck{size: 32}
		if done := cb.checkBatch(tc.frames, 3); done != tc.done || cb.result(0, 0, usage{}) != r {
			t.Errorf("%s: checkBatch %+v done %v, check %+v", tc.name, cb.result(0, 0, usage{}), done, r)
		}
	}
}

// TestShmConsumeZeroAlloc: the shmio consumer allocates nothing per frame.
func TestShmConsumeZeroAlloc(t *testing.T) {
	const n, size = 20_000, 32
	path := filepath.Join(t.TempDir(), "log")
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: logCapacity(n, size), Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := benchTemplate(size)
	for seq := range uint64(n) {
		p, err := w.Allocate(size)
		if err != nil {
			t.Fatal(err)
		}
		copy(p, tmpl)
		benchFill(p, seq)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	var last seqCheck
	allocs := testing.AllocsPerRun(5, func() {
		it, err := l.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		last = seqCheck{size: size}
		if _, err := shmConsume(context.Background(), it, &last, n, 256); err != nil {
			t.Fatal(err)
		}
	})
	if r := last.result(0, 0, usage{}); !r.verified(n) {
		t.Fatalf("consumer result %+v", r)
	}
	// A handful per run for the iterator and the batch slice, none per frame.
	if allocs > 10 {
		t.Errorf("%v allocations to consume %d frames", allocs, n)
	}
}

// TestStreamConsume: the socket consumer parses frames split anywhere across reads, checks them,
// and allocates nothing per frame.
func TestStreamConsume(t *testing.T) {
	const n, size = 10_000, 100
	var buf bytes.Buffer
	frame := make([]byte, 4+size)
	binary.LittleEndian.PutUint32(frame, size)
	copy(frame[4:], benchTemplate(size))
	for seq := range uint64(n) {
		benchFill(frame[4:], seq)
		buf.Write(frame)
	}
	stream := buf.Bytes()
	var chk seqCheck
	allocs := testing.AllocsPerRun(5, func() {
		chk = seqCheck{size: size}
		// Odd-sized reads split frames and length prefixes at every possible place.
		r := bufio.NewReaderSize(&oddReader{b: stream}, streamBufSize)
		if _, err := streamConsume(r, &chk, n); err != nil {
			t.Fatal(err)
		}
	})
	if r := chk.result(0, 0, usage{}); !r.verified(n) {
		t.Fatalf("result %+v", r)
	}
	if allocs > 5 {
		t.Errorf("%v allocations to consume %d frames", allocs, n)
	}

	// A stream that ends early reports what arrived instead of failing or hanging.
	chk = seqCheck{size: size}
	if _, err := streamConsume(bufio.NewReader(bytes.NewReader(stream[:len(stream)/2+7])), &chk, n); err != nil {
		t.Fatal(err)
	}
	if r := chk.result(0, 0, usage{}); r.Frames != n/2 || r.verified(n) {
		t.Errorf("truncated stream: %+v", r)
	}
}

// oddReader returns at most 37 bytes per Read.
type oddReader struct{ b []byte }

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), 37)], r.b)
	r.b = r.b[k:]
	return k, nil
}

func TestLatHist(t *testing.T) {
	var h latHist
	for v := int64(1); v <= 100_000; v++ {
		h.add(v * 10) // 10ns .. 1ms, uniform
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 500_000}, {0.99, 990_000}, {0.999, 999_000}, {1, 1_000_000}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < -0.04 || d > 0.04 {
			t.Errorf("quantile %v = %d, want %d within 4%%", tc.q, got, tc.want)
		}
	}
	if h.max != 1_000_000 || h.n != 100_000 {
		t.Errorf("max %d n %d", h.max, h.n)
	}
	for v := int64(0); v < 5000; v++ {
		if i := histIndex(v); v < histSub && histValue(i) != v {
			t.Errorf("small value %d maps to %d", v, histValue(i))
		} else if got := histValue(i); float64(got-v) > 0.04*float64(v) || got < v-v/30 {
			t.Errorf("value %d in bucket %d valued %d", v, i, got)
		}
	}
	h.reset()
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram should report 0")
	}
}

func TestFormatRatiosGoals(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{FormatRate(999_999), "1.00M"}, {FormatRate(12_345), "12.3k"}, {FormatRate(95_100_000), "95.1M"}, {FormatRate(12), "12"},
		{FormatRate(992_000), "992k"}, {FormatRate(1_234_567), "1.23M"}, {FormatRate(2.5e9), "2.50G"}, {FormatRate(999.4), "999"},
		{FormatNanos(820), "820ns"}, {FormatNanos(3_400), "3.4µs"}, {FormatNanos(12_000), "12µs"}, {FormatNanos(1_200_000), "1.2ms"},
		{FormatCount(3_000_000), "3,000,000"}, {FormatCount(999), "999"}, {FormatCount(-1), "-1"}, {FormatCount(1000), "1,000"},
		{FormatSize(32), "32 B"}, {FormatSize(1024), "1 KiB"}, {FormatSize(1000), "1000 B"},
		{FormatBytesRate(3 << 30), "3.00 GiB/s"}, {FormatBytesRate(512 << 20), "512 MiB/s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}

	rs := []Result{
		{Kind: "throughput", Transport: "shmio", Size: 32, Readers: 1, FramesPerSec: 90e6, Verified: true},
		{Kind: "throughput", Transport: "unix", Size: 32, Readers: 1, FramesPerSec: 30e6, Verified: true},
		{Kind: "throughput", Transport: "shmio", Size: 32, Readers: 3, FramesPerSec: 50e6, Verified: true},
		{Kind: "throughput", Transport: "unix", Size: 32, Readers: 3, FramesPerSec: 10e6, Verified: true},
		{Kind: "latency", Transport: "shmio-spin", Size: 32, Readers: 1, P50: 200, Verified: true},
		{Kind: "latency", Transport: "shmio-futex", Size: 32, Readers: 1, P50: 20_000, Verified: true},
		{Kind: "latency", Transport: "unix", Size: 32, Readers: 1, P50: 10_000, Verified: true},
		{Kind: "throughput", Transport: "pipe", Size: 32, Readers: 1, Frames: 100, Verified: false,
			Consumers: []ConsumerReport{{Frames: 99, Gaps: 1, FirstBad: "frame 5: seq 6, want 5"}}},
	}
	fillRatios(rs)
	for i, want := range []float64{3, 1, 5, 1, 50, 0.5, 1} {
		if rs[i].VsSocket != want {
			t.Errorf("row %d ratio %v, want %v", i, rs[i].VsSocket, want)
		}
	}
	goals := strings.Join(Goals(rs, 3), "\n")
	for _, want := range []string{
		"32 B, 1 reader: 3.00x the socket's frames/s (goal >= 3x): met",
		"32 B, 3 readers: 5.00x the socket's frames/s (goal >= 6x): below goal",
		"spinning one-way p50 200ns (goal < 1µs): met",
		"futex one-way p50 20µs vs socket 10µs (goal: no worse): below goal",
	} {
		if !strings.Contains(goals, want) {
			t.Errorf("goals lack %q:\n%s", want, goals)
		}
	}
	failed := Failures(rs)
	if len(failed) != 1 || failed[0] != "throughput pipe 32 B, 1 reader(s): consumer 1 got 99 of 100 frames, 1 gaps, 0 damaged (first: frame 5: seq 6, want 5)" {
		t.Errorf("failures %q", failed)
	}
}

// BenchmarkShmConsume is the shmio consumer's own cost per 32-byte frame (NextBatch plus
// the sequence checks), with everything already committed: the ceiling of a bench consumer.
func BenchmarkShmConsume(b *testing.B) {
	const n, size = 1_000_000, 32
	path := filepath.Join(b.TempDir(), "log")
	if _, err := os.Stat("/dev/shm"); err == nil {
		path = filepath.Join("/dev/shm", "shmio-bench-consume-"+strings.ReplaceAll(b.Name(), "/", "-"))
		b.Cleanup(func() { os.Remove(path) })
	}
	os.Remove(path)
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: logCapacity(n, size), Writable: true, Prefault: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		b.Fatal(err)
	}
	tmpl := benchTemplate(size)
	for seq := range uint64(n) {
		p, _ := w.Allocate(size)
		copy(p, tmpl)
		benchFill(p, seq)
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		it, _ := l.NewIterator(shmio.IteratorOptions{})
		chk := seqCheck{size: size}
		if _, err := shmConsume(context.Background(), it, &chk, n, 256); err != nil || chk.gaps+chk.bad != 0 {
			b.Fatal(err, chk)
		}
		it.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/frame")
}

// BenchmarkStreamConsume is the socket consumer's parsing and checking cost per 32-byte
// frame, from memory (no system calls): what the socket baseline spends besides the kernel.
func BenchmarkStreamConsume(b *testing.B) {
	const n, size = 100_000, 32
	var buf bytes.Buffer
	frame := make([]byte, 4+size)
	binary.LittleEndian.PutUint32(frame, size)
	copy(frame[4:], benchTemplate(size))
	for seq := range uint64(n) {
		benchFill(frame[4:], seq)
		buf.Write(frame)
	}
	b.ReportAllocs()
	rd := bytes.NewReader(buf.Bytes())
	br := bufio.NewReaderSize(rd, streamBufSize)
	for b.Loop() {
		rd.Reset(buf.Bytes())
		br.Reset(rd)
		chk := seqCheck{size: size}
		if _, err := streamConsume(br, &chk, n); err != nil || chk.frames != n {
			b.Fatal(err, chk)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/frame")
}

// TestStreamConsumeShortFrames: frames too short to carry a sequence number are reported,
// not a crash.
func TestStreamConsumeShortFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, n := range []int{3, 0, 12} {
		binary.Write(&buf, binary.LittleEndian, uint32(n))
		buf.Write(make([]byte, n))
	}
	chk := seqCheck{size: 16}
	if _, err := streamConsume(bufio.NewReader(&buf), &chk, 5); err != nil {
		t.Fatal(err)
	}
	if r := chk.result(0, 0, usage{}); r.Frames != 3 || r.Bad != 3 || r.verified(5) || !strings.Contains(r.FirstBad, "frame 0: 3 bytes, want 16") {
		t.Errorf("result %+v", r)
	}
}
