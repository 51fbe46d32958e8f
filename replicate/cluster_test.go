package replicate

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterLoseServer replicates through a three-server JetStream cluster on loopback with a
// stream of three replicas, and shuts down the stream's leader mid-run: the pusher and puller
// reconnect and resynchronise, the remaining two servers elect a new leader, and the pulled log
// still equals the source exactly.
func TestClusterLoseServer(t *testing.T) {
	const n = 40_000
	dir := t.TempDir()
	c := startCluster(t, filepath.Join(dir, "cluster"))
	src := createLog(t, filepath.Join(dir, "src.log"), 64<<20)
	dst := createLog(t, filepath.Join(dir, "dst.log"), 64<<20)
	p := startPipeline(t, c.urls(), "TRIO", src, dst, StreamOptions{Replicas: 3})

	w, err := src.Writer()
	if err != nil {
		t.Fatal(err)
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		rng := rand.New(rand.NewPCG(5, 6))
		for i := 0; i < n; {
			k := min(200, n-i)
			for j := 0; j < k; j++ {
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
			i += k
			time.Sleep(5 * time.Millisecond)
		}
	}()

	eventually(t, 2*time.Minute, "a third of the frames pulled", func() bool { return p.pull.Stats().Frames >= n/3 })
	js, err := jetstream.New(connect(t, c.urls()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), "TRIO")
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream is not a replicated one: %+v", info.Cluster)
	}
	stopped := -1
	for i, s := range c.servers {
		if s.Name() == info.Cluster.Leader {
			stopped = i
		}
	}
	if stopped < 0 {
		t.Fatalf("leader %q is not one of the servers", info.Cluster.Leader)
	}
	atStop := p.pull.Stats().Frames
	c.servers[stopped].Shutdown()
	t.Logf("stopped stream leader %s with %d frames pulled", info.Cluster.Leader, atStop)

	<-writerDone
	deadline := time.Now().Add(4 * time.Minute)
	for p.pull.Stats().Frames < n {
		if time.Now().After(deadline) {
			for i, s := range c.servers {
				if i == stopped {
					continue
				}
				jsz, _ := s.Jsz(&server.JSzOptions{Streams: true, Consumer: true, RaftGroups: true})
				if jsz != nil {
					for _, a := range jsz.AccountDetails {
						for _, sd := range a.Streams {
							t.Logf("%s: stream %s cluster %+v state %+v", s.Name(), sd.Name, sd.Cluster, sd.State)
						}
					}
					t.Logf("%s: meta %+v", s.Name(), jsz.Meta)
				}
			}
			t.Fatalf("timed out: push %+v pull %+v", p.push.Stats(), p.pull.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop(t)
	if got := compareLogs(t, p.srcPath, p.dstPath); got != n {
		t.Fatalf("compared %d frames, want %d", got, n)
	}
	st, err = js.Stream(t.Context(), "TRIO")
	if err != nil {
		t.Fatal(err)
	}
	info = st.CachedInfo()
	if info.State.Msgs != info.State.LastSeq || p.pull.Stats().Tag != info.State.LastSeq {
		t.Fatalf("stream holds %d messages up to %d; pulled up to %d", info.State.Msgs, info.State.LastSeq, p.pull.Stats().Tag)
	}
	if info.Cluster.Leader == "" || info.Cluster.Leader == c.servers[stopped].Name() {
		t.Fatalf("no new leader: %+v", info.Cluster)
	}
	t.Logf("new leader %s; push %+v; pull %+v", info.Cluster.Leader, p.push.Stats(), p.pull.Stats())
}
