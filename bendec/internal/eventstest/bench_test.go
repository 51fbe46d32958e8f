package eventstest

import (
	"encoding/binary"
	"io"
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

// benchChunk frames at a time, the typed and the raw loops take turns, so that a load change on
// a shared machine hits both alike and their ratio stays meaningful.
const benchChunk = 1 << 16

// BenchmarkWriteLogEvent writes 32-byte LogEvents with the generated Encode (Allocate + Encode,
// Commit every 1000) and, in alternating chunks of the same number of frames, the same 32 bytes
// raw (Allocate + copy) to a second log; typed-vs-raw is the typed rate over the raw rate
// (goal >= 0.8).
func BenchmarkWriteLogEvent(b *testing.B) {
	ev := LogEvent{Level: LevelInfo}
	copy(ev.Message[:], "Application started")
	raw := make([]byte, LogEventSize)
	if err := ev.Encode(raw); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(LogEventSize)
	b.ReportAllocs()
	tw, rw := newLogWriter(b), newLogWriter(b)
	var typed, rawTime time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchChunk, b.N-done)
		tw.paused, rw.paused = 0, 0
		start := time.Now()
		for i := done; i < done+n; i++ {
			p := tw.allocate(LogEventSize)
			ev.Timestamp = uint64(i)
			if err := ev.Encode(p); err != nil {
				b.Fatal(err)
			}
			if i%benchCommit == benchCommit-1 {
				tw.w.Commit()
			}
		}
		mid := time.Now()
		for i := done; i < done+n; i++ {
			p := rw.allocate(LogEventSize)
			copy(p, raw)
			if i%benchCommit == benchCommit-1 {
				rw.w.Commit()
			}
		}
		end := time.Now()
		typed += mid.Sub(start) - tw.paused
		rawTime += end.Sub(mid) - rw.paused
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/typed.Seconds(), "typed-frames/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-frames/s")
	b.ReportMetric(rawTime.Seconds()/typed.Seconds(), "typed-vs-raw")
}

// BenchmarkReadLogEvent reads 32-byte LogEvents with NextBatch (64 a batch) through the
// generated view and, in alternating chunks over the same frames, raw, reading the same fields
// (timestamp and level) each way; view-vs-raw is the view rate over the raw rate (goal >= 0.8).
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
	vr, rr := newReader(b, l), newReader(b, l)
	// The raw reader starts half a log away, so neither reader finds frames the other has just
	// brought into the cache.
	if _, err := rr.it.Seek(int64(frames/2)*(LogEventSize+4), io.SeekStart); err != nil {
		b.Fatal(err)
	}
	var view, raw time.Duration
	var s1, s2 uint64
	b.SetBytes(LogEventSize)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchChunk, b.N-done)
		start := time.Now()
		s1 += vr.readView(n)
		mid := time.Now()
		s2 += rr.readRaw(n)
		raw += time.Since(mid)
		view += mid.Sub(start)
		done += n
	}
	b.StopTimer()
	if s1 == 0 || s2 == 0 {
		b.Fatal("nothing read")
	}
	b.ReportMetric(float64(b.N)/view.Seconds(), "view-frames/s")
	b.ReportMetric(float64(b.N)/raw.Seconds(), "raw-frames/s")
	b.ReportMetric(raw.Seconds()/view.Seconds(), "view-vs-raw")
}

// reader reads frames in batches of 64, going back to the start of the log at its end.
type reader struct {
	b   *testing.B
	it  *shmio.Iterator
	dst [][]byte
}

func newReader(b *testing.B, l *shmio.Log) *reader {
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { it.Close() })
	return &reader{b: b, it: it, dst: make([][]byte, 0, 64)}
}

func (r *reader) batch(max int) [][]byte {
	dst, err := r.it.NextBatch(r.dst[:0], shmio.BatchOptions{MaxFrames: max})
	if err != nil {
		r.b.Fatal(err)
	}
	if len(dst) == 0 {
		r.it.Seek(0, 0)
	}
	r.dst = dst
	return dst
}

// readView and readRaw read the same fields (timestamp and level) of n frames.
func (r *reader) readView(n int) (sum uint64) {
	for n > 0 {
		for _, f := range r.batch(min(64, n)) {
			v := LogEventView(f)
			sum += v.Timestamp() + uint64(v.Level())
			n--
		}
	}
	return sum
}

func (r *reader) readRaw(n int) (sum uint64) {
	for n > 0 {
		for _, f := range r.batch(min(64, n)) {
			sum += binary.LittleEndian.Uint64(f) + uint64(f[8])
			n--
		}
	}
	return sum
}
