package replicate

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

func TestRunEncoding(t *testing.T) {
	frames := [][]byte{{1}, make([]byte, 127), make([]byte, 128), make([]byte, 65531)}
	var b []byte
	want := 0
	for _, f := range frames {
		b = appendFrame(b, f)
		want += encodedSize(len(f))
	}
	if len(b) != want || want != 1+1+1+127+2+128+3+65531 {
		t.Fatalf("encoded %d bytes, encodedSize says %d", len(b), want)
	}
	for i, rest := 0, b; ; i++ {
		f, r, ok, err := nextFrame(rest)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if i != len(frames) {
				t.Fatalf("decoded %d frames", i)
			}
			break
		}
		if len(f) != len(frames[i]) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(f), len(frames[i]))
		}
		rest = r
	}
	for _, bad := range [][]byte{{0}, {5, 1, 2}, {0x80}} {
		if _, _, _, err := nextFrame(bad); !errors.Is(err, ErrEncoding) {
			t.Errorf("nextFrame(%v): %v, want ErrEncoding", bad, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	got := RedactURL("nats://u:secret@a:4222, tls://tok@b:4222,nats://c:4222")
	if strings.Contains(got, "secret") || strings.Contains(got, "tok@") || got != "nats://REDACTED@a:4222,tls://REDACTED@b:4222,nats://c:4222" {
		t.Fatalf("RedactURL = %q", got)
	}
}

func TestCheckStreamName(t *testing.T) {
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>", "a/b"} {
		if err := CheckStreamName(bad); !errors.Is(err, ErrPermanent) {
			t.Errorf("CheckStreamName(%q) = %v", bad, err)
		}
	}
	if err := CheckStreamName("EVENTS-1_x"); err != nil {
		t.Fatal(err)
	}
}

// TestConnectRetry: a server that is not up yet is retried (and said so, URL redacted) until it
// comes up; one that never comes is given up on after ConnectTimeout.
func TestConnectRetry(t *testing.T) {
	port := freePorts(t, 1)[0]
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	var logged []string
	_, err := Connect(ConnectOptions{URL: url, ConnectTimeout: 600 * time.Millisecond, Logf: func(f string, a ...any) {
		logged = append(logged, fmt.Sprintf(f, a...))
	}})
	if err == nil || !strings.Contains(err.Error(), "gave up after") || len(logged) == 0 || !strings.Contains(logged[0], "retrying") {
		t.Fatalf("err = %v, logged %q", err, logged)
	}
	started := make(chan struct{})
	go func() {
		time.Sleep(700 * time.Millisecond)
		startServer(t, t.TempDir(), port)
		close(started)
	}()
	nc, err := Connect(ConnectOptions{URL: url, ConnectTimeout: time.Minute})
	<-started
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// TestPullRefusesUnknownEncoding: a message in an encoding pull does not know stops it with a
// clear, permanent error, and nothing is appended.
func TestPullRefusesUnknownEncoding(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	nc := connect(t, s.ClientURL())
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ENC", Subjects: []string{"enc"}}); err != nil {
		t.Fatal(err)
	}
	h := nats.Header{jetstream.MsgIDHeader: {MsgID(1, 0)}, HeaderEncoding: {"2"}, HeaderEnd: {"10"}}
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "enc", Data: []byte{1, 2}, Header: h}); err != nil {
		t.Fatal(err)
	}
	l := createLog(t, filepath.Join(t.TempDir(), "dst.log"), 1<<20)
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPuller(w, PullConfig{Conn: nc, Stream: "ENC", Durable: "d", Once: true})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(t.Context())
	if !errors.Is(err, ErrEncoding) || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), `"2" is unknown`) {
		t.Fatalf("err = %v", err)
	}
	if end, _ := l.EndCursor(); end != 0 || p.Stats().Frames != 0 {
		t.Fatalf("appended %d bytes, %d frames", end, p.Stats().Frames)
	}
}

// TestPushOperatorErrors: a second pusher of the same cursor file is refused; with Once a full
// stream and, on the pull side, a missing stream are permanent errors; new streams get limits.
func TestPushOperatorErrors(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "js"), 0)
	nc := connect(t, s.ClientURL())
	src := createLog(t, filepath.Join(dir, "src.log"), 1<<20)
	w, err := src.Writer()
	if err != nil {
		t.Fatal(err)
	}
	writeFrames(t, w, rand.New(rand.NewPCG(1, 1)), 0, 50, 10)
	cursor := filepath.Join(dir, "cursor")
	newPusher := func(so StreamOptions, once bool) *Pusher {
		it, err := src.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPusher(it, PushConfig{Conn: nc, Stream: so, LogID: src.Header().ID, CursorFile: cursor, Once: once, RunFrames: 10})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := StreamOptions{Name: "FULL", MaxMsgs: 2, MaxBytes: 1 << 20, MaxAge: time.Hour}
	first := newPusher(full, false)
	stop := runBG(first.Run)
	eventually(t, 30*time.Second, "the first pusher to hold its lock and fill the stream", func() bool {
		return first.Stats().Acked == 2
	})
	err = newPusher(full, true).Run(t.Context())
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "another pusher") {
		t.Fatalf("second pusher: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	err = newPusher(full, true).Run(t.Context())
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "full") {
		t.Fatalf("full stream with Once: %v", err)
	}
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), "FULL")
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxMsgs != 2 || c.MaxBytes != 1<<20 || c.MaxAge != time.Hour || c.Discard != jetstream.DiscardNew {
		t.Fatalf("stream limits: %+v", c)
	}
	if st.CachedInfo().State.Msgs != 2 {
		t.Fatalf("stream holds %d messages", st.CachedInfo().State.Msgs)
	}

	dst := createLog(t, filepath.Join(dir, "dst.log"), 1<<20)
	dw, err := dst.Writer()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPuller(dw, PullConfig{Conn: nc, Stream: "MISSING", Durable: "d", Once: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(t.Context()); !errors.Is(err, ErrPermanent) || !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("pull --once of a missing stream: %v", err)
	}
}

// TestConnectBadCredentials: a refused password is permanent, not retried, and not in the error.
func TestConnectBadCredentials(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, Username: "u", Password: "right", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	retried := false
	_, err = Connect(ConnectOptions{URL: s.ClientURL(), User: "u", Password: "wrong-secret", Logf: func(string, ...any) { retried = true }})
	if !errors.Is(err, ErrPermanent) || retried || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("err = %v, retried %v", err, retried)
	}
	nc, err := Connect(ConnectOptions{URL: s.ClientURL(), User: "u", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}
