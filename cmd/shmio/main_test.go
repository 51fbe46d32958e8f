package main

// Shared test harness: TestMain builds the shmio binary once per test run and every CLI test
// drives it as a user would (runShmio / startShmio). Tests that need a helper process which is
// not the CLI can register a function in testHelpers and start it with startHelper: the test
// binary re-executes itself with testproc.EnvRole (SHMIO_TEST_CHILD) set to name.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

// shmioBin is the path of the binary built by TestMain.
var shmioBin string

// testHelpers maps a name to a function run in a re-executed test binary; its return value is
// the helper process's exit code. Register from an init function in a _test.go file.
var testHelpers = map[string]func() int{}

const helperEnv = testproc.EnvRole // the shared harness's role variable

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		f, ok := testHelpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test helper %q\n", name)
			os.Exit(3)
		}
		os.Exit(f())
	}
	dir, err := os.MkdirTemp("", "shmio-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// World-traversable so tests can run the binary as an unprivileged user (see asNobody).
	_ = os.Chmod(dir, 0o755)
	shmioBin = filepath.Join(dir, "shmio")
	args := []string{"build", "-o", shmioBin}
	if raceEnabled() {
		args = append(args, "-race") // the CLI's own goroutines get race-checked too
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building shmio: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// childEnv is the environment for processes the tests start. A race-enabled binary sleeps a
// second at exit by default (so that other threads can report); that would make every CLI run
// a second long. A race found in a child still makes it exit with status 66.
func childEnv() []string { return testproc.ChildEnv() }

// result is what one run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

// runOpt adjusts a command before it starts.
type runOpt func(*exec.Cmd)

// withStdin feeds s on standard input.
func withStdin(s string) runOpt { return func(c *exec.Cmd) { c.Stdin = strings.NewReader(s) } }

// withStdinReader feeds r on standard input.
func withStdinReader(r io.Reader) runOpt { return func(c *exec.Cmd) { c.Stdin = r } }

// asNobody runs the command as uid/gid 65534 when the tests run as root, so that file modes
// apply (root ignores them). Unprivileged test runs are subject to file modes already.
// The files involved must be reachable: see makeReachable.
func asNobody() runOpt {
	return func(c *exec.Cmd) {
		if os.Geteuid() == 0 {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
	}
}

// makeReachable makes dir and its parent (t.TempDir's per-test directory) searchable by
// everyone, so a process run asNobody can reach the files the test means it to.
func makeReachable(t testing.TB, dir string) {
	t.Helper()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// runShmio runs the binary with args, waits (at most a minute) and returns its output and exit code.
func runShmio(t testing.TB, args []string, opts ...runOpt) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shmioBin, args...)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	for _, o := range opts {
		o(cmd)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("shmio %s: %v (stderr: %s)", strings.Join(args, " "), err, r.stderr)
	}
	return r
}

// mustRun runs the binary and fails the test unless it exits 0; it returns stdout.
func mustRun(t testing.TB, args []string, opts ...runOpt) string {
	t.Helper()
	r := runShmio(t, args, opts...)
	if r.code != 0 {
		t.Fatalf("shmio %s: exit %d, stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running shmio (or helper) process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

// startShmio starts the binary in the background; the process is killed when the test ends.
func startShmio(t testing.TB, args []string, opts ...runOpt) *proc {
	t.Helper()
	cmd := exec.Command(shmioBin, args...)
	cmd.Env = childEnv()
	return startProc(t, cmd, opts...)
}

// startHelper starts this test binary running testHelpers[name] with args (read them from os.Args[1:]).
func startHelper(t testing.TB, name string, args []string, opts ...runOpt) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(childEnv(), helperEnv+"="+name)
	return startProc(t, cmd, opts...)
}

func startProc(t testing.TB, cmd *exec.Cmd, opts ...runOpt) *proc {
	t.Helper()
	p := &proc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	for _, o := range opts {
		o(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %v; stdout: %q stderr: %q", p.cmd.Path, d, p.stdout.String(), p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitFor polls cond (every 5ms, up to d) and fails the test with msg if it never holds.
// Tests use it only to observe another process's output, never to pace the code under test.
func waitFor(t testing.TB, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	testproc.WaitFor(t, d, msg, cond)
}

// testLogPath returns a path for a new log in a fresh temporary directory (not created).
func testLogPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "test.log")
}

// createLog creates a log with the CLI and returns its path.
func createLog(t testing.TB, capacity string, extra ...string) string {
	t.Helper()
	path := testLogPath(t)
	mustRun(t, append([]string{"create", path, "--capacity", capacity}, extra...))
	return path
}

// appendLines appends lines (one frame each) with the CLI.
func appendLines(t testing.TB, path string, lines ...string) {
	t.Helper()
	mustRun(t, []string{"append", path, "-q"}, withStdin(strings.Join(lines, "\n")+"\n"))
}

// wantLines fails unless got is exactly the lines, each newline-terminated.
func wantLines(t testing.TB, got string, want ...string) {
	t.Helper()
	exp := ""
	if len(want) > 0 {
		exp = strings.Join(want, "\n") + "\n"
	}
	if got != exp {
		t.Fatalf("output:\n%q\nwant:\n%q", got, exp)
	}
}
