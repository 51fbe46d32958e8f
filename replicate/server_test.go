package replicate

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/shmio/shmio/internal/testproc"
)

// startServer runs an embedded nats-server with JetStream on loopback, storing in dir.
// port 0 picks a free port; a fixed port lets a test restart a server at the same address.
func startServer(tb testing.TB, dir string, port int) *server.Server {
	tb.Helper()
	if port == 0 {
		port = -1
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "solo", Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, HTTPPort: 0,
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server did not start")
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// freePorts reserves n loopback ports (closed again right away; good enough for tests).
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	return ports
}

// cluster is a three-server JetStream cluster on loopback.
type cluster struct {
	servers     []*server.Server
	opts        []*server.Options
	clientPorts []int
}

func (c *cluster) urls() string {
	var s string
	for i, p := range c.clientPorts {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	return s
}

func startCluster(tb testing.TB, dir string) *cluster {
	tb.Helper()
	ports := freePorts(tb, 6)
	c := &cluster{clientPorts: ports[:3]}
	var routes []*url.URL
	for i := 0; i < 3; i++ {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[3+i])})
	}
	for i := 0; i < 3; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: ports[i], JetStream: true,
			StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "shmio-test", Host: "127.0.0.1", Port: ports[3+i]},
			Routes:  routes,
		}
		if logDir := os.Getenv("SHMIO_NATS_LOGDIR"); logDir != "" { // server logs, for debugging
			o.NoLog, o.Logtime, o.Debug = false, true, true
			o.LogFile = filepath.Join(logDir, o.ServerName+".log")
		}
		s, err := server.NewServer(o)
		if err != nil {
			tb.Fatal(err)
		}
		s.ConfigureLogger()
		s.Start()
		c.servers = append(c.servers, s)
		c.opts = append(c.opts, o)
		tb.Cleanup(s.Shutdown)
	}
	for _, s := range c.servers {
		if !s.ReadyForConnections(20 * time.Second) {
			tb.Fatal("cluster server did not start")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.servers {
			if s.JetStreamIsLeader() {
				return c
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatal("no JetStream meta leader")
	return nil
}

func connect(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, err := Connect(ConnectOptions{URL: url, Name: tb.Name()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// eventually polls cond until it holds or the timeout passes.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	testproc.WaitFor(tb, timeout, what, cond)
}

// runBG runs f in a goroutine under a cancelable context; stop cancels and returns f's error.
func runBG(f func(ctx context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	return func() error { cancel(); return <-done }
}
