package shmio

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
	"golang.org/x/sys/unix"
)

func init() { xpRoles["qshbench"] = qshBenchChild }

// BenchmarkQueueSharedWrite measures queue shared writers beside the exclusive QueueWriter in one
// run, with 32-byte frames into a queue of 16 MiB segments keeping 64 MiB (so it rolls every
// ~470,000 frames), in steady state (128 MiB written before the timer starts, so that segments
// are recycled; the processes of procs=P start on such a queue and write 128 MiB together
// before the timer starts, so that each has its spare and has mapped the files in rotation):
//
//	exclusive/commit=C   one QueueWriter, a commit every C frames (the reference)
//	shared/commit=C      one QueueSharedWriter alone
//	procs=P/commit=C     P writer processes, each with a QueueSharedWriter; frames/s is their total
//
//	go test -run '^$' -bench BenchmarkQueueSharedWrite -benchtime 20000000x -count 5 .
//
// cpu-ns/frame is the CPU time (user and system, all threads; of every writer process for
// procs=P) per frame: what the frames cost, which other load on the machine changes much less
// than frames/s.
func BenchmarkQueueSharedWrite(b *testing.B) {
	for _, commit := range []int{1000, 100} {
		b.Run(fmt.Sprintf("exclusive/commit=%d", commit), func(b *testing.B) { benchQueueShared(b, commit, false) })
		b.Run(fmt.Sprintf("shared/commit=%d", commit), func(b *testing.B) { benchQueueShared(b, commit, true) })
	}
	b.Run("procs=4/commit=100", func(b *testing.B) { benchQueueSharedProcs(b, 4, 100) })
}

const qshBenchSeg = 16 << 20

func qshBenchQueue(b testing.TB, dir string) *Queue {
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: qshBenchSeg, Prefault: true, Retention: RetentionPolicy{MaxBytes: 64 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	return q
}

func benchQueueShared(b *testing.B, commit int, shared bool) {
	q := qshBenchQueue(b, filepath.Join(benchDir(b), "q"))
	defer q.Close()
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	var err error
	if shared {
		w, werr := q.SharedWriter()
		if werr != nil {
			b.Fatal(werr)
		}
		defer w.Close()
		if err := benchLoopQueueShared(w, benchWarmFrames, commit); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		cpu := procCPU()
		err = benchLoopQueueShared(w, b.N, commit)
		cpu = procCPU() - cpu
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/frame")
	} else {
		w, werr := q.Writer()
		if werr != nil {
			b.Fatal(werr)
		}
		defer w.Close()
		if err := benchLoopQueue(w, benchWarmFrames, commit); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		cpu := procCPU()
		err = benchLoopQueue(w, b.N, commit)
		cpu = procCPU() - cpu
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/frame")
	}
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// benchLoopQueue and benchLoopQueueShared write n 32-byte frames, a commit every commit frames,
// through the concrete types (Allocate inlines, as in an application's loop).
func benchLoopQueue(w *QueueWriter, n, commit int) error {
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

func benchLoopQueueShared(w *QueueSharedWriter, n, commit int) error {
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

// benchQueueSharedProcs starts procs writer processes, lets them all go at once and reports their
// total frames/s from the first start to the last end.
func benchQueueSharedProcs(b *testing.B, procs, commit int) {
	dir := filepath.Join(benchDir(b), "q")
	q := qshBenchQueue(b, dir)
	w, err := q.SharedWriter()
	if err != nil {
		b.Fatal(err)
	}
	if err := benchLoopQueueShared(w, benchWarmFrames, commit); err != nil {
		b.Fatal(err)
	}
	w.Close()
	q.Close()
	per := (b.N + procs - 1) / procs
	var cs []*testproc.Child
	for range procs {
		c := testproc.Start(b, "qshbench", "DIR="+dir, fmt.Sprint("N=", per), fmt.Sprint("COMMIT=", commit))
		c.WaitLine(time.Minute, "ready", func(s string) bool { return s == "ready" })
		cs = append(cs, c)
	}
	// The processes warm up together (as the exclusive writer does alone): each makes its spare,
	// maps the files in rotation and rolls a few times before the timer starts.
	for _, c := range cs {
		fmt.Fprintf(c.Stdin(), "warm %d\n", benchWarmFrames/procs)
	}
	for _, c := range cs {
		c.WaitLine(time.Minute, "warmed", func(s string) bool { return s == "warmed" })
	}
	b.ResetTimer()
	for _, c := range cs {
		c.Stdin().Write([]byte("go\n"))
	}
	var first, last, cpu int64
	for _, c := range cs {
		var r struct{ Start, End, CPU int64 }
		c.Finish(5*time.Minute, &r)
		cpu += r.CPU
		if first == 0 || r.Start < first {
			first = r.Start
		}
		last = max(last, r.End)
	}
	b.StopTimer()
	b.ReportMetric(float64(per*procs)/time.Duration(last-first).Seconds(), "frames/s")
	b.ReportMetric(float64(cpu)/float64(per*procs), "cpu-ns/frame")
}

// procCPU is the CPU time this process has used (user and system, all threads).
func procCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// qshBenchChild writes N 32-byte frames through a QueueSharedWriter, a commit every COMMIT
// frames, once the parent says go, and reports when it started and ended (Unix nanoseconds).
func qshBenchChild() error {
	q := qshBenchQueue(nopTB{}, testproc.Param("DIR"))
	defer q.Close()
	w, err := q.SharedWriter()
	if err != nil {
		return err
	}
	n, commit, err := benchChildReady(func(k int) error {
		return benchLoopQueueShared(w, k, int(testproc.ParamInt("COMMIT", 1)))
	})
	if err != nil {
		return err
	}
	start, cpu := time.Now(), procCPU()
	if err := benchLoopQueueShared(w, n, commit); err != nil {
		return err
	}
	end := time.Now()
	testproc.Report(map[string]int64{"Start": start.UnixNano(), "End": end.UnixNano(), "CPU": int64(procCPU() - cpu)})
	return w.Close()
}

// nopTB lets a child use qshBenchQueue: its Fatal panics (the child then fails).
type nopTB struct{ testing.TB }

func (nopTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
