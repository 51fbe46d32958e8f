package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// TestBenchQuick runs the whole quick benchmark as a user would and checks that every consumer of
// every run verified its data. Rates are reported, never asserted (noisy 2-core machine).
func TestBenchQuick(t *testing.T) {
	args := []string{"bench", "--quick", "--json"}
	if raceEnabled() {
		// Race-checked processes run several times slower; the same paths with fewer frames.
		args = append(args, "--frames", "20000", "--pings", "300")
	}
	benchNoRaceExitSleep(t)
	r := runShmio(t, args)
	if r.code != 0 {
		t.Fatalf("bench --quick: exit %d, stderr: %s", r.code, r.stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --json output is not JSON: %v\n%s", err, r.stdout)
	}
	if !rep.Verified {
		t.Fatalf("report not verified: %s", r.stdout)
	}
	// 2 sizes x (2 reader counts x 5 transports (ceiling included) + 3 latency modes)
	if len(rep.Results) != 26 {
		t.Fatalf("got %d results, want 26", len(rep.Results))
	}
	seen := map[string]bool{}
	for _, res := range rep.Results {
		name := res.Kind + " " + res.Transport + " " + benchSize(res.Size)
		if res.Kind == "throughput" {
			name += strings.Repeat("+", res.Readers)
		}
		seen[name] = true
		if !res.Verified || res.Error != "" {
			t.Errorf("%s: not verified: %s", name, res.failure())
			continue
		}
		switch res.Kind {
		case "throughput":
			if len(res.Consumers) != res.Readers {
				t.Errorf("%s: %d consumer reports, want %d", name, len(res.Consumers), res.Readers)
			}
			for i, c := range res.Consumers {
				if c.Frames != res.Frames || c.Gaps != 0 || c.Bad != 0 || !c.Verified {
					t.Errorf("%s consumer %d: %+v, want all %d frames", name, i+1, c, res.Frames)
				}
			}
			if res.FramesPerSec <= 0 || res.BytesPerSec != res.FramesPerSec*float64(res.Size) {
				t.Errorf("%s: frames/s %v bytes/s %v", name, res.FramesPerSec, res.BytesPerSec)
			}
		case "latency":
			if _, warmup := (&bencher{o: &benchOptions{quick: true, pings: int(res.Frames)}}).pings(); len(res.Consumers) != 2 || res.Consumers[1].Frames != res.Frames+int64(warmup) {
				t.Errorf("%s: consumers %+v, want the pong side to see %d frames", name, res.Consumers, res.Frames+int64(warmup))
			}
			if res.P50 <= 0 || res.P99 < res.P50 || res.P999 < res.P99 || res.Max < res.P999 {
				t.Errorf("%s: percentiles out of order: %d %d %d %d", name, res.P50, res.P99, res.P999, res.Max)
			}
		default:
			t.Errorf("unknown kind %q", res.Kind)
		}
		if res.Runs != 1 {
			t.Errorf("%s: %d runs, want 1", name, res.Runs)
		}
		if res.Transport == "unix" && res.VsSocket != 1 {
			t.Errorf("%s: ratio to itself %v", name, res.VsSocket)
		}
		if res.Kind == "throughput" && (res.VsCeiling <= 0 || res.Transport == "ceiling" && res.VsCeiling != 1) {
			t.Errorf("%s: ratio to the ceiling %v", name, res.VsCeiling)
		}
	}
	for _, want := range []string{"throughput shmio 32 B+", "throughput shmio 32 B+++", "throughput unix 1 KiB+++", "throughput ceiling 32 B+", "throughput ceiling 1 KiB+++",
		"throughput pipe 32 B+", "throughput tcp 1 KiB+", "latency shmio-spin 32 B", "latency shmio-futex 1 KiB", "latency unix 32 B"} {
		if !seen[want] {
			t.Errorf("no %q run", want)
		}
	}
	if rep.Machine.CPUs <= 0 || rep.CommitEvery != 1000 || !rep.Quick {
		t.Errorf("report header: %+v", rep)
	}
}

// TestBenchTable checks the human-readable table with a subset of runs.
func TestBenchTable(t *testing.T) {
	benchNoRaceExitSleep(t)
	r := runShmio(t, []string{"bench", "--quick", "--size", "48", "--frames", "5000", "--pings", "300",
		"--transports", "shmio,ceiling,unix", "--fanout", "2", "--commit-every", "64", "--runs", "2"})
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	// Not a terminal: one progress line per step (2 runs of 6 throughput and 3 latency rows).
	progress := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(progress) != 18 || progress[0] != "bench [1/18] throughput shmio, 48 B frames, 1 reader(s)" ||
		progress[17] != "bench [18/18] latency unix, 48 B frames" {
		t.Errorf("stderr progress:\n%s", r.stderr)
	}
	for _, want := range []string{
		"throughput: 5,000 frames of 48 B, commit/flush every 64 frames; latency: 300 round trips",
		"each row: the median of 2 runs",
		"TEST", "FRAMES/S", "VS SOCKET", "VS CEILING",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	var rows []string
	for line := range strings.Lines(r.stdout) {
		if strings.HasPrefix(line, "throughput ") || strings.HasPrefix(line, "latency ") {
			rows = append(rows, strings.Join(strings.Fields(line), " "))
		}
	}
	wantPrefixes := []string{
		"throughput shmio 48 B 1 ", "throughput ceiling 48 B 1 ", "throughput unix 48 B 1 ",
		"throughput shmio 48 B 2 ", "throughput ceiling 48 B 2 ", "throughput unix 48 B 2 ",
		"latency shmio-spin 48 B 1 - - ", "latency shmio-futex 48 B 1 - - ", "latency unix 48 B 1 - - ",
	}
	if len(rows) != len(wantPrefixes) {
		t.Fatalf("rows:\n%s\nwant %d", strings.Join(rows, "\n"), len(wantPrefixes))
	}
	for i, row := range rows {
		if !strings.HasPrefix(row, wantPrefixes[i]) || !strings.HasSuffix(row, " ok") {
			t.Errorf("row %d = %q, want prefix %q and check ok", i, row, wantPrefixes[i])
		}
	}
	if !strings.Contains(rows[2], " 1.00x ") || !strings.HasSuffix(rows[8], " 1.00x - ok") {
		t.Errorf("socket rows should have ratio 1.00x: %q %q", rows[2], rows[8])
	}
	// VS CEILING: the ceiling rows 1.00x, the others a ratio; latency rows none.
	ratio := regexp.MustCompile(` \d+\.\d\dx \d+\.\d\dx ok$`)
	for _, i := range []int{0, 1, 2, 3, 4, 5} {
		if !ratio.MatchString(rows[i]) || (i == 1 || i == 4) && !strings.HasSuffix(rows[i], " 1.00x ok") {
			t.Errorf("row %q: want VS SOCKET and VS CEILING ratios (1.00x for the ceiling)", rows[i])
		}
	}
}

// benchNoRaceExitSleep drops the race detector's one-second sleep at process exit for the
// processes a test starts: bench and demo start a dozen children, each would add a second.
func benchNoRaceExitSleep(t *testing.T) {
	if raceEnabled() {
		t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
}

func TestBenchErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--size", "4"}, "shmio: invalid --size 4 B: want 8 to 65531 bytes"},
		{[]string{"bench", "--size", "64KiB"}, "shmio: invalid --size 64 KiB: want 8 to 65531 bytes"},
		{[]string{"bench", "--size", "lots"}, `invalid argument "lots" for "--size" flag`},
		{[]string{"bench", "--transports", "carrier-pigeon"}, `shmio: invalid --transports "carrier-pigeon": want shmio, ceiling, unix, pipe or tcp`},
		{[]string{"bench", "--commit-every", "0"}, "shmio: invalid --commit-every 0: want at least 1"},
		{[]string{"bench", "--runs", "0"}, "shmio: invalid --runs 0: want at least 1"},
		{[]string{"bench", "extra"}, `unknown command "extra"`},
	} {
		r := runShmio(t, tc.args)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("shmio %s: exit %d stderr %q, want one line containing %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// TestBenchSeqCheck: the consumers' verification catches every way a transport could cheat or break.
func TestBenchSeqCheck(t *testing.T) {
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
			done = c.check(f, 3)
		}
		r := c.result(0, 0, 0)
		if r.Gaps != tc.gaps || r.Bad != tc.bad || done != tc.done || r.verified(4) != tc.verified {
			t.Errorf("%s: gaps %d bad %d done %v verified %v, want %d %d %v %v (%s)",
				tc.name, r.Gaps, r.Bad, done, r.verified(4), tc.gaps, tc.bad, tc.done, tc.verified, r.FirstBad)
		}
		if (tc.gaps+tc.bad > 0) != (r.FirstBad != "") {
			t.Errorf("%s: first problem %q", tc.name, r.FirstBad)
		}
		// The batch form (shmio's consumer) agrees frame for frame.
		cb := seqCheck{size: 32}
		if done := cb.checkBatch(tc.frames, 3); done != tc.done || cb.result(0, 0, 0) != r {
			t.Errorf("%s: checkBatch %+v done %v, check %+v", tc.name, cb.result(0, 0, 0), done, r)
		}
	}
}

// TestBenchShmConsumeZeroAlloc: the shmio consumer allocates nothing per frame.
func TestBenchShmConsumeZeroAlloc(t *testing.T) {
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
	if r := last.result(0, 0, 0); !r.verified(n) {
		t.Fatalf("consumer result %+v", r)
	}
	// A handful per run for the iterator and the batch slice, none per frame.
	if allocs > 10 {
		t.Errorf("%v allocations to consume %d frames", allocs, n)
	}
}

// TestBenchStreamConsume: the socket consumer parses frames split anywhere across reads, checks them,
// and allocates nothing per frame.
func TestBenchStreamConsume(t *testing.T) {
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
	if r := chk.result(0, 0, 0); !r.verified(n) {
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
	if r := chk.result(0, 0, 0); r.Frames != n/2 || r.verified(n) {
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

func TestBenchLatHist(t *testing.T) {
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

func TestBenchHelpers(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{fmtRate(999_999), "1.00M"}, {fmtRate(12_345), "12.3k"}, {fmtRate(95_100_000), "95.1M"}, {fmtRate(12), "12"},
		{fmtRate(992_000), "992k"}, {fmtRate(1_234_567), "1.23M"}, {fmtRate(2.5e9), "2.50G"}, {fmtRate(999.4), "999"},
		{fmtNanos(820), "820ns"}, {fmtNanos(3_400), "3.4µs"}, {fmtNanos(12_000), "12µs"}, {fmtNanos(1_200_000), "1.2ms"},
		{fmtCount(3_000_000), "3,000,000"}, {fmtCount(999), "999"}, {fmtCount(-1), "-1"}, {fmtCount(1000), "1,000"},
		{benchSize(32), "32 B"}, {benchSize(1024), "1 KiB"}, {benchSize(1000), "1000 B"},
		{fmtBytesRate(3 << 30), "3.00 GiB/s"}, {fmtBytesRate(512 << 20), "512 MiB/s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	s := latSummarize([]int64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10})
	if s.P50 != 5 || s.P99 != 10 || s.Max != 10 {
		t.Errorf("summary %+v", s)
	}

	rs := []benchResult{
		{Kind: "throughput", Transport: "shmio", Size: 32, Readers: 1, FramesPerSec: 90e6, Verified: true},
		{Kind: "throughput", Transport: "unix", Size: 32, Readers: 1, FramesPerSec: 30e6, Verified: true},
		{Kind: "throughput", Transport: "shmio", Size: 32, Readers: 3, FramesPerSec: 50e6, Verified: true},
		{Kind: "throughput", Transport: "unix", Size: 32, Readers: 3, FramesPerSec: 10e6, Verified: true},
		{Kind: "latency", Transport: "shmio-spin", Size: 32, Readers: 1, P50: 200, Verified: true},
		{Kind: "latency", Transport: "shmio-futex", Size: 32, Readers: 1, P50: 20_000, Verified: true},
		{Kind: "latency", Transport: "unix", Size: 32, Readers: 1, P50: 10_000, Verified: true},
		{Kind: "throughput", Transport: "pipe", Size: 32, Readers: 1, Frames: 100, Verified: false,
			Consumers: []consumerReport{{Frames: 99, Gaps: 1, FirstBad: "frame 5: seq 6, want 5"}}},
	}
	fillRatios(rs)
	for i, want := range []float64{3, 1, 5, 1, 50, 0.5, 1} {
		if rs[i].VsSocket != want {
			t.Errorf("row %d ratio %v, want %v", i, rs[i].VsSocket, want)
		}
	}
	goals := strings.Join(benchGoals(rs, 3), "\n")
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
	failed := benchFailures(rs)
	if len(failed) != 1 || failed[0] != "throughput pipe 32 B, 1 reader(s): consumer 1 got 99 of 100 frames, 1 gaps, 0 damaged (first: frame 5: seq 6, want 5)" {
		t.Errorf("failures %q", failed)
	}
}

// TestBenchInterrupt: Ctrl-C in the middle of a run stops the children, removes the logs and
// exits 130.
func TestBenchInterrupt(t *testing.T) {
	benchNoRaceExitSleep(t)
	dir := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "shmio-bench-test-"); err == nil {
		dir = d // a 1 GiB log is quick to make in memory, slow on disk
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	p := startShmio(t, []string{"bench", "--dir", dir, "--frames", "25000000", "--size", "32", "--transports", "shmio"})
	var path string
	waitFor(t, 30*time.Second, "the first benchmark log", func() bool {
		logs, _ := filepath.Glob(filepath.Join(dir, "shmio-bench-*"))
		if len(logs) > 0 {
			path = logs[0]
		}
		return path != "" && demoChildren(t, path) == 2 // producer and consumer are running
	})
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t, 20*time.Second); code != 130 {
		t.Errorf("exit code %d, want 130; stderr %q", code, p.stderr.String())
	}
	// Not a terminal: the progress line of the step it was in, then the message.
	if got := p.stderr.String(); got != "bench [1/5] throughput shmio, 32 B frames, 1 reader(s)\nshmio: interrupted; children stopped and logs removed\n" {
		t.Errorf("stderr %q", got)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
	if n := demoChildren(t, path); n != 0 {
		t.Errorf("%d child processes still running after SIGINT", n)
	}
}

// BenchmarkBenchShmConsume is the shmio consumer's own cost per 32-byte frame (NextBatch plus
// the sequence checks), with everything already committed: the ceiling of a bench consumer.
func BenchmarkBenchShmConsume(b *testing.B) {
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

// BenchmarkBenchStreamConsume is the socket consumer's parsing and checking cost per 32-byte
// frame, from memory (no system calls): what the socket baseline spends besides the kernel.
func BenchmarkBenchStreamConsume(b *testing.B) {
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

// TestBenchStreamConsumeShortFrames: frames too short to carry a sequence number are reported,
// not a crash.
func TestBenchStreamConsumeShortFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, n := range []int{3, 0, 12} {
		binary.Write(&buf, binary.LittleEndian, uint32(n))
		buf.Write(make([]byte, n))
	}
	chk := seqCheck{size: 16}
	if _, err := streamConsume(bufio.NewReader(&buf), &chk, 5); err != nil {
		t.Fatal(err)
	}
	if r := chk.result(0, 0, 0); r.Frames != 3 || r.Bad != 3 || r.verified(5) || !strings.Contains(r.FirstBad, "frame 0: 3 bytes, want 16") {
		t.Errorf("result %+v", r)
	}
}
