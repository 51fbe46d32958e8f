package shmio

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

func init() { xpRoles["inspect-dead-writer"] = xpDeadWriterChild }

// xpDeadWriterChild commits 3 frames, allocates a fourth without committing it, says "ready" and
// waits to be killed.
func xpDeadWriterChild() error {
	l, w, err := xpOpenWriter()
	if err != nil {
		return err
	}
	defer l.Close()
	for range 3 {
		if err := w.Append([]byte("committed")); err != nil {
			return err
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	if _, err := w.Allocate(20); err != nil {
		return err
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return errors.New("not killed")
}

func appendN(t testing.TB, w *Writer, n, size int) {
	t.Helper()
	p := bytes.Repeat([]byte{'x'}, size)
	for range n {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readHeaderBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:goHeaderSize]
}

func TestInspectLogRatesFillAndNoDisturbance(t *testing.T) {
	dir := testproc.ShmDir(t)
	path := xpCreate(t, dir, "rates", 64<<10)
	l, err := Open(Options{Path: path, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, w, 100, 28) // 32-byte frames
	in := NewInspector(InspectOptions{})
	before := readHeaderBytes(t, path)
	s1, err := in.Sample(path)
	if err != nil || len(s1) != 1 || s1[0].Err != nil {
		t.Fatalf("sample: %v %+v", err, s1)
	}
	if !bytes.Equal(before, readHeaderBytes(t, path)) {
		t.Fatal("Sample changed the header")
	}
	a := s1[0]
	wantCap := int64(64<<10 - goHeaderSize)
	if a.Kind != KindLog || a.End != 3200 || a.Committed != 3200 || a.Capacity != wantCap || a.FramesTotal != 100 || !a.FramesExact || a.Rated {
		t.Fatalf("first sample: %+v", a)
	}
	if a.Fill != 3200/float64(wantCap) {
		t.Fatalf("fill %v, want %v", a.Fill, 3200/float64(wantCap))
	}
	if a.WriterPID != os.Getpid() || !a.WriterLocked || a.WriterLockPID != os.Getpid() || !a.WriterAlive || a.WriterDead || a.Sleepers {
		t.Fatalf("writer fields: %+v", a)
	}

	appendN(t, w, 50, 60) // 64-byte frames
	s2, err := in.Sample(path)
	if err != nil {
		t.Fatal(err)
	}
	b := s2[0]
	if b.FramesTotal != 150 || b.BytesTotal != 3200+50*64 || !b.Rated || !b.FramesExact {
		t.Fatalf("second sample: %+v", b)
	}
	dt := b.At.Sub(a.At).Seconds()
	if math.Abs(b.FramesPerSec*dt-50) > 1e-6 || math.Abs(b.BytesPerSec*dt-50*64) > 1e-6 {
		t.Fatalf("rates %v frames/s, %v B/s over %vs: want 50 frames and 3200 bytes", b.FramesPerSec, b.BytesPerSec, dt)
	}
	// One-shot Inspect agrees and counts from the start.
	one, err := Inspect(path)
	if err != nil || one.FramesTotal != 150 || one.Rated {
		t.Fatalf("Inspect: %v %+v", err, one)
	}
	w.Close()
	one, _ = Inspect(path)
	if one.WriterPID != 0 || one.WriterLocked || one.WriterDead {
		t.Fatalf("after Close: %+v", one)
	}
}

func TestInspectBoundedWalkEstimatesThenCatchesUp(t *testing.T) {
	dir := testproc.ShmDir(t)
	path := xpCreate(t, dir, "bounded", 64<<10)
	l, err := Open(Options{Path: path, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, _ := l.Writer()
	appendN(t, w, 200, 28)
	in := NewInspector(InspectOptions{MaxWalk: 640}) // 20 frames per sample
	s, _ := in.Sample(path)
	if s[0].FramesExact || s[0].FramesTotal != 200 { // uniform frames: the estimate is right
		t.Fatalf("bounded first sample: %+v", s[0])
	}
	for i := 0; i < 20 && !s[0].FramesExact; i++ {
		s, _ = in.Sample(path)
	}
	if !s[0].FramesExact || s[0].FramesTotal != 200 {
		t.Fatalf("after catching up: %+v", s[0])
	}
}

func TestInspectDeadWriterWithUncommittedFrame(t *testing.T) {
	dir := testproc.ShmDir(t)
	path := xpCreate(t, dir, "dead", 64<<10)
	c := testproc.Start(t, "inspect-dead-writer", "PATH="+path)
	if l := c.Line(30 * time.Second); l != "ready" {
		t.Fatalf("child said %q", l)
	}
	pid := c.Pid()
	s, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.WriterPID != pid || !s.WriterLocked || s.WriterLockPID != pid || s.WriterDead || s.FramesTotal != 3 {
		t.Fatalf("live writer: %+v", s)
	}
	c.Kill9()
	s, err = Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.WriterPID != pid || s.WriterLocked || s.WriterAlive || !s.WriterDead || !s.Uncommitted || s.FramesTotal != 3 {
		t.Fatalf("dead writer: %+v", s)
	}
	// A new writer resumes at the committed end and overwrites the allocation.
	l, err := Open(Options{Path: path, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, _ = Inspect(path)
	if s.WriterDead || s.WriterPID != os.Getpid() {
		t.Fatalf("new writer: %+v", s)
	}
}

func TestInspectQueueLaggingReader(t *testing.T) {
	dir := filepath.Join(testproc.ShmDir(t), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	qw, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		if err := qw.Append([]byte(strconv.Itoa(i) + "-payload-of-some-bytes")); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := qw.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(name string, k int) {
		it, err := q.NamedIterator(name, IteratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range k {
			if _, err := it.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if k == n {
			if f, err := it.Next(); err != nil || f != nil { // finds nothing more: caught up
				t.Fatalf("past the end: %q %v", f, err)
			}
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	read("fast", n)
	read("slow", 40)

	s, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	segs, _ := q.Segments()
	head := 0
	for _, g := range segs {
		head++
		if !g.Sealed {
			break
		}
	}
	if s.Kind != KindQueue || s.Segments != head || s.Segments < 3 || s.FramesTotal != n || !s.FramesExact || s.ID != q.ID() {
		t.Fatalf("queue: %+v (library: %d segments up to the head)", s, head)
	}
	end, _ := q.EndCursor()
	if s.End != end || !s.WriterLocked || s.WriterDead {
		t.Fatalf("end %d, want %d; %+v", s.End, end, s)
	}
	want, err := q.Readers()
	if err != nil || len(want) != 2 || len(s.Readers) != 2 {
		t.Fatalf("readers: %v %+v / %+v", err, want, s.Readers)
	}
	for i, r := range s.Readers {
		wr := want[i]
		if r.Name != wr.Name || r.Cursor != wr.Cursor || r.LagFrames != wr.LagFrames || r.LagBytes != wr.LagBytes || !r.LagExact || r.Err != nil || r.Active {
			t.Fatalf("reader %d: %+v, library says %+v", i, r, wr)
		}
	}
	if s.Readers[0].Name != "fast" || s.Readers[0].LagFrames != 0 || s.Readers[0].Lag != 0 {
		t.Fatalf("fast: %+v", s.Readers[0])
	}
	if s.Readers[1].LagFrames != n-40 || s.Readers[1].Lag <= 0 {
		t.Fatalf("slow: %+v", s.Readers[1])
	}
	// A bounded walk estimates the lag, and says so.
	ss, _ := NewInspector(InspectOptions{MaxWalk: 256}).Sample(dir)
	if r := ss[0].Readers[1]; r.LagExact || r.LagBytes != want[1].LagBytes || r.LagFrames <= 0 {
		t.Fatalf("bounded lag: %+v", r)
	}
}

func TestInspectDirSkipsOtherFilesAndForgetsGoneLogs(t *testing.T) {
	dir := testproc.ShmDir(t)
	a := xpCreate(t, dir, "a", 8192)
	xpCreate(t, dir, "b", 8192)
	os.WriteFile(filepath.Join(dir, "junk"), []byte("not a log at all, just text"), 0o600)
	os.WriteFile(filepath.Join(dir, "zeros"), make([]byte, 4096), 0o600)
	os.Mkdir(filepath.Join(dir, "plain-dir"), 0o700)
	in := NewInspector(InspectOptions{})
	ss, err := in.Sample(dir)
	if err != nil || len(ss) != 2 || ss[0].Path != a || ss[1].Path != filepath.Join(dir, "b") {
		t.Fatalf("%v %+v", err, ss)
	}
	os.Remove(a)
	ss, _ = in.Sample(dir)
	if len(ss) != 1 || len(in.stores) != 1 {
		t.Fatalf("after removal: %+v, %d states", ss, len(in.stores))
	}
	if _, err := Inspect(filepath.Join(dir, "junk")); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("junk: %v", err)
	}
	if _, err := Inspect(dir); !errors.Is(err, ErrBadHeader) { // a directory, not a queue
		t.Fatalf("dir: %v", err)
	}
	if _, err := Inspect(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

// BenchmarkInspect200 samples a directory of 200 logs, each gaining a few frames between
// samples: the steady-state cost of one refresh of `shmio top` or one scrape of the exporter.
// cpu-ms/op is the process CPU time (user + system) per sample.
func BenchmarkInspect200(b *testing.B) {
	dir := testproc.ShmDir(b)
	var ws []*Writer
	for i := range 200 {
		l, err := Open(Options{Path: filepath.Join(dir, fmt.Sprintf("log%03d", i)), Capacity: 4 << 20, Writable: true})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		w, err := l.Writer()
		if err != nil {
			b.Fatal(err)
		}
		appendN(b, w, 1000, 28)
		ws = append(ws, w)
	}
	in := NewInspector(InspectOptions{})
	if _, err := in.Sample(dir); err != nil {
		b.Fatal(err)
	}
	var ru syscall.Rusage
	var cpuSpent time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		for _, w := range ws {
			if _, err := w.Allocate(28); err == nil {
				w.Commit()
			}
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		skip := cpuTime(ru)
		b.StartTimer()
		ss, err := in.Sample(dir)
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpuSpent += cpuTime(ru) - skip
		if err != nil || len(ss) != 200 {
			b.Fatal(err, len(ss))
		}
		n++
	}
	b.ReportMetric(float64(cpuSpent.Microseconds())/1000/float64(n), "cpu-ms/op")
}

func cpuTime(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
