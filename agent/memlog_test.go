package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// memLog is an in-memory stand-in for a shmio log with the same cursor arithmetic (a frame
// occupies len+4 bytes) and a channel-based Wait, so tests can run inside synctest bubbles.
type memLog struct {
	mu         sync.Mutex
	frames     [][]byte
	offs       []int64
	size       int64
	notify     chan struct{}
	maxPayload int
	// gap, when set, leaves that many bytes between frames (as a queue's segment roll does), so
	// no cursor can be derived from frame lengths.
	gap int64
}

func newMemLog() *memLog { return &memLog{notify: make(chan struct{}), maxPayload: 65531} }

func (l *memLog) publish(ps ...[]byte) {
	l.mu.Lock()
	for _, p := range ps {
		l.frames = append(l.frames, p)
		l.offs = append(l.offs, l.size)
		l.size += int64(len(p)) + 4 + l.gap
	}
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

// append commits one frame and returns its cursor.
func (l *memLog) append(p []byte) int64 {
	l.mu.Lock()
	c := l.size
	l.mu.Unlock()
	l.publish(append([]byte(nil), p...))
	return c
}

func (l *memLog) snapshot() ([][]byte, []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.frames...), append([]int64(nil), l.offs...)
}

func (l *memLog) iter() *memIter { return &memIter{l: l} }

type memIter struct {
	l   *memLog
	idx int
}

func (it *memIter) NextFrames(dst []shmio.Frame, o shmio.BatchOptions) ([]shmio.Frame, error) {
	maxN, maxB := o.MaxFrames, o.MaxBytes
	if maxN <= 0 {
		maxN = 64
	}
	if maxB <= 0 {
		maxB = 256 << 10
	}
	it.l.mu.Lock()
	defer it.l.mu.Unlock()
	used := 0
	for it.idx < len(it.l.frames) && len(dst) < maxN {
		f := it.l.frames[it.idx]
		if len(dst) > 0 && used+len(f)+4 > maxB {
			break
		}
		used += len(f) + 4
		c := it.l.offs[it.idx]
		dst = append(dst, shmio.Frame{Data: f, Cursor: c, End: c + int64(len(f)) + 4 + it.l.gap})
		it.idx++
	}
	return dst, nil
}

func (it *memIter) Wait(ctx context.Context) error {
	it.l.mu.Lock()
	if it.idx < len(it.l.frames) {
		it.l.mu.Unlock()
		return nil
	}
	ch := it.l.notify
	it.l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (it *memIter) Cursor() int64 {
	it.l.mu.Lock()
	defer it.l.mu.Unlock()
	if it.idx < len(it.l.offs) {
		return it.l.offs[it.idx]
	}
	return it.l.size
}

func (it *memIter) End() int64 {
	it.l.mu.Lock()
	defer it.l.mu.Unlock()
	return it.l.size
}

func (it *memIter) Seek(off int64, whence int) (int64, error) {
	it.l.mu.Lock()
	defer it.l.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekEnd:
		off += it.l.size
	default:
		return 0, errors.New("memIter: unsupported whence")
	}
	if off == it.l.size {
		it.idx = len(it.l.frames)
		return off, nil
	}
	i := sort.Search(len(it.l.offs), func(i int) bool { return it.l.offs[i] >= off })
	if i == len(it.l.offs) || it.l.offs[i] != off {
		return 0, fmt.Errorf("memIter: %d is not a frame start", off)
	}
	it.idx = i
	return off, nil
}

// memWriter is the Sink side of a memLog.
type memWriter struct {
	l       *memLog
	pending [][]byte
	failAt  int // Commit fails once the log holds this many frames (0 = never)
}

func (w *memWriter) Allocate(n int) ([]byte, error) {
	if n > w.l.maxPayload {
		return nil, fmt.Errorf("memWriter: %d bytes: %w", n, shmio.ErrFrameTooLarge)
	}
	b := make([]byte, n)
	w.pending = append(w.pending, b)
	return b, nil
}

func (w *memWriter) Commit() error {
	if w.failAt > 0 {
		w.l.mu.Lock()
		n := len(w.l.frames)
		w.l.mu.Unlock()
		if n+len(w.pending) > w.failAt {
			w.pending = nil
			return errors.New("memWriter: log full")
		}
	}
	if len(w.pending) > 0 {
		w.l.publish(w.pending...)
		w.pending = nil
	}
	return nil
}

// outcomesOf decodes every record of an output log.
func outcomesOf(t testing.TB, l *memLog) []Outcome {
	t.Helper()
	frames, _ := l.snapshot()
	out := make([]Outcome, 0, len(frames))
	for _, f := range frames {
		o, err := ParseOutcome(f)
		if err != nil {
			t.Fatalf("outcome record %q: %v", f, err)
		}
		out = append(out, o)
	}
	return out
}

// byCursor indexes outcomes by every input cursor they cover.
func byCursor(os []Outcome) map[int64][]Outcome {
	m := make(map[int64][]Outcome)
	for _, o := range os {
		cs := o.Cursors
		if len(cs) == 0 {
			cs = []int64{o.Cursor}
		}
		for _, c := range cs {
			m[c] = append(m[c], o)
		}
	}
	return m
}

// fakeClient is an in-memory Client whose behaviour a test scripts per call.
type fakeClient struct {
	mu    sync.Mutex
	calls []fakeCall
	// reply decides each call: n counts calls for the same prompt text (1-based).
	reply func(req Request, n int) (Response, error, time.Duration)
	perP  map[string]int
}

type fakeCall struct {
	at  time.Time
	req Request
	n   int
}

func (f *fakeClient) SendPrompt(ctx context.Context, req Request) (Response, error) {
	f.mu.Lock()
	if f.perP == nil {
		f.perP = map[string]int{}
	}
	f.perP[req.Prompt]++
	n := f.perP[req.Prompt]
	f.calls = append(f.calls, fakeCall{at: time.Now(), req: req, n: n})
	reply := f.reply
	f.mu.Unlock()
	resp, err, delay := Response{Text: "re: " + req.Prompt, Model: req.Model, StopReason: "end_turn", InputTokens: 10, OutputTokens: 5}, error(nil), time.Duration(0)
	if reply != nil {
		resp, err, delay = reply(req, n)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return Response{}, ctx.Err()
		}
	}
	return resp, err
}

func (f *fakeClient) callsFor(prompt string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.req.Prompt == prompt {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeClient) allCalls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// harness wires an agent to in-memory logs.
type harness struct {
	in, out *memLog
	cfg     Config
	a       *Agent
	cancel  context.CancelFunc
	done    chan error
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{in: newMemLog(), out: newMemLog()}
	if cfg.Input == nil {
		cfg.Input = h.in.iter()
	}
	if cfg.Output == nil {
		cfg.Output = &memWriter{l: h.out}
	}
	if cfg.Outcomes == nil {
		cfg.Outcomes = h.out.iter()
	}
	h.cfg = cfg
	return h
}

func (h *harness) start(t testing.TB) {
	t.Helper()
	a, err := New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
}

func (h *harness) stop(t testing.TB) {
	t.Helper()
	h.cancel()
	if err := <-h.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// waitOutcomes blocks (in fake or real time) until the output holds n records; it waits on the
// log's commit notification, so in a synctest bubble no time passes beyond the agent's own timers.
func (h *harness) waitOutcomes(t testing.TB, n int, limit time.Duration) []Outcome {
	t.Helper()
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	for {
		h.out.mu.Lock()
		got, ch := len(h.out.frames), h.out.notify
		h.out.mu.Unlock()
		if got >= n {
			return outcomesOf(t, h.out)
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("got %d outcome records after %v, want %d; stats %+v", got, limit, n, h.a.Stats())
		}
	}
}

func jsonPrompt(t testing.TB, p Prompt) []byte {
	t.Helper()
	b, err := EncodePrompt(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
