package bench

// Process orchestration shared by Demo and Run: every measured party runs in its own process (the
// running binary re-executes itself as "<exe> __child ROLE CONFIG", which its main hands to
// ChildMain), so what is measured is really cross-process. A child gets its role and a JSON config
// on the command line, inherited file descriptors for sockets and pipes (fd 3 onwards), and talks
// back with JSON lines on its stdout: {"event":"ready"}, any number of {"event":"stats",...}, then
// {"event":"result",...} or {"event":"error","error":"..."}. stderr is kept for error messages.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/shmio/shmio"
)

// ChildArg is the first argument of a re-executed child process; see ChildMain.
const ChildArg = "__child"

// childRoles maps a role name to its implementation; the workload files fill it from init.
var childRoles = map[string]func(ctx context.Context, cfg json.RawMessage, out *childOut) error{}

// ChildMain runs a benchmark or demo child when args (the process's arguments after the program
// name) start with ChildArg, and returns its exit code with handled true; otherwise it returns
// handled false at once. A binary that calls Run or Demo must call ChildMain first thing in main:
// the children are that binary, re-executed. A failing child prints "shmio: error" on stderr and
// exits 2.
func ChildMain(args []string) (code int, handled bool) {
	if len(args) == 0 || args[0] != ChildArg {
		return 0, false
	}
	if err := runChild(args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "shmio: %v\n", err)
		return 2, true
	}
	return 0, true
}

func runChild(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("%s wants ROLE CONFIG, got %d arguments", ChildArg, len(args))
	}
	role, ok := childRoles[args[0]]
	if !ok {
		return fmt.Errorf("unknown child role %q", args[0])
	}
	out := &childOut{w: bufio.NewWriter(os.Stdout)}
	// Ctrl-C on a terminal signals the whole process group: leave it to the parent, which stops
	// every child and removes its files (and the kernel kills us if the parent dies).
	signal.Ignore(os.Interrupt)
	if dir := os.Getenv(ProfileEnv); dir != "" {
		stop, err := startProfile(dir, args[0])
		if err != nil {
			return err
		}
		defer stop()
	}
	err := role(context.Background(), json.RawMessage(args[1]), out)
	if err != nil {
		out.send(childMsg{Event: "error", Error: err.Error()})
	}
	return err
}

// ProfileEnv names a directory where every child writes a CPU profile, ROLE-PID.pprof: merged
// (go tool pprof -proto DIR/*.pprof), they are the profile cmd/shmio is built with (default.pgo).
const ProfileEnv = "SHMIO_BENCH_CPUPROFILE"

func startProfile(dir, role string) (stop func(), err error) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid())))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// childMsg is one line of the child protocol. Result and stats payloads are role-specific JSON.
type childMsg struct {
	Event string          `json:"event"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// childOut writes protocol lines to stdout; safe for concurrent use (the demo's stats ticker).
type childOut struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (o *childOut) send(m childMsg) {
	b, _ := json.Marshal(m)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write(b)
	o.w.WriteByte('\n')
	o.w.Flush()
}

func (o *childOut) ready() { o.send(childMsg{Event: "ready"}) }

func (o *childOut) emit(event string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		o.send(childMsg{Event: "error", Error: err.Error()})
		return
	}
	o.send(childMsg{Event: event, Data: b})
}

// child is the parent's handle on one child process.
type childProc struct {
	name   string
	cmd    *exec.Cmd
	msgs   chan childMsg // closed when stdout ends
	stderr *childStderr
	done   chan struct{} // closed after Wait returns
	err    error         // Wait's result, valid after done
}

// startChild re-executes this binary as "__child role cfg". files become fd 3, 4, ... in the child; the
// caller may close its copies once this returns. The child is killed when ctx is done.
func startChild(ctx context.Context, name, role string, cfg any, files ...*os.File) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable to start %s: %w", name, err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, ChildArg, role, string(b))
	cmd.ExtraFiles = files
	cmd.Stdin = nil
	cmd.WaitDelay = 2 * time.Second
	setChildAttrs(cmd)
	c := &childProc{name: name, cmd: cmd, msgs: make(chan childMsg, 64), stderr: &childStderr{max: 4096}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m childMsg
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue // stray output; the protocol lines are what count
			}
			c.msgs <- m
		}
		close(c.msgs)
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// next returns the child's next message other than stats (passed to onStats when non-nil).
func (c *childProc) next(ctx context.Context, onStats func(json.RawMessage)) (childMsg, error) {
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				<-c.done
				return childMsg{}, c.failure(errors.New("exited without a result"))
			}
			switch m.Event {
			case "stats":
				if onStats != nil {
					onStats(m.Data)
				}
				continue
			case "error":
				return m, fmt.Errorf("%s: %s", c.name, m.Error)
			}
			return m, nil
		case <-ctx.Done():
			return childMsg{}, fmt.Errorf("%s: %w", c.name, context.Cause(ctx))
		}
	}
}

// waitReady waits for the child's "ready" line.
func (c *childProc) waitReady(ctx context.Context) error {
	m, err := c.next(ctx, nil)
	if err != nil {
		return err
	}
	if m.Event != "ready" {
		return fmt.Errorf("%s: expected ready, got %q", c.name, m.Event)
	}
	return nil
}

// result waits for the child's result line, decodes it into v, and waits for the process to exit.
func (c *childProc) result(ctx context.Context, v any, onStats func(json.RawMessage)) error {
	m, err := c.next(ctx, onStats)
	if err != nil {
		return err
	}
	if m.Event != "result" {
		return fmt.Errorf("%s: expected result, got %q", c.name, m.Event)
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		return fmt.Errorf("%s: decoding result: %w", c.name, err)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", c.name, context.Cause(ctx))
	}
	if c.err != nil {
		return c.failure(c.err)
	}
	return nil
}

// failure describes an abnormal exit with the child's last stderr line, e.g. a Go panic message.
func (c *childProc) failure(err error) error {
	if c.err != nil {
		err = c.err
	}
	msg := strings.TrimSpace(c.stderr.String())
	if msg != "" {
		lines := strings.Split(msg, "\n")
		msg = lines[0]
		if strings.HasPrefix(msg, "shmio: ") {
			msg = strings.TrimPrefix(msg, "shmio: ")
		}
		return fmt.Errorf("%s: %v (%s)", c.name, err, msg)
	}
	return fmt.Errorf("%s: %v", c.name, err)
}

// cpu is the CPU time (user + system) the exited child used; spinning readers show up here.
func (c *childProc) cpu() time.Duration {
	select {
	case <-c.done:
	default:
		return 0
	}
	if ps := c.cmd.ProcessState; ps != nil {
		return ps.UserTime() + ps.SystemTime()
	}
	return 0
}

// kill stops the child (if still running) and waits for it.
func (c *childProc) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
	}
	// Drain stdout so the reader goroutine can reach Wait.
	go func() {
		for range c.msgs {
		}
	}()
	<-c.done
}

// killAll kills every child still running; used on every exit path so no child outlives the command.
func killAll(cs []*childProc) {
	for _, c := range cs {
		if c != nil {
			c.kill()
		}
	}
}

// childStderr keeps the first max bytes written to it (enough for an error line).
type childStderr struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *childStderr) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *childStderr) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*childStderr)(nil)

// openChildWriter opens an existing log and its writer for a writing child of bench or demo.
// Prefault maps every page up front, so runs measure the log, not first-touch page faults (a
// long-lived log in production has its pages mapped long before). Closing the log closes both.
func openChildWriter(path string) (*shmio.Log, *shmio.Writer, error) {
	l, err := shmio.Open(shmio.Options{Path: path, Writable: true, Prefault: true})
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

// openChildReader opens the log at path, prefaulted, and an iterator on it for a child that
// reads; closing the Log closes the iterator too.
func openChildReader(path string, spin time.Duration) (*shmio.Log, *shmio.Iterator, error) {
	l, err := shmio.Open(shmio.Options{Path: path, Prefault: true})
	if err != nil {
		return nil, nil, err
	}
	it, err := l.NewIterator(shmio.IteratorOptions{Spin: spin})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, it, nil
}
