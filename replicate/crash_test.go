package replicate

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// child is a pusher or puller process running this test binary.
type child struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

func startChild(t *testing.T, env []string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan error, 1)}
	c.cmd.Env = env
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	return c
}

// killAfter lets the child run for d, then kills it with SIGKILL. It reports whether the child was
// still running (a child that exited by itself failed, unless it was told to run once).
func (c *child) killAfter(d time.Duration) (killed bool, err error) {
	select {
	case err := <-c.done:
		return false, err
	case <-time.After(d):
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	return true, nil
}

// TestCrashPushAndPull kills a pusher child and a puller child with SIGKILL at independent random
// points, at least 20 times each, while a writer keeps appending to the source. Every restart
// resumes from persisted state only (cursor file and stream for the pusher, the log's commit tag
// for the puller). At the end the stream holds each frame once and the pulled log equals the
// source exactly.
func TestCrashPushAndPull(t *testing.T) {
	kills := 20
	if n, err := strconv.Atoi(os.Getenv("SHMIO_KILLS")); err == nil && n > kills {
		kills = n // for longer soak runs
	}
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "js"), 0)
	srcPath, dstPath := filepath.Join(dir, "src.log"), filepath.Join(dir, "dst.log")
	src := createLog(t, srcPath, 64<<20)
	createLog(t, dstPath, 64<<20)
	w, err := src.Writer()
	if err != nil {
		t.Fatal(err)
	}

	// The writer appends in small batches for as long as children are being killed.
	var total atomic.Int64
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		rng := rand.New(rand.NewPCG(11, 12))
		for i := 0; ; i++ {
			select {
			case <-stopWriter:
				return
			case <-time.After(10 * time.Millisecond):
			}
			n := 1 + rng.IntN(40)
			for j := 0; j < n; j++ {
				b, err := w.Allocate(frameSize(rng))
				if err != nil {
					t.Errorf("writer: %v", err)
					return
				}
				fillFrame(b, int(total.Load())+j)
			}
			if err := w.Commit(); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			total.Add(int64(n))
		}
	}()

	url := s.ClientURL()
	pushEnv := childEnvVars("push", url, "CRASH", srcPath, "SHMIO_CURSOR="+filepath.Join(dir, "push.cursor"))
	pullEnv := childEnvVars("pull", url, "CRASH", dstPath, "SHMIO_DURABLE=crash")
	nc := connect(t, url)
	js, _ := jetstream.New(nc)
	streamSeq := func() uint64 {
		st, err := js.Stream(t.Context(), "CRASH")
		if err != nil {
			return 0
		}
		return st.CachedInfo().State.LastSeq
	}

	// Each side is killed at random points; "mid-run" counts kills while it was making progress.
	killLoop := func(name string, env []string, seed uint64, progress func() uint64, midRun *int) {
		rng := rand.New(rand.NewPCG(seed, seed))
		for i := 0; i < kills; i++ {
			before := progress()
			c := startChild(t, env)
			killed, err := c.killAfter(time.Duration(50+rng.IntN(750)) * time.Millisecond)
			if !killed {
				t.Errorf("%s child exited by itself (%v): %s", name, err, c.stderr.String())
				return
			}
			if progress() > before {
				*midRun++
			}
		}
	}
	pullTag := func() uint64 {
		l, err := openReadOnly(dstPath)
		if err != nil {
			return 0
		}
		defer l.Close()
		tag, _, _ := l.CommitTag()
		return tag
	}
	var pushMid, pullMid int
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); killLoop("push", pushEnv, 1, streamSeq, &pushMid) }()
	go func() { defer wg.Done(); killLoop("pull", pullEnv, 2, pullTag, &pullMid) }()
	wg.Wait()
	close(stopWriter)
	<-writerDone
	if t.Failed() {
		t.FailNow()
	}

	// Final runs to completion, still from persisted state only.
	for _, env := range [][]string{pushEnv, pullEnv} {
		c := startChild(t, append(env, "SHMIO_ONCE=1"))
		select {
		case err := <-c.done:
			if err != nil {
				t.Fatalf("final child: %v: %s", err, c.stderr.String())
			}
		case <-time.After(3 * time.Minute):
			_ = c.cmd.Process.Kill()
			t.Fatalf("final child did not finish: %s", c.stderr.String())
		}
	}
	n := int(total.Load())
	if got := compareLogs(t, srcPath, dstPath); got != n {
		t.Fatalf("compared %d frames, the writer wrote %d", got, n)
	}
	info, err := js.Stream(t.Context(), "CRASH")
	if err != nil {
		t.Fatal(err)
	}
	st := info.CachedInfo().State
	if st.Msgs != st.LastSeq || st.Msgs == 0 {
		t.Fatalf("stream holds %d messages up to sequence %d", st.Msgs, st.LastSeq)
	}
	if tag := pullTag(); tag != st.LastSeq {
		t.Fatalf("pulled log's tag %d, want %d", tag, st.LastSeq)
	}
	t.Logf("%d frames in %d messages; %d push kills (%d while the stream grew), %d pull kills (%d while the log grew)",
		n, st.Msgs, kills, pushMid, kills, pullMid)
	if pushMid < kills/4 || pullMid < kills/4 {
		t.Errorf("too few kills landed mid-run: push %d, pull %d of %d", pushMid, pullMid, kills)
	}
}
