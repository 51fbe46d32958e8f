package replicate

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

// pipeline is a pusher and a puller between two real logs through one NATS URL.
type pipeline struct {
	src, dst         *shmio.Log
	srcPath, dstPath string
	push             *Pusher
	pull             *Puller
	stopPush         func() error
	stopPull         func() error
}

func startPipeline(t *testing.T, url, stream string, src, dst *shmio.Log, so StreamOptions) *pipeline {
	t.Helper()
	return startPipelineLog(t, url, stream, src, dst, so, t.Logf)
}

// startPipelineLog is startPipeline with the pusher's and puller's messages going to logf.
func startPipelineLog(t *testing.T, url, stream string, src, dst *shmio.Log, so StreamOptions, logf func(string, ...any)) *pipeline {
	t.Helper()
	so.Name = stream
	it, err := src.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	push, err := NewPusher(it, PushConfig{Conn: connect(t, url), Stream: so, LogID: src.Header().ID,
		CursorFile: filepath.Join(t.TempDir(), "cursor"), Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	w, err := dst.Writer()
	if err != nil {
		t.Fatal(err)
	}
	tag, _, _ := dst.CommitTag()
	pull, err := NewPuller(w, PullConfig{Conn: connect(t, url), Stream: stream, Durable: "copy", Tag: tag, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{src: src, dst: dst, srcPath: src.Path(), dstPath: dst.Path(), push: push, pull: pull}
	p.stopPush = runBG(push.Run)
	p.stopPull = runBG(pull.Run)
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *pipeline) stop(t *testing.T) {
	if p.stopPush != nil {
		if err := p.stopPush(); err != nil {
			t.Errorf("push: %v", err)
		}
		p.stopPush = nil
	}
	if p.stopPull != nil {
		if err := p.stopPull(); err != nil {
			t.Errorf("pull: %v", err)
		}
		p.stopPull = nil
	}
}

// TestMillionFrames pushes and pulls 1,000,000 mixed-size frames (up to 65531 bytes) while the
// source is still being written, and checks the copy frame for frame.
func TestMillionFrames(t *testing.T) {
	n := 1_000_000
	if s := os.Getenv("SHMIO_MILLION_N"); s != "" {
		n, _ = strconv.Atoi(s) // scratch knob for profiling; CI runs the full million
	}
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "js"), 0)
	src := createLog(t, filepath.Join(dir, "src.log"), 320<<20)
	dst := createLog(t, filepath.Join(dir, "dst.log"), 320<<20)
	p := startPipeline(t, s.ClientURL(), "MILLION", src, dst, StreamOptions{})

	w, err := src.Writer()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	writeFrames(t, w, rand.New(rand.NewPCG(7, 7)), 0, n, 256)
	wrote := time.Since(start)
	last := time.Now()
	eventually(t, 8*time.Minute, "all frames pulled", func() bool {
		if testing.Verbose() && time.Since(last) > 2*time.Second {
			last = time.Now()
			t.Logf("push %+v\npull %+v", p.push.Stats(), p.pull.Stats())
		}
		return p.pull.Stats().Frames >= int64(n)
	})
	elapsed := time.Since(start)
	p.stop(t)
	if got := compareLogs(t, p.srcPath, p.dstPath); got != n {
		t.Fatalf("compared %d frames, want %d", got, n)
	}
	ps, ls := p.push.Stats(), p.pull.Stats()
	if ps.Frames != int64(n) || ls.Tag != ps.Seq || ls.Frames != int64(n) || ls.Skipped != 0 || ps.Duplicates != 0 {
		t.Fatalf("push %+v pull %+v", ps, ls)
	}
	if tag, ok, _ := dst.CommitTag(); !ok || tag != ps.Seq {
		t.Fatalf("destination tag %d %v, want %d", tag, ok, ps.Seq)
	}
	t.Logf("%d frames (%d MiB) in %d messages written in %v, replicated in %v (%.0f frames/s)",
		n, src.Header().Size>>20, ps.Seq, wrote.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}

// TestResumeAndStatus stops both sides part way, checks what status reports, restarts them
// from their persisted state and checks the result.
func TestResumeAndStatus(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "js"), 0)
	src := createLog(t, filepath.Join(dir, "src.log"), 16<<20)
	dst := createLog(t, filepath.Join(dir, "dst.log"), 16<<20)
	w, err := src.Writer()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	writeFrames(t, w, rng, 0, 2000, 100)
	cursorFile := filepath.Join(dir, "push.cursor")
	nc := connect(t, s.ClientURL())
	ctx := t.Context()

	runPush := func() PushStats {
		it, err := src.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPusher(it, PushConfig{Conn: nc, Stream: StreamOptions{Name: "RESUME"}, LogID: src.Header().ID,
			CursorFile: cursorFile, Once: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return p.Stats()
	}
	dw, err := dst.Writer()
	if err != nil {
		t.Fatal(err)
	}
	runPull := func() PullStats {
		tag, _, _ := dst.CommitTag()
		p, err := NewPuller(dw, PullConfig{Conn: nc, Stream: "RESUME", Durable: "d", Tag: tag, Once: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return p.Stats()
	}
	status := func() *Status {
		tag, ok, _ := dst.CommitTag()
		st, err := GetStatus(ctx, StatusOptions{Conn: nc, Stream: "RESUME", Source: src, LogID: src.Header().ID,
			CursorFile: cursorFile, Pull: true, Tag: tag, TagOK: ok, Durable: "d"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	ps := runPush()
	if ps.Frames != 2000 || ps.Seq == 0 || ps.Acked != int64(ps.Seq) {
		t.Fatalf("first push: %+v", ps)
	}
	seq1 := ps.Seq
	st := status()
	if st.Push.BehindFrames != 0 || st.Push.BehindBytes != 0 || st.Push.FileCursor != src.Header().Size-src.Header().DataOffset {
		t.Fatalf("push status after the first push: %+v", *st.Push)
	}
	if st.Pull.TagOK || st.Pull.BehindMsgs != seq1 || st.Pull.BehindBytes != st.Push.StreamEnd || st.Pull.BehindFrames != 2000 {
		t.Fatalf("pull status before pulling: %+v (stream end %d)", *st.Pull, st.Push.StreamEnd)
	}
	e1 := st.Push.StreamEnd
	if ls := runPull(); ls.Tag != seq1 || ls.Frames != 2000 || ls.Msgs != int64(seq1) {
		t.Fatalf("first pull: %+v", ls)
	}
	writeFrames(t, w, rng, 2000, 500, 100)
	committed := src.Header().Size - src.Header().DataOffset
	st = status()
	if st.Push.BehindFrames != 500 || st.Push.BehindBytes != committed-st.Push.StreamEnd || st.Pull.BehindMsgs != 0 {
		t.Fatalf("status with 500 new frames: push %+v pull %+v", *st.Push, *st.Pull)
	}
	ps = runPush()
	if ps.Frames != 500 || ps.Duplicates != 0 || ps.Seq <= seq1 {
		t.Fatalf("second push: %+v", ps)
	}
	seq2 := ps.Seq
	st = status()
	if st.Pull.BehindMsgs != seq2-seq1 || st.Pull.BehindBytes != committed-e1 || st.Pull.BehindFrames != 500 ||
		st.Push.StreamEnd != committed || st.Pull.Lag <= 0 {
		t.Fatalf("pull status before the second pull: %+v", *st.Pull)
	}
	if ls := runPull(); ls.Tag != seq2 || ls.Frames != 500 || ls.Skipped != 0 {
		t.Fatalf("second pull: %+v", ls)
	}
	st = status()
	if st.Pull.BehindMsgs != 0 || st.Pull.BehindBytes != 0 || st.Pull.Lag != 0 || st.Stream.LastSeq != seq2 ||
		st.Stream.LastLogID != src.Header().ID || st.Stream.LastEnd != committed {
		t.Fatalf("final status: %+v %+v", st.Stream, *st.Pull)
	}
	dw.Close()
	if n := compareLogs(t, src.Path(), dst.Path()); n != 2500 {
		t.Fatalf("compared %d frames", n)
	}
}

// TestPushRefusesForeignStream: a stream fed by another log must not be appended to.
func TestPushRefusesForeignStream(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "js"), 0)
	nc := connect(t, s.ClientURL())
	var logs [2]*shmio.Log
	for i := range logs {
		logs[i] = createLog(t, filepath.Join(dir, "l"+string(rune('a'+i))), 1<<20)
		w, err := logs[i].Writer()
		if err != nil {
			t.Fatal(err)
		}
		writeFrames(t, w, rand.New(rand.NewPCG(1, uint64(i))), 0, 10, 10)
	}
	push := func(l *shmio.Log, cursorFile string) error {
		it, err := l.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPusher(it, PushConfig{Conn: nc, Stream: StreamOptions{Name: "ONE"}, LogID: l.Header().ID,
			CursorFile: cursorFile, Once: true})
		if err != nil {
			t.Fatal(err)
		}
		return p.Run(t.Context())
	}
	if err := push(logs[0], filepath.Join(dir, "c0")); err != nil {
		t.Fatal(err)
	}
	if err := push(logs[1], filepath.Join(dir, "c1")); err == nil || !strings.Contains(err.Error(), "another source") {
		t.Fatalf("second log into the same stream: err = %v", err)
	}
	// A cursor file that belongs to another log is refused too.
	if err := push(logs[1], filepath.Join(dir, "c0")); err == nil || !strings.Contains(err.Error(), "belongs to log") {
		t.Fatalf("foreign cursor file: err = %v", err)
	}
	// The stream deleted behind the pusher's back: the cursor file says frames were acknowledged.
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(t.Context(), "ONE"); err != nil {
		t.Fatal(err)
	}
	if err := push(logs[0], filepath.Join(dir, "c0")); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("deleted stream: err = %v", err)
	}
}

// TestPullRefusesRecreatedStream: a log holding sequences beyond the stream's end is not pulled into.
func TestPullRefusesRecreatedStream(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	nc := connect(t, s.ClientURL())
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	l := createLog(t, filepath.Join(t.TempDir(), "dst.log"), 1<<20)
	dst, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPuller(dst, PullConfig{Conn: nc, Stream: "S", Durable: "d", Tag: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "recreated") {
		t.Fatalf("err = %v", err)
	}
}

func TestMsgID(t *testing.T) {
	id := MsgID(0x0123456789abcdef, 4242)
	if id != "0123456789abcdef:4242" {
		t.Fatalf("MsgID = %q", id)
	}
	l, c, err := ParseMsgID(id)
	if err != nil || l != 0x0123456789abcdef || c != 4242 {
		t.Fatalf("ParseMsgID = %x %d %v", l, c, err)
	}
	for _, bad := range []string{"", "abc:1", "0123456789abcdef", "0123456789abcdeg:1", "0123456789abcdef:-1", "0123456789abcdef:x"} {
		if _, _, err := ParseMsgID(bad); err == nil {
			t.Errorf("ParseMsgID(%q) accepted", bad)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		pat, subj string
		want      bool
	}{
		{"a.b", "a.b", true}, {"a.*", "a.b", true}, {"a.>", "a.b.c", true}, {">", "a", true},
		{"a.b", "a.c", false}, {"a.*", "a.b.c", false}, {"a.>", "a", false}, {"a.b.c", "a.b", false},
	} {
		if got := subjectMatches(c.pat, c.subj); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v", c.pat, c.subj, got)
		}
	}
}

func TestCursorFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	if _, ok, err := ReadCursorFile(path); ok || err != nil {
		t.Fatalf("missing file: ok=%v err=%v", ok, err)
	}
	want := CursorState{LogID: 0xfeed, Stream: "S", Cursor: 123, Seq: 9}
	if err := WriteCursorFile(path, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadCursorFile(path)
	if err != nil || !ok || got != want {
		t.Fatalf("read back %+v %v %v", got, ok, err)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".c.tmp*"))
	if len(matches) != 0 {
		t.Fatalf("temporary files left: %v", matches)
	}
}
