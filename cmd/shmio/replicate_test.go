package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/shmio/shmio"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func replicateStatus(t *testing.T, args ...string) statusJSON {
	t.Helper()
	out := mustRun(t, append([]string{"replicate", "status", "--json"}, args...))
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// logFrames returns copies of every committed frame of the log at path.
func logFrames(t testing.TB, path string) [][]byte {
	t.Helper()
	l, err := shmio.Open(shmio.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for f, err := range it.All() {
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, bytes.Clone(f))
	}
	return frames
}

func replicateLines(from, to int) []string {
	var lines []string
	for i := from; i < to; i++ {
		lines = append(lines, fmt.Sprintf("event %d %s", i, strings.Repeat("x", i%300)))
	}
	return lines
}

// TestReplicateCLI runs push with an embedded server, pull and status against it, as a user would.
func TestReplicateCLI(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.log"), filepath.Join(dir, "dst.log")
	mustRun(t, []string{"create", src, "--capacity", "4MiB"})
	appendLines(t, src, replicateLines(0, 1000)...)
	url := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	listen := strings.TrimPrefix(url, "nats://")
	push := startShmio(t, []string{"replicate", "push", "--log", src, "--nats", "embedded", "--listen", listen,
		"--store-dir", filepath.Join(dir, "js"), "--stream", "CLI", "--progress", "0"})

	caughtUp := func() {
		waitFor(t, time.Minute, "push to catch up", func() bool {
			r := runShmio(t, []string{"replicate", "status", "--json", "--nats", url, "--stream", "CLI", "--log", src})
			var st statusJSON
			return r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Push != nil &&
				st.Push.BehindFrames == 0 && st.Push.StreamEnd == st.Push.Committed
		})
	}
	caughtUp()
	var st statusJSON
	// The cursor file follows within PersistEvery (100ms) of the last ack.
	waitFor(t, 10*time.Second, "the cursor file", func() bool {
		st = replicateStatus(t, "--nats", url, "--stream", "CLI", "--log", src)
		return st.Push.CursorFile != nil && *st.Push.CursorFile == st.Push.Committed
	})
	seq1 := st.Stream.LastSeq
	if seq1 == 0 || seq1 >= 1000 || st.Stream.Subjects[0] != "shmio.CLI" || st.Push.StreamEnd != st.Push.Committed {
		t.Fatalf("status after push (1000 frames in runs): %+v %+v", st.Stream, *st.Push)
	}

	pull := []string{"replicate", "pull", "--log", dst, "--nats", url, "--stream", "CLI", "--once", "--capacity", "4MiB", "--progress", "0"}
	r := runShmio(t, pull)
	if r.code != 0 || !strings.Contains(r.stderr, "1000 frames") || !strings.Contains(r.stderr, fmt.Sprintf("up to sequence %d", seq1)) {
		t.Fatalf("pull: exit %d: %s", r.code, r.stderr)
	}
	st = replicateStatus(t, "--nats", url, "--stream", "CLI", "--pull-log", dst)
	if st.Pull.Tag == nil || *st.Pull.Tag != seq1 || st.Pull.BehindMessages != 0 || *st.Pull.BehindBytes != 0 ||
		st.Pull.ConsumerPending == nil || *st.Pull.ConsumerPending != 0 || !st.Pull.Exists || st.Pull.LagMillis != 0 {
		t.Fatalf("status after pull: %+v", *st.Pull)
	}

	appendLines(t, src, replicateLines(1000, 1500)...)
	caughtUp()
	st = replicateStatus(t, "--nats", url, "--stream", "CLI", "--log", src, "--pull-log", dst)
	if st.Pull.BehindMessages == 0 || st.Pull.BehindFrames == nil || *st.Pull.BehindFrames != 500 ||
		st.Pull.BehindBytes == nil || *st.Pull.BehindBytes <= 0 || st.Pull.LagMillis <= 0 {
		t.Fatalf("status with 500 to pull: %+v", *st.Pull)
	}
	// A threshold passed: exit 3, saying which.
	r = runShmio(t, []string{"replicate", "status", "--nats", url, "--stream", "CLI", "--pull-log", dst, "--log", src, "--max-behind", "499"})
	if r.code != exitBehind || !strings.Contains(r.stderr, "pull is 500 frames behind") || !strings.Contains(r.stdout, "ALERT") {
		t.Fatalf("status --max-behind 499: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r := runShmio(t, []string{"replicate", "status", "--nats", url, "--stream", "CLI", "--pull-log", dst, "--max-lag", "1h", "--max-behind", "10000"}); r.code != 0 {
		t.Fatalf("status within thresholds: exit %d: %s", r.code, r.stderr)
	}
	if r := runShmio(t, pull); r.code != 0 || !strings.Contains(r.stderr, "500 frames") {
		t.Fatalf("second pull: exit %d: %s", r.code, r.stderr)
	}
	want, got := logFrames(t, src), logFrames(t, dst)
	if len(got) != 1500 || len(want) != 1500 {
		t.Fatalf("source %d frames, copy %d", len(want), len(got))
	}
	for i := range want {
		if !bytes.Equal(want[i], got[i]) {
			t.Fatalf("frame %d: %q != %q", i, got[i], want[i])
		}
	}
	out := mustRun(t, []string{"replicate", "status", "--nats", url, "--stream", "CLI", "--log", src, "--pull-log", dst})
	out = strings.Join(strings.Fields(out), " ")
	for _, s := range []string{"stream CLI (subjects shmio.CLI, 1 replica(s), file storage)", "behind 0 frames, 0 bytes, no lag pull",
		"behind 0 messages (0 frames, 0 bytes), no lag"} {
		if !strings.Contains(out, s) {
			t.Errorf("status output lacks %q:\n%s", s, out)
		}
	}

	push.signal(t, syscall.SIGTERM)
	if code := push.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("push exit %d: %s", code, push.stderr.String())
	}
	if !strings.Contains(push.stderr.String(), "push: 1500 frames (") {
		t.Fatalf("push summary: %s", push.stderr.String())
	}
	b, err := os.ReadFile(src + ".CLI.cursor")
	if err != nil || !bytes.Contains(b, []byte(fmt.Sprintf(`"cursor":%d`, st.Push.Committed))) {
		t.Fatalf("cursor file: %s %v (committed %d)", b, err, st.Push.Committed)
	}
}

func TestReplicateCLIErrors(t *testing.T) {
	dir := t.TempDir()
	used := createLog(t, "1MiB")
	appendLines(t, used, "not pulled")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replicate", "status", "--nats", "embedded", "--stream", "S"}, "connects to a running server"},
		{[]string{"replicate", "push", "--log", used, "--nats", "embedded", "--stream", "S", "--storage", "disk"}, "want file or memory"},
		{[]string{"replicate", "push", "--log", used, "--nats", "embedded", "--stream", "S", "--replicas", "7"}, "1 to 5"},
		{[]string{"replicate", "push", "--log", filepath.Join(dir, "missing"), "--nats", "embedded", "--stream", "S"}, "no such file"},
		{[]string{"replicate", "push", "--log", used, "--nats", "embedded", "--stream", "S", "--log-id", "zz"}, "hexadecimal"},
		{[]string{"replicate", "pull", "--log", used, "--nats", "embedded", "--stream", "S"}, "did not write"},
		{[]string{"replicate", "push", "--log", used, "--stream", "S"}, `"nats" not set`},
	} {
		r := runShmio(t, c.args)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("shmio %s: exit %d, stderr %q; want an error containing %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// TestReplicateQueueCLI replicates a queue with 4 KiB segments (the frames span many rolls)
// into another queue: push with an embedded server, pull twice, status on both sides.
func TestReplicateQueueCLI(t *testing.T) {
	dir := t.TempDir()
	src, dst := createQueue(t, "4KiB"), createQueue(t, "4KiB")
	appendLines(t, src, replicateLines(0, 400)...)
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: src})
	if err != nil {
		t.Fatal(err)
	}
	srcID := fmt.Sprintf("%016x", q.ID())
	segs, _ := q.Segments()
	q.Close()
	if len(segs) < 10 {
		t.Fatalf("only %d source segments: the test wants rolls", len(segs))
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	push := startShmio(t, []string{"replicate", "push", "--log", src, "--nats", "embedded", "--listen", strings.TrimPrefix(url, "nats://"),
		"--store-dir", filepath.Join(dir, "js"), "--stream", "QCLI", "--progress", "0"})
	caughtUp := func() statusJSON {
		var st statusJSON
		waitFor(t, time.Minute, "push to catch up", func() bool {
			r := runShmio(t, []string{"replicate", "status", "--json", "--nats", url, "--stream", "QCLI", "--log", src})
			st = statusJSON{}
			return r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Push != nil &&
				st.Push.BehindFrames == 0 && st.Push.StreamEnd == st.Push.Committed
		})
		return st
	}
	st := caughtUp()
	seq1 := st.Stream.LastSeq
	if st.Push.LogID != srcID || st.Stream.LastLogID != srcID || st.Push.BehindBytes != 0 || st.Push.StreamEnd != st.Push.Committed {
		t.Fatalf("status after push (queue id %s): %+v %+v", srcID, st.Stream, *st.Push)
	}

	pull := []string{"replicate", "pull", "--log", dst, "--nats", url, "--stream", "QCLI", "--once", "--progress", "0"}
	if r := runShmio(t, pull); r.code != 0 || !strings.Contains(r.stderr, "400 frames") || !strings.Contains(r.stderr, fmt.Sprintf("up to sequence %d", seq1)) {
		t.Fatalf("pull: exit %d: %s", r.code, r.stderr)
	}
	appendLines(t, src, replicateLines(400, 700)...)
	st = caughtUp()
	seq2 := st.Stream.LastSeq
	st = replicateStatus(t, "--nats", url, "--stream", "QCLI", "--log", src, "--pull-log", dst)
	// The bytes come from the source queue (Store.Distance), right across segments.
	var wantBytes int64
	for _, l := range replicateLines(400, 700) {
		wantBytes += int64(len(l) + 4)
	}
	if st.Pull.Tag == nil || *st.Pull.Tag != seq1 || st.Pull.BehindMessages != seq2-seq1 || st.Pull.BehindFrames == nil ||
		*st.Pull.BehindFrames != 300 || st.Pull.BehindBytes == nil || *st.Pull.BehindBytes != wantBytes {
		t.Fatalf("status with 300 to pull: %+v (want %d bytes)", *st.Pull, wantBytes)
	}
	if r := runShmio(t, pull); r.code != 0 || !strings.Contains(r.stderr, "300 frames") {
		t.Fatalf("second pull: exit %d: %s", r.code, r.stderr)
	}
	st = replicateStatus(t, "--nats", url, "--stream", "QCLI", "--pull-log", dst)
	if st.Pull.Tag == nil || *st.Pull.Tag != seq2 || st.Pull.BehindMessages != 0 || st.Pull.BehindBytes == nil || *st.Pull.BehindBytes != 0 {
		t.Fatalf("status after pull: %+v", *st.Pull)
	}
	want := mustRun(t, []string{"tail", src, "--from", "start"})
	got := mustRun(t, []string{"tail", dst, "--from", "start"})
	wantLines(t, want, replicateLines(0, 700)...)
	if got != want {
		t.Fatalf("copy differs from source:\n%s\nwant:\n%s", got, want)
	}

	// A queue holding frames pull did not write is refused.
	other := createQueue(t, "4KiB")
	appendLines(t, other, "not pulled")
	if r := runShmio(t, []string{"replicate", "pull", "--log", other, "--nats", url, "--stream", "QCLI", "--once"}); r.code == 0 ||
		!strings.Contains(r.stderr, "did not write") {
		t.Fatalf("pull into a used queue: exit %d: %s", r.code, r.stderr)
	}

	push.signal(t, syscall.SIGTERM)
	if code := push.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("push exit %d: %s", code, push.stderr.String())
	}
	if !strings.Contains(push.stderr.String(), "push: 700 frames (") {
		t.Fatalf("push summary: %s", push.stderr.String())
	}
	if _, err := os.Stat(src + ".QCLI.cursor"); err != nil {
		t.Fatalf("cursor file: %v", err)
	}
}

// withEnv adds environment variables to the command.
func withEnv(kv ...string) runOpt { return func(c *exec.Cmd) { c.Env = append(c.Env, kv...) } }

// TestReplicateCLIOperator: what an operator runs into. Secrets from files or the environment,
// never argv; a server that is not there is retried, said on stderr, and given up on with
// --connect-timeout, without pull creating its log; permanent errors end --once with a non-zero
// exit; a second pusher is refused; status on a log not pulled yet says so.
func TestReplicateCLIOperator(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: filepath.Join(dir, "js"),
		Username: "shmio", Password: "s3cret", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	src := createLog(t, "1MiB")
	appendLines(t, src, replicateLines(0, 100)...)
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The password from a file, and from the environment.
	r := runShmio(t, []string{"replicate", "push", "--log", src, "--nats", url, "--stream", "OPS", "--once",
		"--user", "shmio", "--password-file", pwFile, "--max-msgs", "1000"})
	if r.code != 0 || !strings.Contains(r.stderr, "push: 100 frames") || strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("push with --password-file: exit %d: %s", r.code, r.stderr)
	}
	dst := filepath.Join(dir, "dst.log")
	r = runShmio(t, []string{"replicate", "pull", "--log", dst, "--nats", url, "--stream", "OPS", "--once", "--capacity", "1MiB"},
		withEnv("SHMIO_NATS_USER=shmio", "SHMIO_NATS_PASSWORD=s3cret"))
	if r.code != 0 || !strings.Contains(r.stderr, "100 frames") {
		t.Fatalf("pull with the password in the environment: exit %d: %s", r.code, r.stderr)
	}
	// A wrong password is permanent: no retrying forever.
	r = runShmio(t, []string{"replicate", "status", "--nats", url, "--stream", "OPS"},
		withEnv("SHMIO_NATS_USER=shmio", "SHMIO_NATS_PASSWORD=wrong"))
	if r.code == 0 || !strings.Contains(r.stderr, "uthorization") || strings.Contains(r.stderr, "wrong") {
		t.Fatalf("wrong password: exit %d: %s", r.code, r.stderr)
	}
	// Credentials in the URL are refused (they would show in ps).
	r = runShmio(t, []string{"replicate", "status", "--nats", "nats://shmio:s3cret@127.0.0.1:1", "--stream", "OPS"})
	if r.code == 0 || !strings.Contains(r.stderr, "process list") || strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("credentials in the URL: exit %d: %s", r.code, r.stderr)
	}

	auth := withEnv("SHMIO_NATS_USER=shmio", "SHMIO_NATS_PASSWORD=s3cret")
	// status --pull-log on a log that does not exist yet.
	missing := filepath.Join(dir, "not-yet.log")
	out := mustRun(t, []string{"replicate", "status", "--nats", url, "--stream", "OPS", "--pull-log", missing}, auth)
	if !strings.Contains(out, "does not exist yet") {
		t.Fatalf("status of a missing pull log:\n%s", out)
	}
	// Nobody listening: retried, said on stderr, given up on; pull leaves no log behind.
	dead := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	r = runShmio(t, []string{"replicate", "pull", "--log", missing, "--nats", dead, "--stream", "OPS", "--connect-timeout", "1s"})
	if r.code == 0 || !strings.Contains(r.stderr, "retrying in") || !strings.Contains(r.stderr, "gave up after 1s") {
		t.Fatalf("pull from nowhere: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("pull created %s before connecting: %v", missing, err)
	}
	// Permanent errors end --once: an invalid stream name, a missing stream.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replicate", "push", "--log", src, "--nats", url, "--stream", "a.b", "--once"}, "invalid stream name"},
		{[]string{"replicate", "pull", "--log", missing, "--nats", url, "--stream", "NOPE", "--once"}, "stream not found"},
	} {
		if r := runShmio(t, c.args, auth); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("shmio %s: exit %d: %s", strings.Join(c.args, " "), r.code, r.stderr)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("pull --once of a missing stream created %s: %v", missing, err)
	}
	// A second pusher of the same log and stream is refused while the first runs.
	first := startShmio(t, []string{"replicate", "push", "--log", src, "--nats", url, "--stream", "OPS", "--progress", "0"}, auth)
	waitFor(t, 30*time.Second, "the first pusher's lock", func() bool {
		b, err := os.ReadFile(src + ".OPS.cursor.lock")
		return err == nil && len(b) > 0
	})
	r = runShmio(t, []string{"replicate", "push", "--log", src, "--nats", url, "--stream", "OPS", "--once"}, auth)
	if r.code == 0 || !strings.Contains(r.stderr, "another pusher") {
		t.Fatalf("second pusher: exit %d: %s", r.code, r.stderr)
	}
	first.signal(t, syscall.SIGTERM)
	if code := first.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("first pusher: exit %d: %s", code, first.stderr.String())
	}
}
