package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// shmDir is a temporary directory on tmpfs when there is one (logs are memory-mapped files).
func shmDir(t testing.TB) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "shmio-agent-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// logs is a prompt log and a response log as the agent command opens them.
type logs struct {
	in, out *shmio.Log
	prod    *shmio.Writer // the producer's writer on the prompt log
	outW    *shmio.Writer // the agent's writer on the response log
}

func openLogs(t testing.TB, dir string, capacity int64) *logs {
	t.Helper()
	in, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "prompts"), Capacity: capacity, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "outcomes"), Capacity: capacity, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := in.Writer()
	if err != nil {
		t.Fatal(err)
	}
	outW, err := out.Writer()
	if err != nil {
		t.Fatal(err)
	}
	l := &logs{in: in, out: out, prod: prod, outW: outW}
	t.Cleanup(func() {
		prod.Close()
		outW.Close()
		in.Close()
		out.Close()
	})
	return l
}

func (l *logs) config(t testing.TB) Config {
	t.Helper()
	inIt, err := l.in.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	outIt, err := l.out.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return Config{Input: inIt, Output: l.outW, Outcomes: outIt, MaxRecordBytes: l.out.MaxPayload(),
		InputID: fmt.Sprint(l.in.Header().ID)}
}

// readAll returns every committed frame of a log (copied) with its cursor.
func readAll(t testing.TB, l *shmio.Log) ([][]byte, []int64) {
	t.Helper()
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var frames [][]byte
	var cursors []int64
	for {
		c := it.Cursor()
		f, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			return frames, cursors
		}
		frames = append(frames, append([]byte(nil), f...))
		cursors = append(cursors, c)
	}
}

// waitRecords waits in real time until the log holds n frames.
func waitRecords(t testing.TB, l *shmio.Log, n int, limit time.Duration) {
	t.Helper()
	it, err := l.NewIterator(shmio.IteratorOptions{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	got := 0
	var buf [][]byte
	for got < n {
		buf, err = it.NextBatch(buf[:0], shmio.BatchOptions{MaxFrames: 1024})
		if err != nil {
			t.Fatal(err)
		}
		got += len(buf)
		if len(buf) == 0 {
			if err := it.Wait(ctx); err != nil {
				t.Fatalf("%d of %d records after %v", got, n, limit)
			}
		}
	}
}

func TestAgentShmioEcho(t *testing.T) {
	l := openLogs(t, shmDir(t), 8<<20)
	cfg := l.config(t)
	cfg.Client = EchoClient{}
	cfg.CheckpointPath = filepath.Join(t.TempDir(), "cp")
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	const n = 3000
	for i := range n {
		var p []byte
		if i%3 == 0 {
			p = fmt.Appendf(nil, "text prompt %d", i)
		} else {
			p = fmt.Appendf(nil, `{"id":"id-%d","prompt":"json prompt %d","ts":%d}`, i, i, time.Now().UnixMilli())
		}
		if err := l.prod.Append(p); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if err := l.prod.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.prod.Commit(); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, l.out, n, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	prompts, cursors := readAll(t, l.in)
	recs, _ := readAll(t, l.out)
	byC := map[int64]Outcome{}
	for _, r := range recs {
		o, err := ParseOutcome(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := byC[o.Cursor]; dup {
			t.Fatalf("two outcomes for cursor %d", o.Cursor)
		}
		byC[o.Cursor] = o
	}
	for i, c := range cursors {
		o, ok := byC[c]
		if !ok || o.Status != StatusAnswered {
			t.Fatalf("prompt %d at %d: %+v", i, c, o)
		}
		want := string(prompts[i])
		if i%3 != 0 {
			want = fmt.Sprintf("json prompt %d", i)
			if o.ID != fmt.Sprintf("id-%d", i) {
				t.Fatalf("prompt %d id %q", i, o.ID)
			}
		}
		if o.Text != want {
			t.Fatalf("prompt %d at %d: text %q, want %q", i, c, o.Text, want)
		}
	}
	cp, err := ReadCheckpoint(cfg.CheckpointPath)
	if err != nil {
		t.Fatal(err)
	}
	end := l.in.Header().Size - l.in.Header().DataOffset
	if cp.Cursor != end || cp.InputID != cfg.InputID || cp.OutCursor != l.out.Header().Size-l.out.Header().DataOffset {
		t.Fatalf("checkpoint %+v, want cursor %d", cp, end)
	}
	if s := a.Stats(); s.Answered != n || s.LagBytes != 0 || s.InputEnd != end {
		t.Fatalf("stats %+v", s)
	}
}

// TestAgentShmioQueue reads prompts from a segmented queue with small segments, so read batches
// end at segment rolls where cursors jump: the agent plugs in unchanged and records exact cursors.
func TestAgentShmioQueue(t *testing.T) {
	dir := shmDir(t)
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: filepath.Join(dir, "q"), SegmentSize: 4096, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	qw, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	defer qw.Close()
	out, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "out"), Capacity: 4 << 20, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ow, err := out.Writer()
	if err != nil {
		t.Fatal(err)
	}
	defer ow.Close()
	qi, err := q.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oi, err := out.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		if err := qw.Append(fmt.Appendf(nil, "queued prompt number %d", i)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			qw.Commit()
		}
	}
	a, err := New(Config{Input: qi, Output: ow, Outcomes: oi, Client: EchoClient{}, Lag: q.Lag,
		CheckpointPath: filepath.Join(t.TempDir(), "cp")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitRecords(t, out, n, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs, _ := readAll(t, out)
	check, err := q.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	seen := map[int64]bool{}
	for _, r := range recs {
		o, _ := ParseOutcome(r)
		if seen[o.Cursor] {
			t.Fatalf("duplicate cursor %x", o.Cursor)
		}
		seen[o.Cursor] = true
		if _, err := check.Seek(o.Cursor, io.SeekStart); err != nil {
			t.Fatalf("outcome cursor %x: %v", o.Cursor, err)
		}
		f, err := check.Next()
		if err != nil || string(f) != o.Text {
			t.Fatalf("frame at %x is %q, outcome says %q (%v)", o.Cursor, f, o.Text, err)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d outcomes", len(seen))
	}
	if s := a.Stats(); s.LagFrames != 0 || s.LagBytes != 0 || s.Answered != n {
		t.Fatalf("stats %+v", s)
	}
	if segs, _ := q.Segments(); len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
}

// TestAgentShmioLagStats checks the lag gauges against a real log while the agent is stalled.
func TestAgentShmioLagStats(t *testing.T) {
	l := openLogs(t, shmDir(t), 1<<20)
	cfg := l.config(t)
	release := make(chan struct{})
	cfg.Client = &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
		<-release
		return Response{Text: "ok"}, nil, 0
	}}
	cfg.MaxInFlight, cfg.MaxPending, cfg.ReadMaxFrames = 2, 4, 4
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.prod.Append([]byte(strings.Repeat("x", 96))) // 100 bytes a frame
		_ = i
	}
	l.prod.Commit()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	var s Stats
	for time.Now().Before(deadline) {
		if s = a.Stats(); s.Read == 4 && s.InFlight == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// 4 read (2 in flight, 2 queued), 6 unread: 1000 bytes behind the watermark.
	if s.Read != 4 || s.InFlight != 2 || s.Pending != 4 || s.LagBytes != 1000 || s.UnreadBytes != 600 || s.LagFrames != 10 || s.InputEnd != 1000 {
		t.Fatalf("stats %+v", s)
	}
	close(release)
	waitRecords(t, l.out, 10, 10*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestAgentShmioSealedInput: when the producer seals the prompt log, the agent answers what is
// left and Run returns nil by itself.
func TestAgentShmioSealedInput(t *testing.T) {
	l := openLogs(t, shmDir(t), 1<<20)
	cfg := l.config(t)
	cfg.Client = EchoClient{}
	cfg.CheckpointPath = filepath.Join(t.TempDir(), "cp")
	for i := range 100 {
		l.prod.Append(fmt.Appendf(nil, "p%d", i))
	}
	l.prod.Commit()
	if err := l.prod.Seal(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Run(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v)", err, ctx.Err())
	}
	if s := a.Stats(); s.Answered != 100 || s.Checkpoint != l.in.Header().Size-l.in.Header().DataOffset {
		t.Fatalf("stats %+v", s)
	}
}
