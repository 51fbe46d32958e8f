// Package testproc is the one child-process harness of shmio's tests, shared by every package.
// Cross-process behaviour is tested with real processes: the test binary runs itself again as a
// child in a role chosen by an environment variable (Main dispatches it), or a test starts a
// built binary (StartCmd). A child reports on stdout, line by line; the parent reads those lines
// with bounded waits, collects stderr for its failure messages, and can kill the child with
// SIGKILL. Every wait here is bounded: a test that waits too long fails, naming what it waited
// for, instead of hanging.
//
// It is a test-support package: only _test.go files import it.
package testproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvRole names the environment variable that makes a test binary a child: its value is the
// role Main runs. Parameters reach a child as EnvPrefix+NAME variables (see Start and Param).
const (
	EnvRole   = "SHMIO_TEST_CHILD"
	EnvPrefix = "SHMIO_TEST_"
)

// Main is a package's TestMain: when EnvRole is set it runs that role from roles instead of the
// tests and exits 0 when the role returns nil, 1 (after printing the error on stderr) when it
// fails, 2 for an unknown role. Otherwise it runs the tests.
func Main(m *testing.M, roles map[string]func() error) {
	if role := os.Getenv(EnvRole); role != "" {
		run, ok := roles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
			os.Exit(2)
		}
		if err := run(); err != nil {
			fmt.Fprintf(os.Stderr, "child %s (pid %d): %v\n", role, os.Getpid(), err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Param reads a child's parameter NAME (the EnvPrefix+NAME variable).
func Param(name string) string { return os.Getenv(EnvPrefix + name) }

// ParamInt reads a numeric parameter, def when unset. A malformed value panics: the parent
// passed it, so it is a bug in the test.
func ParamInt(name string, def int64) int64 {
	s := Param(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("%s%s=%q: %v", EnvPrefix, name, s, err))
	}
	return v
}

// Report writes v as one JSON line on stdout: a child's result for Child.Finish.
func Report(v any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

// ChildEnv is the environment for a child: this process's, plus extra ("NAME=value"), with the
// race runtime's exit delay turned off (a race-enabled child would otherwise sleep 1 s on exit).
func ChildEnv(extra ...string) []string {
	env := append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return append(env, extra...)
}

// Command returns the command that runs this test binary as role, running no tests, with the
// parameters ("NAME=value", passed as EnvPrefix+NAME) and ChildEnv. Callers that need to set
// more (Dir, Stdin, extra variables in Env) do so before StartCmd.
func Command(role string, params ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = ChildEnv(EnvRole + "=" + role)
	for _, p := range params {
		cmd.Env = append(cmd.Env, EnvPrefix+p)
	}
	return cmd
}

// Child is a running child process.
type Child struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line; closed at EOF
	stdin  io.WriteCloser
	mu     sync.Mutex
	stderr bytes.Buffer
	waited bool
	err    error // from cmd.Wait
}

// Start runs this test binary as the child role with the given parameters (see Command). The
// child is killed at the end of the test if it still runs.
func Start(t testing.TB, role string, params ...string) *Child {
	t.Helper()
	return StartCmd(t, role, Command(role, params...))
}

// StartCmd starts cmd (any program: this test binary, or one the test built) as a child named
// name in failure messages. Its stdout is read line by line (Line, WaitLine), its stderr
// collected (Stderr); when cmd.Stdin is nil the child gets a pipe (Stdin). A nil cmd.Env means
// ChildEnv(). The child is killed at the end of the test if it still runs.
func StartCmd(t testing.TB, name string, cmd *exec.Cmd) *Child {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = ChildEnv()
	}
	c := &Child{t: t, name: name, cmd: cmd, lines: make(chan string, 1024)}
	cmd.Stderr = lockedWriter{c}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stdin == nil {
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", name, err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		if !c.waited {
			c.cmd.Process.Kill()
			c.drain()
			c.wait()
		}
	})
	return c
}

type lockedWriter struct{ c *Child }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.stderr.Write(p)
}

// Stderr returns what the child wrote on stderr so far.
func (c *Child) Stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// Stdin is the write end of the child's stdin (nil when the caller gave cmd.Stdin).
func (c *Child) Stdin() io.WriteCloser { return c.stdin }

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Signal sends sig to the child, failing the test if it cannot.
func (c *Child) Signal(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal child %s: %v", c.name, err)
	}
}

// drain reads the rest of stdout (until the child closes it, usually by exiting).
func (c *Child) drain() []string {
	var rest []string
	for l := range c.lines {
		rest = append(rest, l)
	}
	return rest
}

func (c *Child) wait() error {
	if !c.waited {
		c.waited = true
		c.err = c.cmd.Wait()
	}
	return c.err
}

// drainWithin drains stdout for at most timeout; on time-out it kills the child, reaps it and
// fails the test with why.
func (c *Child) drainWithin(timeout time.Duration, why string) []string {
	c.t.Helper()
	done := make(chan []string, 1)
	go func() { done <- c.drain() }()
	select {
	case lines := <-done:
		return lines
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		lines := <-done
		c.wait()
		c.t.Fatalf("child %s %s within %v; last output %q; stderr:\n%s", c.name, why, timeout, lastOf(lines), c.Stderr())
		return nil
	}
}

// Line returns the next stdout line, failing the test (and killing the child) after timeout or
// at EOF.
func (c *Child) Line(timeout time.Duration) string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("child %s closed stdout early; stderr:\n%s", c.name, c.Stderr())
		}
		return l
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		c.t.Fatalf("child %s: no output within %v; stderr:\n%s", c.name, timeout, c.Stderr())
	}
	return ""
}

// WaitLine skips stdout lines until one satisfies match and returns it, failing the test (and
// killing the child) if none comes within timeout (the whole wait, not each line) or at EOF.
func (c *Child) WaitLine(timeout time.Duration, what string, match func(string) bool) string {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("child %s closed stdout before %s; stderr:\n%s", c.name, what, c.Stderr())
			}
			if match(l) {
				return l
			}
		case <-deadline.C:
			c.cmd.Process.Kill()
			c.t.Fatalf("child %s: no %s within %v; stderr:\n%s", c.name, what, timeout, c.Stderr())
		}
	}
}

// Finish waits for the child to exit (killing it after timeout), requires exit status 0, and
// decodes its last stdout line as JSON into result (when result is not nil).
func (c *Child) Finish(timeout time.Duration, result any) {
	c.t.Helper()
	lines := c.drainWithin(timeout, "did not finish")
	if err := c.wait(); err != nil {
		c.t.Fatalf("child %s: %v; last output %q; stderr:\n%s", c.name, err, lastOf(lines), c.Stderr())
	}
	if result != nil {
		if len(lines) == 0 {
			c.t.Fatalf("child %s printed no result; stderr:\n%s", c.name, c.Stderr())
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), result); err != nil {
			c.t.Fatalf("child %s result %q: %v", c.name, lines[len(lines)-1], err)
		}
	}
}

// Exit waits for the child to exit (killing it after timeout) and returns its exit code and the
// stdout lines not read yet; -1 when a signal ended it.
func (c *Child) Exit(timeout time.Duration) (code int, rest []string) {
	c.t.Helper()
	rest = c.drainWithin(timeout, "did not exit")
	c.wait()
	return c.cmd.ProcessState.ExitCode(), rest
}

// Kill9 sends SIGKILL and reaps the child, returning the stdout lines not read yet. When it
// returns, the kernel has closed the child's files, so its locks are gone. It fails the test if
// the child had exited before the kill.
func (c *Child) Kill9() []string {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill child %s: %v", c.name, err)
	}
	return c.AwaitKilled(time.Minute)
}

// AwaitKilled waits (at most timeout) for a child that SIGKILL ends, such as one that kills
// itself, and returns its stdout lines not read yet. It fails the test if the child does not
// end in time or ends otherwise.
func (c *Child) AwaitKilled(timeout time.Duration) []string {
	c.t.Helper()
	rest := c.drainWithin(timeout, "was not killed")
	err := c.wait()
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("child %s exited (%v) instead of being killed; last output %q; stderr:\n%s", c.name, err, lastOf(rest), c.Stderr())
	}
	return rest
}

func lastOf(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// WaitFor polls cond every millisecond or so until it holds, failing the test with what after
// timeout. Tests use it to observe another goroutine's or process's progress, never to pace the
// code under test, and never as a correctness check on time.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	d := 100 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(d)
		d = min(2*d, 5*time.Millisecond)
	}
}

// ShmDir returns a fresh directory in /dev/shm (removed after the test), or t.TempDir() where
// there is no /dev/shm: the tests are about shared memory, not a disk.
func ShmDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "shmio-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}
