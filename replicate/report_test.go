package replicate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

func TestNewReportRatesAndThresholds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := &Status{Time: t0, Stream: StreamStatus{LastSeq: 10, Bytes: 1000, LastEnd: -1},
		Pull: &PullStatus{Tag: 4, TagOK: true}}
	st := &Status{Time: t0.Add(2 * time.Second), Stream: StreamStatus{Name: "S", Storage: "File", LastSeq: 30, Bytes: 5000, LastEnd: 77, LastLogID: 0xab},
		Push: &PushStatus{LogID: 0xab, Committed: 90, StreamEnd: 77, FileCursor: -1, BehindFrames: 5, BehindBytes: 13, Lag: 1500 * time.Millisecond},
		Pull: &PullStatus{Tag: 8, TagOK: true, BehindMsgs: 22, BehindFrames: -1, BehindBytes: -1, ConsumerExists: true, ConsumerPending: 3, ConsumerAckWait: 1}}
	r := NewReport(st, prev, StatusOptions{Durable: "d"}, ReportOptions{Log: "src", PullLog: "dst", PullExists: true, MaxLag: time.Second, MaxBehind: 20})
	if r.Stream.Storage != "file" || *r.Stream.MsgsPerSec != 10 || *r.Stream.BytesPerSec != 2000 || *r.Stream.LastEnd != 77 || r.Stream.LastLogID != "00000000000000ab" {
		t.Fatalf("stream: %+v", r.Stream)
	}
	if p := r.Push; p.Log != "src" || p.CursorFile != nil || p.LagMillis != 1500 || p.BehindFrames != 5 || p.FramesPerSec != nil {
		t.Fatalf("push: %+v", *p)
	}
	if p := r.Pull; *p.Tag != 8 || p.BehindFrames != nil || p.BehindBytes != nil || *p.MsgsPerSec != 2 || *p.ConsumerPending != 3 || *p.ConsumerUnacked != 1 || p.Durable != "d" {
		t.Fatalf("pull: %+v", *p)
	}
	want := []string{"push lags 1.5s (more than 1s)", "pull is 22 messages behind (more than 20)"}
	if strings.Join(r.Exceeded, "|") != strings.Join(want, "|") {
		t.Fatalf("exceeded: %q, want %q", r.Exceeded, want)
	}
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"behind_frames":null`) || !strings.Contains(string(b), `"lag_ms":1500`) {
		t.Fatalf("json: %s %v", b, err)
	}
}

func TestLoadSecrets(t *testing.T) {
	env := map[string]string{EnvUser: "u", EnvPassword: "envpw", EnvToken: "tok"}
	getenv := func(k string) string { return env[k] }
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("filepw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := ConnectOptions{URL: "nats://h:4222"}
	if err := o.LoadSecrets(SecretSources{PasswordFile: pw, Getenv: getenv}); err != nil || o.User != "u" || o.Password != "filepw" || o.Token != "tok" {
		t.Fatalf("%+v %v", o, err)
	}
	o = ConnectOptions{URL: "nats://u:secret@h:4222"}
	if err := o.LoadSecrets(SecretSources{Getenv: getenv}); !errors.Is(err, ErrURLCredentials) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("credentials in URL: %v", err)
	}
	delete(env, EnvUser)
	o = ConnectOptions{URL: "nats://h:4222"}
	if err := o.LoadSecrets(SecretSources{Getenv: getenv}); err == nil || !strings.Contains(err.Error(), "needs a user name") {
		t.Fatalf("password without user: %v", err)
	}
	if err := o.LoadSecrets(SecretSources{PasswordFile: pw + ".missing", Getenv: getenv}); err == nil {
		t.Fatal("missing password file: no error")
	}
}

func TestDestTag(t *testing.T) {
	l, err := shmio.Open(shmio.Options{Path: filepath.Join(t.TempDir(), "dst"), Capacity: 1 << 16, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if tag, err := DestTag(l); tag != 0 || err != nil {
		t.Fatalf("empty: %d %v", tag, err)
	}
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := DestTag(l); !errors.Is(err, ErrForeignFrames) {
		t.Fatalf("untagged frames: %v", err)
	}
	if err := w.CommitTagged(42); err != nil {
		t.Fatal(err)
	}
	if tag, err := DestTag(l); tag != 42 || err != nil {
		t.Fatalf("tagged: %d %v", tag, err)
	}
	// Status reads the pulled side's tag and default durable consumer from it too.
	o := StatusOptions{Dest: l}
	if err := o.resolveDest(); err != nil || !o.Pull || !o.TagOK || o.Tag != 42 || o.Durable != DefaultDurable(l.Header().ID) {
		t.Fatalf("resolveDest: %+v %v", o, err)
	}
}

func TestDefaultCursorFile(t *testing.T) {
	if got := DefaultCursorFile("/dev/shm/q/", "EVENTS"); got != "/dev/shm/q.EVENTS.cursor" {
		t.Fatalf("got %q", got)
	}
}
