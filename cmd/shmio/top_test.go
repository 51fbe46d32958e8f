package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// topFixture makes, in a fresh directory: "busy", a log with 10 frames (1% full); "full", a log
// over 90% full; "q", a queue of 20 frames whose named reader "slow" read one and stopped.
func topFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mk := func(name string, capacity int64, frames, size int) {
		l, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, name), Capacity: capacity, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		w, err := l.Writer()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for range frames {
			if err := w.Append(make([]byte, size)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	mk("busy", 64<<10, 10, 60)
	mk("full", 8<<10, 200, 36) // 8000 of 8000 bytes
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: filepath.Join(dir, "q"), Writable: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := w.Append([]byte(fmt.Sprintf("frame %02d of the queue", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	it, err := q.NamedIterator("slow", shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTopOnceJSON(t *testing.T) {
	dir := topFixture(t)
	out := mustRun(t, []string{"top", "--once", "--json", "--interval", "50ms", "--lag", "1ms", "--sort", "fill", dir})
	var ts []topStore
	if err := json.Unmarshal([]byte(out), &ts); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(ts) != 3 {
		t.Fatalf("want 3 stores: %s", out)
	}
	full, q, busy := ts[0], ts[1], ts[2] // sorted by fill
	if full.Path != filepath.Join(dir, "full") || full.Frames != 200 || !full.FramesExact || full.FillPercent <= 90 ||
		!full.Rated || full.FramesPerSec != 0 || len(full.Alerts) != 1 || !strings.HasPrefix(full.Alerts[0], "full:") {
		t.Fatalf("full: %+v", full)
	}
	if busy.Path != filepath.Join(dir, "busy") || busy.Frames != 10 || busy.Bytes != 640 || busy.Kind != "log" || len(busy.Alerts) != 0 || busy.WriterPID != 0 {
		t.Fatalf("busy: %+v", busy)
	}
	if q.Kind != "queue" || q.Frames != 20 || q.Segments < 1 || len(q.Readers) != 1 {
		t.Fatalf("queue: %+v", q)
	}
	r := q.Readers[0]
	if r.Name != "slow" || r.LagFrames != 19 || !r.LagExact || r.LagSeconds <= 0 || r.Active {
		t.Fatalf("reader: %+v", r)
	}
	if len(q.Alerts) != 1 || !strings.HasPrefix(q.Alerts[0], "lag: reader slow") {
		t.Fatalf("queue alerts: %q", q.Alerts)
	}
	plain := mustRun(t, []string{"top", "--once", "--interval", "0", dir})
	for _, want := range []string{"PATH", filepath.Join(dir, "busy"), "! " + filepath.Join(dir, "full"), "└ reader slow", "lag 19 frames"} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain output lacks %q:\n%s", want, plain)
		}
	}
	if r := runShmio(t, []string{"top", "--json", dir}); r.code != 2 || !strings.Contains(r.stderr, "--json needs --once") {
		t.Fatalf("--json without --once: %+v", r)
	}
}

// TestTopViewInTmux drives the full-screen view in a real terminal: tmux runs it in a detached
// session; send-keys types and capture-pane reads the screen.
func TestTopViewInTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (apt-get install -y tmux): the interactive view cannot be driven")
	}
	dir := topFixture(t)
	sock := fmt.Sprintf("shmio-top-test-%d", os.Getpid())
	tm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tmux, append([]string{"-L", sock}, args...)...)
		cmd.Env = append(childEnv(), "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	// termenv, under lipgloss, draws no colour when CI is set (CI runs this test with CI=true).
	script := fmt.Sprintf("env -u CI TERM=xterm-256color COLORTERM=truecolor %s top --interval 200ms --lag 1ms %s; echo TOP-EXITED-$?; sleep 60", shmioBin, dir)
	tm("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "160", "-y", "40", script)
	t.Cleanup(func() { exec.Command(tmux, "-L", sock, "kill-server").Run() })
	screen := func() string { return tm("capture-pane", "-p", "-t", "top") }
	waitScreen := func(what string, cond func(string) bool) string {
		t.Helper()
		var s string
		waitFor(t, 20*time.Second, what+" on screen", func() bool { s = screen(); return cond(s) })
		return s
	}
	order := func(s string, names ...string) bool {
		last := -1
		for _, n := range names {
			i := strings.Index(s, filepath.Join(dir, n))
			if i <= last {
				return false
			}
			last = i
		}
		return true
	}

	s := waitScreen("the table", func(s string) bool {
		return strings.Contains(s, "sort: rate") && strings.Contains(s, "3 stores") && strings.Contains(s, "└ reader slow")
	})
	for _, want := range []string{"PATH", "FRAMES/S", "! " + filepath.Join(dir, "full"), "full: ", "lag: reader slow", "lag 19 frames"} {
		if !strings.Contains(s, want) {
			t.Fatalf("screen lacks %q:\n%s", want, s)
		}
	}
	if !order(s, "busy", "full", "q") { // no rates: ties go by path
		t.Fatalf("rate order:\n%s", s)
	}
	// The full log's row is drawn red.
	esc := tm("capture-pane", "-p", "-e", "-t", "top")
	red := regexp.MustCompile(`\x1b\[[0-9;]*(31|91|38;5;1|38;5;9|38;2;128;0;0)[;m][^\n]*` + regexp.QuoteMeta(filepath.Join(dir, "full")))
	if !red.MatchString(esc) {
		t.Fatalf("the full log's row is not red:\n%q", esc)
	}

	tm("send-keys", "-t", "top", "f")
	s = waitScreen("sort by fill", func(s string) bool { return strings.Contains(s, "sort: fill") })
	if !order(s, "full", "q", "busy") {
		t.Fatalf("fill order:\n%s", s)
	}
	// The selection (reverse video) follows its store: "busy", first by rate, is now last; up
	// moves it to the queue.
	sel := regexp.MustCompile(`\x1b\[[0-9;]*7[;m][^\n]*` + regexp.QuoteMeta(filepath.Join(dir, "q")))
	tm("send-keys", "-t", "top", "Up")
	waitFor(t, 20*time.Second, "the queue selected", func() bool {
		return sel.MatchString(tm("capture-pane", "-p", "-e", "-t", "top"))
	})
	tm("send-keys", "-t", "top", "p")
	s = waitScreen("sort by path", func(s string) bool { return strings.Contains(s, "sort: path") })
	if !order(s, "busy", "full", "q") {
		t.Fatalf("path order:\n%s", s)
	}
	tm("send-keys", "-t", "top", "q")
	waitScreen("top exiting with status 0", func(s string) bool { return strings.Contains(s, "TOP-EXITED-0") })
}
