package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/internal/testproc"
)

// The crash tests re-execute this test binary as a pusher or puller child (the shared harness,
// internal/testproc); the child runs until it is killed (or, with Once, until caught up).
const childEnv = testproc.EnvRole

func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func() error{
		"push":   func() error { return runChild("push") },
		"pull":   func() error { return runChild("pull") },
		"server": func() error { return runChild("server") },
	})
}

func runChild(role string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if role == "server" { // a nats-server the test can kill -9
		port, _ := strconv.Atoi(os.Getenv("SHMIO_PORT"))
		s, err := server.NewServer(&server.Options{ServerName: "killable", Host: "127.0.0.1", Port: port, JetStream: true,
			StoreDir: os.Getenv("SHMIO_STORE"), NoLog: true, NoSigs: true})
		if err != nil {
			return err
		}
		s.Start()
		if !s.ReadyForConnections(20 * time.Second) {
			return errors.New("nats-server did not start")
		}
		fmt.Println("ready")
		<-ctx.Done()
		s.Shutdown()
		return nil
	}
	nc, err := Connect(ConnectOptions{URL: os.Getenv("SHMIO_NATS"), Name: "child-" + role})
	if err != nil {
		return err
	}
	defer nc.Close()
	once := os.Getenv("SHMIO_ONCE") != ""
	switch role {
	case "push":
		l, err := shmio.Open(shmio.Options{Path: os.Getenv("SHMIO_LOG")})
		if err != nil {
			return err
		}
		defer l.Close()
		it, err := l.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			return err
		}
		p, err := NewPusher(it, PushConfig{Conn: nc, Stream: StreamOptions{Name: os.Getenv("SHMIO_STREAM")},
			LogID: l.Header().ID, CursorFile: os.Getenv("SHMIO_CURSOR"), Once: once})
		if err != nil {
			return err
		}
		return p.Run(ctx)
	case "pull":
		l, err := shmio.Open(shmio.Options{Path: os.Getenv("SHMIO_LOG"), Writable: true})
		if err != nil {
			return err
		}
		defer l.Close()
		w, err := l.Writer()
		if err != nil {
			return err
		}
		tag, _, _ := l.CommitTag()
		p, err := NewPuller(w, PullConfig{Conn: nc, Stream: os.Getenv("SHMIO_STREAM"),
			Durable: os.Getenv("SHMIO_DURABLE"), Tag: tag, Once: once})
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}
	return fmt.Errorf("unknown role %q", role)
}

// frameSize draws a mixed size: mostly small, a few up to the largest u16 frame (65531 bytes);
// about 240 bytes on average, which keeps a million frames quick under -race.
func frameSize(rng *rand.Rand) int {
	switch r := rng.IntN(1000); {
	case r < 700:
		return 1 + rng.IntN(64)
	case r < 950:
		return 64 + rng.IntN(448)
	case r < 999:
		return 512 + rng.IntN(3584)
	default:
		return 4096 + rng.IntN(shmio.MaxPayload-4096+1)
	}
}

// fillFrame writes frame i's content: its index, then a pattern that depends on i.
func fillFrame(b []byte, i int) {
	for j := range b {
		b[j] = byte(i*7 + j)
	}
	for j := 0; j < 8 && j < len(b); j++ {
		b[j] = byte(uint64(i) >> (8 * j))
	}
}

// mixedFrame returns frame i as a new slice (for the in-memory fake).
func mixedFrame(rng *rand.Rand, i int) []byte {
	b := make([]byte, frameSize(rng))
	fillFrame(b, i)
	return b
}

// createLog makes a writable log in dir.
func createLog(tb testing.TB, path string, capacity int64) *shmio.Log {
	tb.Helper()
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: capacity, Writable: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// writeFrames appends frames first..first+n-1 of the mixed sequence seeded by seed, committing
// every batch frames.
func writeFrames(tb testing.TB, w *shmio.Writer, rng *rand.Rand, first, n, batch int) {
	tb.Helper()
	for i := first; i < first+n; i++ {
		b, err := w.Allocate(frameSize(rng))
		if err != nil {
			tb.Fatalf("allocate frame %d: %v", i, err)
		}
		fillFrame(b, i)
		if (i-first+1)%batch == 0 {
			if err := w.Commit(); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := w.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// compareLogs checks that dst holds exactly src's frames, in order, and returns their number.
func compareLogs(tb testing.TB, srcPath, dstPath string) int {
	tb.Helper()
	src, err := shmio.Open(shmio.Options{Path: srcPath})
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst, err := shmio.Open(shmio.Options{Path: dstPath})
	if err != nil {
		tb.Fatal(err)
	}
	defer dst.Close()
	si, err := src.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	di, err := dst.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for {
		a, err := si.Next()
		if err != nil {
			tb.Fatal(err)
		}
		b, err := di.Next()
		if err != nil {
			tb.Fatal(err)
		}
		switch {
		case a == nil && b == nil:
			return n
		case a == nil:
			tb.Fatalf("destination has more frames than the source's %d", n)
		case b == nil:
			tb.Fatalf("destination ends after %d frames; the source has more", n)
		case !bytes.Equal(a, b):
			tb.Fatalf("frame %d differs: source %d bytes, destination %d bytes", n, len(a), len(b))
		}
		n++
	}
}

// childEnvVars builds the environment of a child process.
func childEnvVars(role, url, stream, logPath string, extra ...string) []string {
	env := testproc.ChildEnv(childEnv+"="+role, "SHMIO_NATS="+url, "SHMIO_STREAM="+stream, "SHMIO_LOG="+logPath)
	return append(env, extra...)
}

func openReadOnly(path string) (*shmio.Log, error) { return shmio.Open(shmio.Options{Path: path}) }
