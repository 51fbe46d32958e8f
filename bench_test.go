package shmio

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/mmap"
)

// Benchmarks of the hot paths. Each API benchmark also runs a bare loop that does the same
// stores and loads on a raw mapping (the ceiling) for the same number of frames, and reports the
// API's rate as a fraction of it ("ceiling-ratio"), so one run shows both.
//
//	go test -run '^$' -bench . -benchmem -count 6 | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat new.txt

const (
	benchPayload = 32
	benchCommit  = 1000
	benchCap     = 256 << 20
)

// benchDir is /dev/shm where it exists: the benchmarks measure shared memory, not a disk.
func benchDir(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "shmio-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

func benchLog(b *testing.B, prefault bool) *Log {
	l, err := Open(Options{Path: filepath.Join(benchDir(b), "log"), Capacity: benchCap, Writable: true, Prefault: prefault})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// rewind empties the log for the writer benchmark: it runs when the log is full, a few times
// per second of benchmark, so its cost does not show.
func (w *Writer) rewind() {
	w.end, w.committed = int(w.log.lo.dataOffset), int(w.log.lo.dataOffset)
	w.log.size.Store(uint64(w.end))
}

// rawWrite is the ceiling for writing: the same length stores, payload copy and periodic atomic
// commit as Allocate+copy+Commit, on a raw byte slice.
func rawWrite(mem []byte, size *atomic.Uint64, payload []byte, n int) {
	base := goHeaderSize
	pos := base
	flen := len(payload) + 4
	for i := 0; i < n; i++ {
		if pos+flen > len(mem) {
			pos = base
		}
		le.PutUint16(mem[pos:], uint16(flen))
		copy(mem[pos+2:pos+2+len(payload)], payload)
		le.PutUint16(mem[pos+2+len(payload):], uint16(flen))
		pos += flen
		if i%benchCommit == benchCommit-1 {
			size.Store(uint64(pos))
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, prefault := range []bool{true, false} {
		b.Run(fmt.Sprintf("size=%d/commit=%d/prefault=%v", benchPayload, benchCommit, prefault), func(b *testing.B) {
			l := benchLog(b, prefault)
			w, err := l.Writer()
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, benchPayload)
			b.SetBytes(benchPayload)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				p, err := w.Allocate(benchPayload)
				if err != nil {
					w.rewind()
					if p, err = w.Allocate(benchPayload); err != nil {
						b.Fatal(err)
					}
				}
				copy(p, payload)
				if i%benchCommit == benchCommit-1 {
					w.Commit()
				}
			}
			api := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/api.Seconds(), "frames/s")
			raw := rawCeiling(b, nil, func(mem []byte, size *atomic.Uint64) { rawWrite(mem, size, payload, b.N) })
			b.ReportMetric(raw.Seconds()/api.Seconds(), "ceiling-ratio")
		})
	}
}

// rawCeiling prepares a fresh prefaulted raw mapping of the benchmark's size with setup, then
// times run over it.
func rawCeiling(b *testing.B, setup, run func(mem []byte, size *atomic.Uint64)) time.Duration {
	fd, err := os.OpenFile(filepath.Join(benchDir(b), "raw"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Truncate(benchCap); err != nil {
		b.Fatal(err)
	}
	mem, err := mmap.Map(int(fd.Fd()), benchCap, true, true)
	if err != nil {
		b.Fatal(err)
	}
	defer mmap.Unmap(mem)
	if setup != nil {
		setup(mem, u64at(mem, offSize))
	}
	start := time.Now()
	run(mem, u64at(mem, offSize))
	return time.Since(start)
}

// fillLog writes frames of benchPayload bytes until the log is full and returns the count.
func fillLog(b *testing.B, l *Log) int {
	w, err := l.Writer()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	payload := make([]byte, benchPayload)
	n := 0
	for w.Append(payload) == nil {
		n++
	}
	w.Commit()
	return n
}

// rawRead is the ceiling for reading: the same length loads, bounds checks and slice appends
// as NextBatch, without the API around them.
func rawRead(mem []byte, size *atomic.Uint64, n int) {
	base := goHeaderSize
	end := int(size.Load())
	dst := make([][]byte, 0, 64)
	pos := base
	for read := 0; read < n; {
		dst = dst[:0]
		for len(dst) < 64 && pos < end {
			flen := int(le.Uint16(mem[pos:]))
			if flen < 5 || flen > end-pos {
				panic("corrupt")
			}
			dst = append(dst, mem[pos+2:pos+flen-2:pos+flen-2])
			pos += flen
		}
		read += len(dst)
		if pos >= end {
			pos = base
		}
	}
}

func BenchmarkNextBatch(b *testing.B) {
	for _, prefault := range []bool{true, false} {
		b.Run(fmt.Sprintf("size=%d/batch=64/prefault=%v", benchPayload, prefault), func(b *testing.B) {
			wl := benchLog(b, true)
			frames := fillLog(b, wl)
			l, err := Open(Options{Path: wl.Path(), Prefault: prefault})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			it, err := l.NewIterator(IteratorOptions{})
			if err != nil {
				b.Fatal(err)
			}
			dst := make([][]byte, 0, 64)
			b.SetBytes(benchPayload)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for read := 0; read < b.N; {
				dst, err = it.NextBatch(dst[:0], BatchOptions{MaxFrames: 64})
				if err != nil {
					b.Fatal(err)
				}
				if len(dst) == 0 {
					it.Seek(0, 0)
				}
				read += len(dst)
			}
			api := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/api.Seconds(), "frames/s")
			raw := rawCeiling(b, func(mem []byte, size *atomic.Uint64) {
				rawWrite(mem, size, make([]byte, benchPayload), frames)
				size.Store(uint64(goHeaderSize + frames*(benchPayload+4)))
			}, func(mem []byte, size *atomic.Uint64) { rawRead(mem, size, b.N) })
			b.ReportMetric(raw.Seconds()/api.Seconds(), "ceiling-ratio")
		})
	}
}
