package replicate

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// killableServer is a nats-server in a child process, so that the test can kill -9 it.
type killableServer struct {
	port  int
	store string
	cmd   *exec.Cmd
}

func (k *killableServer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = childEnvVars("server", "", "", "", "SHMIO_PORT="+strconv.Itoa(k.port), "SHMIO_STORE="+k.store)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ready <- sc.Scan() && sc.Text() == "ready"
		for sc.Scan() {
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("server child failed to start")
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("server child did not start")
	}
	k.cmd = cmd
	t.Cleanup(func() { k.kill() })
}

func (k *killableServer) kill() {
	if k.cmd != nil {
		_ = k.cmd.Process.Signal(syscall.SIGKILL)
		_ = k.cmd.Wait()
		k.cmd = nil
	}
}

// TestServerKilled kills the nats-server with SIGKILL three times while frames flow and restarts
// it on the same port and storage: pusher and puller reconnect and resynchronise, the copy is
// exact, and no count in their messages underflows.
func TestServerKilled(t *testing.T) {
	const n = 30_000
	dir := t.TempDir()
	k := &killableServer{port: freePorts(t, 1)[0], store: filepath.Join(dir, "js")}
	k.start(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", k.port)
	src := createLog(t, filepath.Join(dir, "src.log"), 64<<20)
	dst := createLog(t, filepath.Join(dir, "dst.log"), 64<<20)

	var mu sync.Mutex
	var logged []string
	logf := func(f string, a ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	p := startPipelineLog(t, url, "KILLED", src, dst, StreamOptions{}, logf)
	w, err := src.Writer()
	if err != nil {
		t.Fatal(err)
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		rng := rand.New(rand.NewPCG(8, 9))
		for i := 0; i < n; i += 100 {
			for j := 0; j < 100; j++ {
				b, err := w.Allocate(frameSize(rng))
				if err != nil {
					t.Errorf("writer: %v", err)
					return
				}
				fillFrame(b, i+j)
			}
			if err := w.Commit(); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for _, at := range []int64{n / 4, n / 2, 3 * n / 4} {
		eventually(t, 2*time.Minute, fmt.Sprintf("%d frames pulled", at), func() bool { return p.pull.Stats().Frames >= at })
		k.kill()
		time.Sleep(300 * time.Millisecond)
		k.start(t)
	}
	<-writerDone
	eventually(t, 3*time.Minute, "every frame pulled", func() bool { return p.pull.Stats().Frames >= n })
	// An ack lost to a kill reaches the pusher's count only at its resync (AckTimeout), maybe
	// after the puller has every frame.
	eventually(t, 3*time.Minute, "every frame counted by the pusher", func() bool { return p.push.Stats().Frames >= n })
	p.stop(t)
	if got := compareLogs(t, p.srcPath, p.dstPath); got != n {
		t.Fatalf("compared %d frames, want %d", got, n)
	}
	ps, ls := p.push.Stats(), p.pull.Stats()
	if ps.Frames != n || ls.Frames != n || ps.Seq != ls.Tag {
		t.Fatalf("push %+v pull %+v", ps, ls)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range logged {
		if bigNumber.MatchString(l) {
			t.Errorf("a count underflowed: %s", l)
		}
	}
	t.Logf("push %+v\npull %+v\n%s", ps, ls, strings.Join(logged, "\n"))
}

// bigNumber finds counts no test here gets near, as an underflowed uint64 is.
var bigNumber = regexp.MustCompile(`\b\d{15,}\b`)
