package shmio

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cross-process tests run the test binary itself as the other processes: TestMain looks at
// xpEnvRole and, when set, runs that child role instead of the tests. The race detector cannot see
// memory shared through mmap between processes, so these tests check results (sequence numbers,
// checksums, liveness), not data races. Parameters reach a child through SHMIO_TEST_* variables;
// a child reports on stdout (one JSON object, or one line per event) and exits 0 when it is happy.

const xpEnvRole = "SHMIO_TEST_CHILD"

// xpRoles are the child roles, registered by the files that use them.
var xpRoles = map[string]func() error{}

func TestMain(m *testing.M) {
	if role := os.Getenv(xpEnvRole); role != "" {
		run, ok := xpRoles[role]
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

// xpEnv reads a child parameter.
func xpEnv(name string) string { return os.Getenv("SHMIO_TEST_" + name) }

func xpEnvInt(name string, def int64) int64 {
	s := xpEnv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("SHMIO_TEST_%s=%q: %v", name, s, err))
	}
	return v
}

// xpReport writes v as one JSON line on stdout: a child's result for the parent.
func xpReport(v any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

// xpChild is a running child process.
type xpChild struct {
	t      testing.TB
	role   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	lines  chan string // stdout, line by line; closed at EOF
	stdin  io.WriteCloser
	waited bool
	mu     sync.Mutex
	err    error // from cmd.Wait
}

// xpStart starts the test binary as the child role with the given SHMIO_TEST_ parameters
// ("NAME=value"). The child is killed at the end of the test if still running.
func xpStart(t testing.TB, role string, params ...string) *xpChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// A race-enabled child would otherwise sleep 1 s on exit (the race runtime's atexit_sleep_ms).
	cmd.Env = append(os.Environ(), xpEnvRole+"="+role, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	for _, p := range params {
		cmd.Env = append(cmd.Env, "SHMIO_TEST_"+p)
	}
	c := &xpChild{t: t, role: role, cmd: cmd, stderr: new(bytes.Buffer), lines: make(chan string, 1024)}
	cmd.Stderr = &xpLockedWriter{mu: &c.mu, w: c.stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", role, err)
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

type xpLockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *xpLockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Stderr returns what the child wrote on stderr so far.
func (c *xpChild) Stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// drain reads the rest of stdout (until the child closes it, usually by exiting).
func (c *xpChild) drain() []string {
	var rest []string
	for l := range c.lines {
		rest = append(rest, l)
	}
	return rest
}

func (c *xpChild) wait() error {
	if !c.waited {
		c.waited = true
		c.err = c.cmd.Wait()
	}
	return c.err
}

// line returns the next stdout line, failing the test after timeout or at EOF.
func (c *xpChild) line(timeout time.Duration) string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("child %s closed stdout early; stderr:\n%s", c.role, c.Stderr())
		}
		return l
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		c.t.Fatalf("child %s: no output within %v; stderr:\n%s", c.role, timeout, c.Stderr())
	}
	return ""
}

// finish waits for the child to exit (killing it after timeout), requires exit status 0, and
// decodes its last stdout line as JSON into result (when result is not nil).
func (c *xpChild) finish(timeout time.Duration, result any) {
	c.t.Helper()
	done := make(chan []string, 1)
	go func() { done <- c.drain() }()
	var lines []string
	select {
	case lines = <-done:
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		lines = <-done
		c.wait()
		c.t.Fatalf("child %s did not finish within %v; last output %q; stderr:\n%s", c.role, timeout, xpLastOf(lines), c.Stderr())
	}
	if err := c.wait(); err != nil {
		c.t.Fatalf("child %s: %v; last output %q; stderr:\n%s", c.role, err, xpLastOf(lines), c.Stderr())
	}
	if result != nil {
		if len(lines) == 0 {
			c.t.Fatalf("child %s printed no result; stderr:\n%s", c.role, c.Stderr())
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), result); err != nil {
			c.t.Fatalf("child %s result %q: %v", c.role, lines[len(lines)-1], err)
		}
	}
}

// kill9 sends SIGKILL and reaps the child, returning the stdout lines it had not read yet. When
// it returns, the kernel has closed the child's files, so its flock is gone.
func (c *xpChild) kill9() []string {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill child %s: %v", c.role, err)
	}
	rest := c.drain()
	err := c.wait()
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("child %s exited before the kill (%v); last output %q; stderr:\n%s", c.role, err, xpLastOf(rest), c.Stderr())
	}
	return rest
}

func xpLastOf(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// xpDir returns a fresh directory in /dev/shm (removed after the test), or t.TempDir() where
// there is no /dev/shm: the tests are about shared memory, not a disk.
func xpDir(t testing.TB) string {
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

// xpCreate creates an empty log of the given capacity and returns its path.
func xpCreate(t testing.TB, dir, name string, capacity int64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	l, err := Open(Options{Path: path, Capacity: capacity, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Test frames. Frame seq (0, 1, 2, ...) holds [seq u64][body][crc32 u32] where the size and the
// body are functions of seq and the CRC covers seq and body: a reader can check that it got
// exactly the frame it expected, whole. Sizes vary (12 to 139 bytes, one frame in 512 up to
// 3 KB, so frames straddle pages); the body is a window of a fixed random pattern, so filling and
// checking cost one copy and one compare even in race-instrumented children.
const (
	xpMinSize = 12
	xpMaxBody = 3000
)

var xpPattern = func() []byte {
	b := make([]byte, 256+xpMaxBody)
	for i := range b {
		b[i] = byte(xpMix(uint64(i)))
	}
	return b
}()

// xpMix is splitmix64's finaliser: a cheap, well-spread hash of seq.
func xpMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func xpSize(seq uint64) int {
	h := xpMix(seq)
	if h&511 == 0 {
		return xpMinSize + int((h>>9)%xpMaxBody)
	}
	return xpMinSize + int((h>>9)%128)
}

// xpSpan is the bytes frames [0, n) take in a u16-framed log.
func xpSpan(n uint64) int64 {
	var s int64
	for i := uint64(0); i < n; i++ {
		s += int64(xpSize(i)) + 4
	}
	return s
}

func xpFill(p []byte, seq uint64) {
	le.PutUint64(p, seq)
	n := len(p) - 4
	copy(p[8:n], xpPattern[seq%256:])
	le.PutUint32(p[n:], crc32.ChecksumIEEE(p[:n]))
}

// xpCheck verifies that p is frame want, whole.
func xpCheck(p []byte, want uint64) error {
	if len(p) < xpMinSize {
		return fmt.Errorf("frame %d: %d bytes, want %d", want, len(p), xpSize(want))
	}
	if seq := le.Uint64(p); seq != want {
		return fmt.Errorf("frame seq %d, want %d (len %d)", seq, want, len(p))
	}
	if len(p) != xpSize(want) {
		return fmt.Errorf("frame %d: %d bytes, want %d", want, len(p), xpSize(want))
	}
	n := len(p) - 4
	if got, sum := le.Uint32(p[n:]), crc32.ChecksumIEEE(p[:n]); got != sum {
		return fmt.Errorf("frame %d torn: crc %#x, computed %#x", want, got, sum)
	}
	if !bytes.Equal(p[8:n], xpPattern[want%256:want%256+uint64(n-8)]) {
		return fmt.Errorf("frame %d: body differs from the pattern", want)
	}
	return nil
}

// xpFields splits a child's event line ("c 12 3456") and parses the numbers after the tag.
func xpFields(line string) (tag string, nums []int64, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", nil, fmt.Errorf("empty line")
	}
	for _, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("line %q: %v", line, err)
		}
		nums = append(nums, v)
	}
	return f[0], nums, nil
}

// TestXPFrames checks the test frame helpers themselves.
func TestXPFrames(t *testing.T) {
	big := 0
	for seq := uint64(0); seq < 5000; seq++ {
		p := make([]byte, xpSize(seq))
		if len(p) > 139 {
			big++
		}
		xpFill(p, seq)
		if err := xpCheck(p, seq); err != nil {
			t.Fatal(err)
		}
		if seq > 0 && xpCheck(p, seq-1) == nil {
			t.Fatalf("frame %d passes as %d", seq, seq-1)
		}
		p[len(p)/2] ^= 1
		if xpCheck(p, seq) == nil {
			t.Fatalf("frame %d with a flipped byte passes", seq)
		}
	}
	if big == 0 {
		t.Fatal("no large frames in 5000")
	}
}

// xpOpenWriter opens the log at PATH and its writer, for a writer child.
func xpOpenWriter() (*Log, *Writer, error) {
	l, err := Open(Options{Path: xpEnv("PATH"), Writable: true})
	if err != nil {
		return nil, nil, err
	}
	w, err := l.Writer()
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, w, nil
}
