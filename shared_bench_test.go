package shmio

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

func init() { xpRoles["shbench"] = shBenchChild }

// BenchmarkSharedWrite measures shared writers beside the exclusive Writer in one run, with
// 32-byte frames (issue 15's goals):
//
//	exclusive/commit=C   one Writer, a commit every C frames (the reference)
//	shared/commit=C      one SharedWriter alone
//	procs=P/commit=C     P writer processes, each with a SharedWriter; frames/s is their total
//	ceiling/procs=P/...  the same P processes taking turns with nothing of shmio (see shCeilingChild)
//
// Each run writes a fresh log in /dev/shm of b.N frames, so give the count:
//
//	go test -run '^$' -bench BenchmarkSharedWrite -benchtime 20000000x -count 5 .
func BenchmarkSharedWrite(b *testing.B) {
	for _, commit := range []int{1000, 100, 1} {
		b.Run(fmt.Sprintf("exclusive/commit=%d", commit), func(b *testing.B) {
			benchShared(b, commit, false)
		})
		b.Run(fmt.Sprintf("shared/commit=%d", commit), func(b *testing.B) {
			benchShared(b, commit, true)
		})

	}
	for _, commit := range []int{100, 1} {
		for _, procs := range []int{1, 4} {
			b.Run(fmt.Sprintf("procs=%d/commit=%d", procs, commit), func(b *testing.B) { benchSharedProcs(b, "shbench", procs, commit) })
			if _, ok := xpRoles["shceiling"]; ok && procs > 1 && commit > 1 { // Linux
				b.Run(fmt.Sprintf("ceiling/procs=%d/commit=%d", procs, commit), func(b *testing.B) { benchSharedProcs(b, "shceiling", procs, commit) })
			}
		}

	}
}

func benchSharedLog(b *testing.B, frames int) string {
	if frames > 1<<26 {
		b.Fatalf("%d frames need a %d MiB log: run with -benchtime 20000000x", frames, frames*(benchPayload+4)>>20)
	}
	path := filepath.Join(benchDir(b), "log")
	l, err := Open(Options{Path: path, Capacity: int64(frames)*(benchPayload+4) + 1<<20, Writable: true, Prefault: true})
	if err != nil {
		b.Fatal(err)
	}
	l.Close()
	return path
}

// benchShared runs the exclusive writer, or a shared one.
func benchShared(b *testing.B, commit int, shared bool) {
	l, err := Open(Options{Path: benchSharedLog(b, b.N), Writable: true, Prefault: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	// Concrete types, not FrameWriter: Allocate inlines, as in an application's loop.
	if shared {
		w, err := l.SharedWriter()
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		err = benchLoopShared(w, b.N, commit)
	} else {
		w, err := l.Writer()
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		err = benchLoop(w, b.N, commit)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer() // not the unmapping
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// benchLoop and benchLoopShared write n 32-byte frames, a commit every commit frames. Two
// copies, because a generic one would call Allocate through a dictionary.
func benchLoop(w *Writer, n, commit int) error {
	var payload [benchPayload]byte
	for i := 0; i < n; i++ {
		p, err := w.Allocate(benchPayload)
		if err != nil {
			return err
		}
		copy(p, payload[:])
		if i%commit == commit-1 {
			if err := w.Commit(); err != nil {
				return err
			}
		}
	}
	return w.Commit()
}

func benchLoopShared(w *SharedWriter, n, commit int) error {
	var payload [benchPayload]byte
	for i := 0; i < n; i++ {
		p, err := w.Allocate(benchPayload)
		if err != nil {
			return err
		}
		copy(p, payload[:])
		if i%commit == commit-1 {
			if err := w.Commit(); err != nil {
				return err
			}
		}
	}
	return w.Commit()
}

// benchSharedProcs starts procs writer processes (role shbench, or shceiling), lets them all go
// at once and reports their total frames/s from the first start to the last end.
func benchSharedProcs(b *testing.B, role string, procs, commit int) {
	path := benchSharedLog(b, b.N)
	per := (b.N + procs - 1) / procs
	var cs []*testproc.Child
	for range procs {
		c := testproc.Start(b, role, "PATH="+path, fmt.Sprint("N=", per), fmt.Sprint("COMMIT=", commit), "SPIN_NS="+os.Getenv("SHMIO_BENCH_SPIN_NS"), "HANDOFF_NS="+os.Getenv("SHMIO_BENCH_HANDOFF_NS"), "QUANTUM_NS="+os.Getenv("SHMIO_BENCH_QUANTUM_NS"))
		c.WaitLine(time.Minute, "ready", func(s string) bool { return s == "ready" })
		cs = append(cs, c)
	}
	b.ResetTimer()
	for _, c := range cs {
		c.Stdin().Write([]byte("go\n"))
	}
	var first, last int64
	for _, c := range cs {
		var r struct{ Start, End int64 }
		c.Finish(5*time.Minute, &r)
		if first == 0 || r.Start < first {
			first = r.Start
		}
		last = max(last, r.End)
	}
	b.StopTimer()
	b.ReportMetric(float64(per*procs)/time.Duration(last-first).Seconds(), "frames/s")
}

// shBenchChild writes N 32-byte frames through a SharedWriter, a commit every COMMIT frames,
// once the parent says go, and reports when it started and ended (Unix nanoseconds).
func shBenchChild() error {
	l, err := Open(Options{Path: testproc.Param("PATH"), Writable: true, Prefault: true}) // as the parent's writers
	if err != nil {
		return err
	}
	defer l.Close()
	w, err := l.SharedWriter()
	if err != nil {
		return err
	}
	if v := testproc.ParamInt("SPIN_NS", -1); v >= 0 {
		shareSpin = time.Duration(v)
	}
	if v := testproc.ParamInt("QUANTUM_NS", -1); v >= 0 {
		shareQuantum = time.Duration(v)
	}
	if v := testproc.ParamInt("HANDOFF_NS", -1); v >= 0 {
		shareHandoff = time.Duration(v)
	}
	n, commit, err := benchChildReady(nil)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := benchLoopShared(w, n, commit); err != nil {
		return err
	}
	testproc.Report(map[string]int64{"Start": start.UnixNano(), "End": time.Now().UnixNano()})
	return w.Close()
}

// benchChildReady is a benchmark child's start: its frame count (N) and commit size (COMMIT),
// then "ready", then it waits for the parent's "go". A "warm K" first makes it write K frames
// with warm (which must be non-nil then) and answer "warmed".
func benchChildReady(warm func(k int) error) (n, commit int, err error) {
	n, commit = int(testproc.ParamInt("N", 1)), int(testproc.ParamInt("COMMIT", 1))
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0, 0, err
		}
		var k int
		if _, err := fmt.Sscanf(line, "warm %d", &k); err == nil && warm != nil {
			if err := warm(k); err != nil {
				return 0, 0, err
			}
			fmt.Println("warmed")
			continue
		}
		return n, commit, nil
	}
}
