package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/bench"
)

// demoLogPath extracts the log path from the demo's first line.
var demoHeaderRE = regexp.MustCompile(`^shmio demo: 1 writer and (\d+) readers? on (\S+) \(`)

var demoLiveRE = regexp.MustCompile(`(?m)^ +\d+\.\ds  writer \S+/s  readers `)

// TestDemo runs a short demo as a user would and checks the summary says every reader got every
// event, with one line per process, and that the log file is gone afterwards.
func TestDemo(t *testing.T) {
	benchNoRaceExitSleep(t)
	dir := t.TempDir()
	r := runShmio(t, []string{"demo", "--duration", "1s", "--rate", "200000", "--size", "64MiB", "--dir", dir})
	if r.code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	m := demoHeaderRE.FindStringSubmatch(lines[0])
	if m == nil || m[1] != "3" || filepath.Dir(m[2]) != dir {
		t.Fatalf("first line %q", lines[0])
	}
	if _, err := os.Stat(m[2]); !os.IsNotExist(err) {
		t.Errorf("demo left its log behind: %v", err)
	}
	verdict := lines[len(lines)-1]
	vm := regexp.MustCompile(`^OK: every reader got every event \(([\d,]+) each\), in order, with intact checksums\. Log removed\.$`).FindStringSubmatch(verdict)
	if vm == nil {
		t.Fatalf("last line %q, want the OK verdict\n%s", verdict, r.stdout)
	}
	events := vm[1]
	if events == "0" {
		t.Fatalf("no events streamed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "writer    "+events+" events in ") {
		t.Errorf("no writer line with %s events:\n%s", events, r.stdout)
	}
	for i := 1; i <= 3; i++ {
		want := regexp.MustCompile(`(?m)^reader ` + string(rune('0'+i)) + `  ` + events +
			` events, last seq [\d,]+, in order, 0 checksum errors, latency p50 \S+ p99 \S+ p99\.9 \S+$`)
		if !want.MatchString(r.stdout) {
			t.Errorf("no summary line for reader %d:\n%s", i, r.stdout)
		}
	}
	// Not a terminal: live stats come as plain lines (no carriage returns or escape sequences).
	if strings.ContainsAny(r.stdout, "\r\x1b") {
		t.Errorf("terminal control characters in piped output: %q", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("stderr: %q", r.stderr)
	}
}

// TestDemoOneReaderSmallLog: the rate is lowered to what fits in the log, and the stream still
// verifies end to end.
func TestDemoOneReaderSmallLog(t *testing.T) {
	benchNoRaceExitSleep(t)
	r := runShmio(t, []string{"demo", "--duration", "500ms", "--readers", "1", "--size", "1MiB", "--dir", t.TempDir()})
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"1 writer and 1 reader on ", "(rate lowered from 1.00M/s so 500ms of events fit in 1MiB", "OK: every reader got every event"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "reader 2") {
		t.Errorf("asked for one reader:\n%s", r.stdout)
	}
}

func TestDemoErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--readers", "0"}, "shmio: invalid --readers 0: want 1 to 64"},
		{[]string{"demo", "--duration", "0s"}, "shmio: invalid --duration 0s: want a positive duration"},
		{[]string{"demo", "--size", "4KiB"}, "shmio: invalid --size 4KiB: want at least 1MiB"},
		{[]string{"demo", "--size", "big"}, `invalid argument "big" for "--size" flag`},
		{[]string{"demo", "--dir", "/nonexistent/dir"}, "shmio: creating the demo log /nonexistent/dir/"},
	} {
		r := runShmio(t, tc.args)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("shmio %s: exit %d stderr %q, want one line containing %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// TestDemoInterrupt: Ctrl-C stops the children, removes the log and exits 130.
func TestDemoInterrupt(t *testing.T) {
	benchNoRaceExitSleep(t)
	dir := t.TempDir()
	p := startShmio(t, []string{"demo", "--duration", "1m", "--rate", "10000", "--size", "64MiB", "--dir", dir})
	var path string
	waitFor(t, 30*time.Second, "the demo's first live line", func() bool {
		out := p.stdout.String()
		if m := demoHeaderRE.FindStringSubmatch(out); m != nil {
			path = m[2]
		}
		return demoLiveRE.MatchString(out) // a live line: every child is running
	})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("log %s missing while the demo runs: %v", path, err)
	}
	if n := demoChildren(t, path); n != 4 {
		t.Errorf("%d child processes use %s, want 4", n, path)
	}
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t, 20*time.Second); code != 130 {
		t.Errorf("exit code %d, want 130; stderr %q", code, p.stderr.String())
	}
	if got := p.stderr.String(); got != "shmio: interrupted; children stopped and log removed\n" {
		t.Errorf("stderr %q", got)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("log left behind after SIGINT: %v", err)
	}
	if n := demoChildren(t, path); n != 0 {
		t.Errorf("%d child processes still running after SIGINT", n)
	}
}

// demoChildren counts live processes whose command line mentions path (the demo's children).
func demoChildren(t *testing.T, path string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	if procs == nil {
		t.Skip("no /proc")
	}
	n := 0
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), bench.ChildArg) || !strings.Contains(string(b), path) {
			continue
		}
		// A zombie has an empty cmdline, so anything that matched is alive.
		n++
	}
	return n
}

// TestDemoErrorNamesPathOnce: an error opening the demo's log names its path once, not as
// "create X: open X: ..." with the temporary file's name as well.
func TestDemoErrorNamesPathOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	r := runShmio(t, []string{"demo", "--dir", dir})
	if r.code != 2 || strings.Count(r.stderr, dir) != 1 || strings.Contains(r.stderr, ".tmp-") ||
		!strings.HasSuffix(r.stderr, ": no such file or directory\n") {
		t.Fatalf("demo --dir %s: %+v", dir, r)
	}
}
