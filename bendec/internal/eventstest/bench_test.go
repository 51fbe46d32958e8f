package eventstest

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

const (
	benchCap    = 64 << 20
	benchCommit = 1000
)

// benchPath is a fresh log path under /dev/shm where it exists: the benchmarks measure shared
// memory, not a disk.
func benchPath(b *testing.B) string {
	dir := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "shmio-bendec-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	} else {
		dir = b.TempDir()
	}
	return filepath.Join(dir, "log")
}

// logWriter writes into a log it replaces with a fresh one when full; the time spent replacing
// it is kept apart so it can be left out.
type logWriter struct {
	b      *testing.B
	path   string
	l      *shmio.Log
	w      *shmio.Writer
	paused time.Duration
}

func newLogWriter(b *testing.B) *logWriter {
	lw := &logWriter{b: b, path: benchPath(b)}
	lw.open()
	b.Cleanup(func() { lw.w.Close(); lw.l.Close() })
	return lw
}

func (lw *logWriter) open() {
	os.Remove(lw.path)
	l, err := shmio.Open(shmio.Options{Path: lw.path, Capacity: benchCap, Writable: true, Prefault: true})
	if err != nil {
		lw.b.Fatal(err)
	}
	w, err := l.Writer()
	if err != nil {
		lw.b.Fatal(err)
	}
	lw.l, lw.w = l, w
}

func (lw *logWriter) allocate(n int) []byte {
	if p, err := lw.w.Allocate(n); err == nil {
		return p
	}
	return lw.replace(n)
}

func (lw *logWriter) replace(n int) []byte {
	start := time.Now()
	lw.w.Close()
	lw.l.Close()
	lw.open()
	lw.paused += time.Since(start)
	p, err := lw.w.Allocate(n)
	if err != nil {
		lw.b.Fatal(err)
	}
	return p
}

// BenchmarkWriteLogEvent writes 32-byte LogEvents with the generated Encode (Allocate + Encode,
// Commit every 1000) and, on the same number of frames, the same 32 bytes raw (Allocate + copy);
// typed-vs-raw is the typed rate over the raw rate (goal >= 0.8).
func BenchmarkWriteLogEvent(b *testing.B) {
	ev := LogEvent{Level: LevelInfo}
	copy(ev.Message[:], "Application started")
	raw := make([]byte, LogEventSize)
	if err := ev.Encode(raw); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(LogEventSize)
	b.ReportAllocs()

	lw := newLogWriter(b)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		p := lw.allocate(LogEventSize)
		ev.Timestamp = uint64(i)
		if err := ev.Encode(p); err != nil {
			b.Fatal(err)
		}
		if i%benchCommit == benchCommit-1 {
			lw.w.Commit()
		}
	}
	typed := time.Since(start) - lw.paused
	b.StopTimer()

	lw2 := newLogWriter(b)
	start = time.Now()
	for i := 0; i < b.N; i++ {
		p := lw2.allocate(LogEventSize)
		copy(p, raw)
		if i%benchCommit == benchCommit-1 {
			lw2.w.Commit()
		}
	}
	rawTime := time.Since(start) - lw2.paused
	b.ReportMetric(float64(b.N)/typed.Seconds(), "typed-frames/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-frames/s")
	b.ReportMetric(rawTime.Seconds()/typed.Seconds(), "typed-vs-raw")
}

// BenchmarkReadLogEvent reads 32-byte LogEvents with NextBatch (64 a batch) through the
// generated view and, over the same frames, raw, reading the same fields (timestamp and level)
// each way; view-vs-raw is the view rate over the raw rate (goal >= 0.8).
func BenchmarkReadLogEvent(b *testing.B) {
	lw := newLogWriter(b)
	ev := LogEvent{Level: LevelWarn}
	copy(ev.Message[:], "disk almost full")
	frames := 0
	for {
		p, err := lw.w.Allocate(LogEventSize)
		if err != nil {
			break
		}
		ev.Timestamp = uint64(frames)
		ev.Encode(p)
		frames++
	}
	if err := lw.w.Commit(); err != nil {
		b.Fatal(err)
	}
	l, err := shmio.Open(shmio.Options{Path: lw.path, Prefault: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(LogEventSize)
	b.ReportAllocs()
	b.ResetTimer()
	view, s1 := readView(b, l)
	b.StopTimer()
	raw, s2 := readRaw(b, l)
	if s1 != s2 {
		b.Fatalf("view and raw read differ: %d != %d", s1, s2)
	}
	b.ReportMetric(float64(b.N)/view.Seconds(), "view-frames/s")
	b.ReportMetric(float64(b.N)/raw.Seconds(), "raw-frames/s")
	b.ReportMetric(raw.Seconds()/view.Seconds(), "view-vs-raw")
}

func iterator(b *testing.B, l *shmio.Log) *shmio.Iterator {
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return it
}

// readView and readRaw read the same fields (timestamp and level) of b.N frames.
func readView(b *testing.B, l *shmio.Log) (time.Duration, uint64) {
	it := iterator(b, l)
	defer it.Close()
	dst := make([][]byte, 0, 64)
	var sum uint64
	var err error
	start := time.Now()
	for n := 0; n < b.N; {
		if dst, err = it.NextBatch(dst[:0], shmio.BatchOptions{MaxMessages: 64}); err != nil {
			b.Fatal(err)
		}
		if len(dst) == 0 {
			it.Seek(0, 0)
		}
		for _, f := range dst[:min(len(dst), b.N-n)] {
			v := LogEventView(f)
			sum += v.Timestamp() + uint64(v.Level())
		}
		n += len(dst)
	}
	return time.Since(start), sum
}

func readRaw(b *testing.B, l *shmio.Log) (time.Duration, uint64) {
	it := iterator(b, l)
	defer it.Close()
	dst := make([][]byte, 0, 64)
	var sum uint64
	var err error
	start := time.Now()
	for n := 0; n < b.N; {
		if dst, err = it.NextBatch(dst[:0], shmio.BatchOptions{MaxMessages: 64}); err != nil {
			b.Fatal(err)
		}
		if len(dst) == 0 {
			it.Seek(0, 0)
		}
		for _, f := range dst[:min(len(dst), b.N-n)] {
			sum += binary.LittleEndian.Uint64(f) + uint64(f[8])
		}
		n += len(dst)
	}
	return time.Since(start), sum
}
