package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/bench"
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
	var rep bench.Report
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
		name := res.Kind + " " + res.Transport + " " + bench.FormatSize(res.Size)
		if res.Kind == "throughput" {
			name += strings.Repeat("+", res.Readers)
		}
		seen[name] = true
		if !res.Verified || res.Error != "" {
			t.Errorf("%s: not verified: %s", name, res.Failure())
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
			if _, warmup := (bench.Config{Quick: true, Pings: int(res.Frames)}).PingCounts(); len(res.Consumers) != 2 || res.Consumers[1].Frames != res.Frames+int64(warmup) {
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
	// Not a terminal: one progress line per step (2 runs of 6 throughput and 3 latency rows), the
	// rows of a group measured in rounds, each round starting one row further.
	progress := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(progress) != 18 || progress[0] != "bench [1/18] throughput shmio, 48 B frames, 1 reader(s)" ||
		progress[3] != "bench [4/18] throughput ceiling, 48 B frames, 1 reader(s)" ||
		progress[5] != "bench [6/18] throughput shmio, 48 B frames, 1 reader(s)" ||
		progress[17] != "bench [18/18] latency shmio-spin, 48 B frames" {
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

// TestBenchTermHelpers: the load note only on a loaded machine, progress lines only off a
// terminal, ratios or a dash.
func TestBenchTermHelpers(t *testing.T) {
	if n := loadNote(1.5, 2); n != "" {
		t.Errorf("quiet machine: %q", n)
	}
	if n := loadNote(7.25, 2); !strings.HasPrefix(n, "note: the machine is loaded (load average 7.2 > 2 CPUs)") {
		t.Errorf("loaded machine: %q", n)
	}
	var b strings.Builder
	progressLine(&b, false, bench.Step{N: 2, Of: 9, What: "throughput ceiling, 32 B frames, 1 reader(s)"})
	progressLine(&b, true, bench.Step{N: 3, Of: 9, What: "drawn by the status line instead"})
	if b.String() != "bench [2/9] throughput ceiling, 32 B frames, 1 reader(s)\n" {
		t.Errorf("progress lines %q", b.String())
	}
	if fmtRatio(0.934) != "0.93x" || fmtRatio(0) != "-" {
		t.Errorf("ratios %q %q", fmtRatio(0.934), fmtRatio(0))
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
