package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/shmio/shmio"
)

// The concrete log types plug in directly.
var (
	_ Source = (*shmio.Iterator)(nil)
	_ Sink   = (*shmio.Writer)(nil)
	_ Source = (*shmio.QueueIterator)(nil)
	_ Sink   = (*shmio.QueueWriter)(nil)
)

func isFrameTooLarge(err error) bool { return errors.Is(err, shmio.ErrFrameTooLarge) }

// Source is the prompt input: an iterator over committed frames of a log. *shmio.Iterator
// satisfies it (and so must any other queue the agent reads).
type Source interface {
	NextBatch(dst [][]byte, o shmio.BatchOptions) ([][]byte, error)
	// Wait blocks until a frame past the cursor is committed, or ctx is done.
	Wait(ctx context.Context) error
	// Cursor is the position of the next frame NextBatch returns.
	Cursor() int64
	Seek(offset int64, whence int) (int64, error)
	// End is the cursor of the committed end (for lag metrics).
	End() int64
}

// Sink is the outcome output. *shmio.Writer satisfies it.
type Sink interface {
	// Allocate returns room for an n-byte frame, published by the next Commit.
	Allocate(n int) ([]byte, error)
	Commit() error
}

// Config configures an Agent. Input, Output and Client are required; zero values elsewhere pick
// the defaults documented on each field.
type Config struct {
	Input  Source
	Output Sink
	// Outcomes, optional, is an iterator over the response log that Output writes. With it, a
	// restart skips prompts whose outcome a previous run committed after its last checkpoint, so
	// only prompts in flight at a crash are sent again.
	Outcomes Source
	Client   Client
	// Decoder turns frames into prompts; nil means DecodePrompt.
	Decoder Decoder
	// Lag, optional, counts the frames and bytes committed after an input cursor (shmio.Queue.Lag
	// does). Without it, lag bytes are cursor differences and lag frames an estimate.
	Lag func(cursor int64) (frames, bytes int64, err error)

	// CheckpointPath is the cursor file; empty disables checkpoints (the agent then starts at the
	// Input's current cursor). With a file, the agent resumes at its cursor.
	CheckpointPath string
	// CheckpointInterval bounds how often the file is rewritten (default 100ms); it is also
	// written at start and at shutdown.
	CheckpointInterval time.Duration
	// InputID identifies the input log in the checkpoint; a checkpoint with another non-empty ID
	// is refused.
	InputID string

	Model     string // default DefaultModel
	MaxTokens int    // answer cap for prompts without max_tokens; default 1024
	System    string // system prompt for prompts without one

	MaxInFlight   int // concurrent requests; default 8
	ReadMaxFrames int // frames per read batch; default 64
	ReadMaxBytes  int // bytes per read batch; 0 = the Source's default
	// MaxPending bounds prompts read but without a committed outcome (backpressure on reading);
	// default 2*MaxInFlight*max(1,Coalesce) + ReadMaxFrames.
	MaxPending int

	// TTL is the default time to live of a prompt, counted from its ts (or from when it was read):
	// a prompt that would be sent (or retried) later is not sent and gets an expired outcome.
	// 0 means no default TTL (a prompt's ttl_ms still applies).
	TTL time.Duration

	RequestsPerMinute    int // client-side request budget; 0 = unlimited
	InputTokensPerMinute int // client-side input-token budget; 0 = unlimited

	MaxAttempts    int           // attempts per prompt, first included; default 5
	BackoffBase    time.Duration // first retry delay before jitter; default 500ms
	BackoffMax     time.Duration // retry delay cap; default 30s
	RequestTimeout time.Duration // per attempt; default 5m

	// Coalesce > 1 merges up to that many prompts into one request; Linger is how long the first
	// prompt of a group waits for more (0 = merge only what one read returns).
	Coalesce int
	Linger   time.Duration
	// CoalesceSeparator joins merged prompts; default "\n".
	CoalesceSeparator string

	// DrainTimeout bounds how long shutdown waits for in-flight requests (default 30s); requests
	// still running then are abandoned without outcome and sent again after a restart.
	DrainTimeout time.Duration
	// MaxRecordBytes is the largest outcome frame the Output takes; longer answers are truncated
	// (Truncated set). 0 = learn it from the Output's frame-too-large error.
	MaxRecordBytes int

	Observer Observer
	Logger   *slog.Logger
}

// Agent dispatches prompts from Config.Input and writes outcomes to Config.Output.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	lim     *limiter
	tr      *tracker
	c       counters
	started atomic.Bool

	// writer-goroutine state
	enc     *json.Encoder
	encBuf  bytes.Buffer
	lastCP  Checkpoint
	cpValid bool
}

// New validates cfg and returns an Agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.Input == nil:
		return nil, errors.New("agent: Config.Input is required")
	case cfg.Output == nil:
		return nil, errors.New("agent: Config.Output is required")
	case cfg.Client == nil:
		return nil, errors.New("agent: Config.Client is required")
	}
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"MaxInFlight", int64(cfg.MaxInFlight)}, {"ReadMaxFrames", int64(cfg.ReadMaxFrames)},
		{"ReadMaxBytes", int64(cfg.ReadMaxBytes)}, {"MaxPending", int64(cfg.MaxPending)},
		{"TTL", int64(cfg.TTL)}, {"RequestsPerMinute", int64(cfg.RequestsPerMinute)},
		{"InputTokensPerMinute", int64(cfg.InputTokensPerMinute)}, {"MaxAttempts", int64(cfg.MaxAttempts)},
		{"BackoffBase", int64(cfg.BackoffBase)}, {"BackoffMax", int64(cfg.BackoffMax)},
		{"RequestTimeout", int64(cfg.RequestTimeout)}, {"Coalesce", int64(cfg.Coalesce)},
		{"Linger", int64(cfg.Linger)}, {"DrainTimeout", int64(cfg.DrainTimeout)},
		{"MaxTokens", int64(cfg.MaxTokens)}, {"CheckpointInterval", int64(cfg.CheckpointInterval)},
		{"MaxRecordBytes", int64(cfg.MaxRecordBytes)},
	} {
		if v.n < 0 {
			return nil, fmt.Errorf("agent: Config.%s must not be negative (%d)", v.name, v.n)
		}
	}
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	defD := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if cfg.Decoder == nil {
		cfg.Decoder = DecodePrompt
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	def(&cfg.MaxTokens, 1024)
	def(&cfg.MaxInFlight, 8)
	def(&cfg.ReadMaxFrames, 64)
	def(&cfg.MaxAttempts, 5)
	def(&cfg.Coalesce, 1)
	def(&cfg.MaxPending, 2*cfg.MaxInFlight*cfg.Coalesce+cfg.ReadMaxFrames)
	if cfg.MaxPending < cfg.Coalesce+1 {
		return nil, fmt.Errorf("agent: Config.MaxPending (%d) must exceed Coalesce (%d)", cfg.MaxPending, cfg.Coalesce)
	}
	defD(&cfg.BackoffBase, 500*time.Millisecond)
	defD(&cfg.BackoffMax, 30*time.Second)
	defD(&cfg.RequestTimeout, 5*time.Minute)
	defD(&cfg.DrainTimeout, 30*time.Second)
	defD(&cfg.CheckpointInterval, 100*time.Millisecond)
	if cfg.CoalesceSeparator == "" {
		cfg.CoalesceSeparator = "\n"
	}
	a := &Agent{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.tr = newTracker(cfg.MaxPending, 0)
	a.enc = json.NewEncoder(&a.encBuf)
	a.enc.SetEscapeHTML(false)
	a.c.checkpoint.Store(-1)
	return a, nil
}

// item is one decoded prompt on its way.
type item struct {
	seq      uint64
	cursor   int64
	p        Prompt
	start    time.Time // prompt ts, or when it was read: the TTL and end-to-end latency base
	deadline time.Time // zero = no TTL
}

// result is one outcome record to write.
type result struct {
	seqs  []uint64
	start time.Time
	o     Outcome
}

// Run reads prompts until ctx is done, then drains: it stops reading, lets in-flight requests
// finish for up to DrainTimeout, writes their outcomes and the checkpoint, and returns nil. It
// returns an error when the input, output or checkpoint fails. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	start, err := a.resume()
	if err != nil {
		return err
	}
	a.lim = newLimiter(a.cfg.RequestsPerMinute, a.cfg.InputTokensPerMinute, time.Now())
	if err := a.writeCheckpoint(true); err != nil {
		return err
	}
	a.log.Info("agent started", "cursor", start, "model", a.cfg.Model, "max_in_flight", a.cfg.MaxInFlight)

	soft, softCancel := context.WithCancel(ctx)
	defer softCancel()
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	var fatalOnce sync.Once
	var fatal error
	fail := func(err error) {
		fatalOnce.Do(func() { fatal = err })
		softCancel()
	}

	work := make(chan []item, a.cfg.MaxPending)
	results := make(chan result, a.cfg.MaxPending)

	writerDone := make(chan error, 1)
	go func() { writerDone <- a.writeLoop(results) }()

	var workers sync.WaitGroup
	for range a.cfg.MaxInFlight {
		workers.Go(func() {
			for g := range work {
				if soft.Err() != nil {
					continue // not started: no outcome, the checkpoint stays before it
				}
				a.process(soft, hard, g, results)
			}
		})
	}

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		if err := a.readLoop(soft, work, results); err != nil {
			fail(err)
		}
		close(work)
	}()

	// Once stopping, give in-flight requests DrainTimeout, then cut them off.
	drainDone := make(chan struct{})
	go func() {
		defer close(drainDone)
		select {
		case <-soft.Done():
		case <-hard.Done():
			return
		}
		t := time.NewTimer(a.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			a.log.Warn("drain timeout: abandoning in-flight requests", "in_flight", a.c.inFlight.Load())
			hardCancel()
		case <-hard.Done():
		}
	}()

	workersDone := make(chan struct{})
	go func() {
		<-readerDone
		workers.Wait()
		close(results)
		close(workersDone)
	}()

	var werr error
	select {
	case werr = <-writerDone:
		if werr != nil {
			// The writer stops early only on failure: stop everything at once.
			fail(werr)
			hardCancel()
		}
		<-workersDone
	case <-workersDone:
		werr = <-writerDone
	}
	hardCancel()
	<-drainDone
	if werr != nil {
		return werr
	}
	if fatal != nil {
		return fatal
	}
	a.log.Info("agent stopped", "checkpoint", a.c.checkpoint.Load())
	return nil
}

// resume positions the input at the checkpoint and collects outcomes written after it.
func (a *Agent) resume() (int64, error) {
	in := a.cfg.Input
	start := in.Cursor()
	outFrom := int64(-1)
	if a.cfg.CheckpointPath != "" {
		cp, err := ReadCheckpoint(a.cfg.CheckpointPath)
		switch {
		case err == nil:
			if cp.InputID != "" && a.cfg.InputID != "" && cp.InputID != a.cfg.InputID {
				return 0, fmt.Errorf("checkpoint %s belongs to input %q, not %q", a.cfg.CheckpointPath, cp.InputID, a.cfg.InputID)
			}
			if _, err := in.Seek(cp.Cursor, io.SeekStart); err != nil {
				return 0, fmt.Errorf("resume at checkpoint cursor %d: %w", cp.Cursor, err)
			}
			start, outFrom = cp.Cursor, cp.OutCursor
		case isNotExist(err):
		default:
			return 0, err
		}
	}
	a.tr.setReadEnd(start)
	a.c.readCursor.Store(start)
	a.c.committed.Store(in.End())
	if a.cfg.Outcomes != nil && outFrom >= 0 {
		rec, err := scanOutcomes(a.cfg.Outcomes, outFrom, start)
		if err != nil {
			return 0, err
		}
		a.tr.setRecovered(rec)
		if len(rec) > 0 {
			a.log.Info("outcomes already written past the checkpoint", "prompts", len(rec))
		}
	}
	return start, nil
}

// scanOutcomes reads the response log from position from and returns, for each input cursor at or
// past minCursor that already has an outcome, a position at or before that outcome.
func scanOutcomes(out Source, from, minCursor int64) (map[int64]int64, error) {
	if _, err := out.Seek(from, io.SeekStart); err != nil {
		// Not a position of this log any more (replaced, or trimmed by retention): scanning from
		// the start finds every outcome still there.
		if _, err2 := out.Seek(0, io.SeekStart); err2 != nil {
			return nil, fmt.Errorf("scan response log at %d: %w", from, err)
		}
	}
	rec := make(map[int64]int64)
	var frames [][]byte
	for {
		pos := out.Cursor()
		var err error
		frames, err = out.NextBatch(frames[:0], shmio.BatchOptions{MaxFrames: 256})
		if err != nil {
			return nil, fmt.Errorf("scan response log at %d: %w", pos, err)
		}
		if len(frames) == 0 {
			return rec, nil
		}
		for _, f := range frames {
			var o struct {
				Cursor  *int64  `json:"cursor"`
				Cursors []int64 `json:"cursors"`
			}
			if json.Unmarshal(f, &o) != nil || o.Cursor == nil {
				continue // not an outcome record
			}
			cs := o.Cursors
			if len(cs) == 0 {
				cs = []int64{*o.Cursor}
			}
			for _, c := range cs {
				if c >= minCursor {
					if _, dup := rec[c]; !dup {
						rec[c] = pos
					}
				}
			}
		}
	}
}

// readLoop follows the input and hands prompts to the workers (rejects go straight to the writer).
func (a *Agent) readLoop(ctx context.Context, work chan<- []item, results chan<- result) error {
	in := a.cfg.Input
	frames := make([][]byte, 0, a.cfg.ReadMaxFrames)
	var cursors []int64
	var group []item
	var lingerEnd time.Time
	refresh := time.NewTimer(time.Hour)
	refresh.Stop()
	defer refresh.Stop()
	flush := func() {
		if len(group) > 0 {
			work <- group
			group = nil
		}
	}
	for ctx.Err() == nil {
		free := a.tr.free()
		if free == 0 {
			flush() // nothing more can join the group until outcomes are written
			refresh.Reset(250 * time.Millisecond)
			select {
			case <-a.tr.space:
			case <-refresh.C:
				a.c.committed.Store(in.End())
			case <-ctx.Done():
			}
			refresh.Stop()
			continue
		}
		before := in.Cursor()
		var err error
		frames, err = in.NextBatch(frames[:0], shmio.BatchOptions{MaxFrames: min(free, a.cfg.ReadMaxFrames), MaxBytes: a.cfg.ReadMaxBytes})
		if err != nil {
			return fmt.Errorf("read prompts at cursor %d: %w", before, err)
		}
		a.c.committed.Store(in.End())
		if len(frames) == 0 {
			if len(group) == 0 || a.cfg.Linger <= 0 {
				flush()
				if err := in.Wait(ctx); err != nil && ctx.Err() == nil {
					if errors.Is(err, shmio.ErrSealed) {
						// The producer closed the log for good: finish what was read, then return.
						a.log.Info("prompt log sealed and fully read", "cursor", before)
						return nil
					}
					return fmt.Errorf("wait for prompts at cursor %d: %w", before, err)
				}
				continue
			}
			if !time.Now().Before(lingerEnd) {
				flush()
				continue
			}
			wctx, cancel := context.WithDeadline(ctx, lingerEnd)
			err := in.Wait(wctx)
			cancel()
			if errors.Is(err, shmio.ErrSealed) {
				flush() // nothing more will come: do not linger
				continue
			}
			if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("wait for prompts at cursor %d: %w", before, err)
			}
			continue
		}
		after := in.Cursor()
		var ok bool
		if cursors, ok = frameCursors(cursors[:0], before, after, frames); !ok {
			if frames, cursors, err = readOneByOne(in, before, len(frames)); err != nil {
				return err
			}
			after = in.Cursor()
		}
		now := time.Now()
		for i, f := range frames {
			c := cursors[i]
			if a.tr.skipRecovered(c) {
				a.c.recovered.Add(1)
				continue
			}
			a.c.read.Add(1)
			seq := a.tr.add(c)
			p, err := a.cfg.Decoder(f)
			if err != nil {
				results <- result{seqs: []uint64{seq}, start: now, o: Outcome{Cursor: c, Status: StatusRejected, Error: err.Error()}}
				continue
			}
			it := item{seq: seq, cursor: c, p: p, start: now}
			if p.TS > 0 {
				it.start = time.UnixMilli(p.TS)
			}
			ttl := a.cfg.TTL
			if p.TTLMS > 0 {
				ttl = time.Duration(p.TTLMS) * time.Millisecond
			}
			if ttl > 0 {
				it.deadline = it.start.Add(ttl)
			}
			if a.cfg.Coalesce <= 1 {
				work <- []item{it}
				continue
			}
			if len(group) == 0 {
				lingerEnd = now.Add(a.cfg.Linger)
			}
			group = append(group, it)
			if len(group) >= a.cfg.Coalesce {
				flush()
			}
		}
		a.c.readBytes.Add(after - before)
		a.c.readCursor.Store(after)
		a.tr.setReadEnd(after)
		if a.cfg.Linger <= 0 || (len(group) > 0 && !now.Before(lingerEnd)) {
			flush()
		}
	}
	return nil
}

// frameCursors derives each frame's cursor from the cursors around a batch: frames are laid out
// back to back, each with a fixed overhead (4 bytes for u16 frames, 8 for wide ones). It reports
// false when the batch does not fit that layout (another queue type), so the caller re-reads.
func frameCursors(dst []int64, before, after int64, frames [][]byte) ([]int64, bool) {
	var sum int64
	for _, f := range frames {
		sum += int64(len(f))
	}
	n := int64(len(frames))
	over := after - before - sum
	if n == 0 || over%n != 0 || (over/n != 4 && over/n != 8) {
		return dst, false
	}
	h, c := over/n, before
	for _, f := range frames {
		dst = append(dst, c)
		c += int64(len(f)) + h
	}
	return dst, true
}

// readOneByOne re-reads n frames from cursor before, one per call, to learn each frame's cursor.
func readOneByOne(in Source, before int64, n int) ([][]byte, []int64, error) {
	if _, err := in.Seek(before, io.SeekStart); err != nil {
		return nil, nil, fmt.Errorf("re-read prompts at cursor %d: %w", before, err)
	}
	frames := make([][]byte, 0, n)
	cursors := make([]int64, 0, n)
	var one [][]byte
	for range n {
		c := in.Cursor()
		var err error
		one, err = in.NextBatch(one[:0], shmio.BatchOptions{MaxFrames: 1})
		if err != nil {
			return nil, nil, fmt.Errorf("re-read prompts at cursor %d: %w", c, err)
		}
		if len(one) == 0 {
			break
		}
		frames = append(frames, one[0])
		cursors = append(cursors, c)
	}
	return frames, cursors, nil
}

// process sends one request (a prompt or a coalesced group) under the TTL, budget and retry
// policies and queues its outcome. A request cut off by shutdown gets no outcome.
func (a *Agent) process(soft, hard context.Context, g []item, results chan<- result) {
	now := time.Now()
	live := g[:0:0]
	for _, it := range g {
		if !it.deadline.IsZero() && now.After(it.deadline) {
			reason := fmt.Sprintf("age %v exceeds TTL %v", now.Sub(it.start).Round(time.Millisecond), it.deadline.Sub(it.start))
			results <- a.expired(it, 0, reason, nil)
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	req := a.request(live)
	var deadline time.Time
	for _, it := range live {
		if !it.deadline.IsZero() && (deadline.IsZero() || it.deadline.Before(deadline)) {
			deadline = it.deadline
		}
	}
	est := estimateTokens(req.System, req.Prompt)
	var lastErr error
	for attempt := 1; ; attempt++ {
		want := time.Now()
		at, ok := a.lim.reserve(want, est, deadline)
		if !ok {
			reason := fmt.Sprintf("no send slot in the rate budget before the TTL (next in %v)", at.Sub(want).Round(time.Millisecond))
			for _, it := range live {
				results <- a.expired(it, attempt-1, reason, lastErr)
			}
			return
		}
		if d := at.Sub(want); d > 0 {
			a.c.rlWaits.Add(1)
			a.c.rlWaitNS.Add(int64(d))
			if a.cfg.Observer != nil {
				a.cfg.Observer.ObserveRateLimitWait(d)
			}
			// Before the first attempt the prompt is not in flight yet: shutdown leaves it queued.
			var stop <-chan struct{}
			if attempt == 1 {
				stop = soft.Done()
			}
			if !sleep(d, hard.Done(), stop) {
				return
			}
		}
		a.c.requests.Add(1)
		a.c.inFlight.Add(1)
		actx, cancel := context.WithTimeout(hard, a.cfg.RequestTimeout)
		t0 := time.Now()
		resp, err := a.cfg.Client.SendPrompt(actx, req)
		lat := time.Since(t0)
		timedOut := err != nil && errors.Is(actx.Err(), context.DeadlineExceeded) && hard.Err() == nil
		cancel()
		a.c.inFlight.Add(-1)
		if err == nil {
			if a.cfg.Observer != nil {
				a.cfg.Observer.ObserveAttempt(lat, nil)
			}
			a.lim.adjust(resp.InputTokens - est)
			results <- a.answered(live, resp, attempt, lat)
			return
		}
		if hard.Err() != nil {
			return // shutdown cut the request off: no outcome, it is sent again after a restart
		}
		if timedOut {
			err = fmt.Errorf("%w after %v: %w", errAttemptTimeout, a.cfg.RequestTimeout, err)
		}
		if a.cfg.Observer != nil {
			a.cfg.Observer.ObserveAttempt(lat, err)
		}
		lastErr = err
		if !retryable(err) {
			results <- a.failed(live, attempt, err, lat)
			return
		}
		if attempt >= a.cfg.MaxAttempts {
			results <- a.failed(live, attempt, fmt.Errorf("giving up after %d attempts: %w", attempt, err), lat)
			return
		}
		var ra time.Duration
		var ae *APIError
		if errors.As(err, &ae) {
			ra = ae.RetryAfter
		}
		delay := a.backoff(attempt, ra)
		now := time.Now()
		if ra > 0 {
			a.lim.pauseUntil(now.Add(ra))
		}
		if !deadline.IsZero() && now.Add(delay).After(deadline) {
			for _, it := range live {
				results <- a.expired(it, attempt, fmt.Sprintf("TTL ends before the retry due in %v", delay.Round(time.Millisecond)), lastErr)
			}
			return
		}
		a.c.retries.Add(1)
		a.log.Debug("retrying", "cursor", live[0].cursor, "attempt", attempt, "delay", delay, "err", err)
		if !sleep(delay, hard.Done(), nil) {
			return
		}
	}
}

// backoff is the delay before attempt+1: exponential from BackoffBase with jitter in its upper
// half, capped at BackoffMax, and never shorter than the server's retry-after.
func (a *Agent) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := a.cfg.BackoffBase
	for i := 1; i < attempt && d < a.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.BackoffMax)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return max(d, retryAfter)
}

// sleep waits d; false if a stop channel closed first.
func sleep(d time.Duration, stop1, stop2 <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop1:
		return false
	case <-stop2:
		return false
	}
}

func (a *Agent) request(g []item) Request {
	r := Request{Model: a.cfg.Model, System: a.cfg.System, MaxTokens: a.cfg.MaxTokens}
	if len(g) == 1 {
		p := &g[0].p
		r.Prompt, r.UserID = p.Prompt, p.userID()
		if p.System != "" {
			r.System = p.System
		}
		if p.MaxTokens > 0 {
			r.MaxTokens = p.MaxTokens
		}
		return r
	}
	var b strings.Builder
	maxTok := 0
	sys := ""
	for i := range g {
		p := &g[i].p
		if i > 0 {
			b.WriteString(a.cfg.CoalesceSeparator)
		}
		b.WriteString(p.Prompt)
		maxTok = max(maxTok, p.MaxTokens)
		if sys == "" {
			sys = p.System
		}
		if r.UserID == "" {
			r.UserID = p.userID()
		}
	}
	r.Prompt = b.String()
	if sys != "" {
		r.System = sys
	}
	if maxTok > 0 {
		r.MaxTokens = maxTok
	}
	return r
}

// groupOutcome fills the identity fields of a record for g.
func groupOutcome(g []item, st Status) result {
	r := result{seqs: make([]uint64, len(g)), start: g[0].start, o: Outcome{ID: g[0].p.ID, Cursor: g[0].cursor, Status: st}}
	for i := range g {
		r.seqs[i] = g[i].seq
		if g[i].start.Before(r.start) {
			r.start = g[i].start
		}
	}
	if len(g) == 1 {
		r.o.Metadata = g[0].p.Metadata
		return r
	}
	r.o.IDs = make([]string, len(g))
	r.o.Cursors = make([]int64, len(g))
	for i := range g {
		r.o.IDs[i], r.o.Cursors[i] = g[i].p.ID, g[i].cursor
	}
	return r
}

func (a *Agent) answered(g []item, resp Response, attempts int, lat time.Duration) result {
	r := groupOutcome(g, StatusAnswered)
	r.o.Model, r.o.Text, r.o.StopReason = resp.Model, resp.Text, resp.StopReason
	if r.o.Model == "" {
		r.o.Model = a.cfg.Model
	}
	r.o.InputTokens, r.o.OutputTokens = resp.InputTokens, resp.OutputTokens
	r.o.Attempts, r.o.APIMS = attempts, ms(lat)
	return r
}

func (a *Agent) failed(g []item, attempts int, err error, lat time.Duration) result {
	r := groupOutcome(g, StatusFailed)
	r.o.Model, r.o.Attempts, r.o.APIMS, r.o.Error = a.cfg.Model, attempts, ms(lat), err.Error()
	var ae *APIError
	if errors.As(err, &ae) {
		r.o.HTTPStatus = ae.StatusCode
	}
	return r
}

// expired is the record of a prompt whose TTL ran out; cause is the last API error, if any.
func (a *Agent) expired(it item, attempts int, reason string, cause error) result {
	r := groupOutcome([]item{it}, StatusExpired)
	r.o.Model, r.o.Attempts, r.o.Error = a.cfg.Model, attempts, "expired: "+reason
	if cause != nil {
		r.o.Error += ": " + cause.Error()
		var ae *APIError
		if errors.As(cause, &ae) {
			r.o.HTTPStatus = ae.StatusCode
		}
	}
	return r
}

// writeLoop commits outcome records in batches and keeps the checkpoint up to date.
func (a *Agent) writeLoop(results <-chan result) error {
	tick := time.NewTicker(a.cfg.CheckpointInterval)
	defer tick.Stop()
	batch := make([]result, 0, 256)
	lastCP := time.Now()
	for {
		select {
		case r, ok := <-results:
			if !ok {
				return a.writeCheckpoint(true)
			}
			batch = append(batch[:0], r)
			closed := false
		drain:
			for len(batch) < cap(batch) {
				select {
				case r, ok := <-results:
					if !ok {
						closed = true
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
			if err := a.commit(batch); err != nil {
				return err
			}
			if closed {
				return a.writeCheckpoint(true)
			}
			if time.Since(lastCP) >= a.cfg.CheckpointInterval {
				a.writeCheckpoint(false)
				lastCP = time.Now()
			}
		case <-tick.C:
			if time.Since(lastCP) >= a.cfg.CheckpointInterval {
				a.writeCheckpoint(false)
				lastCP = time.Now()
			}
		}
	}
}

// commit appends a batch of records to the Output, publishes them with one Commit, and then
// marks their prompts done.
func (a *Agent) commit(batch []result) error {
	pos := int64(-1)
	if a.cfg.Outcomes != nil {
		pos = a.cfg.Outcomes.End()
	}
	now := time.Now()
	for i := range batch {
		r := &batch[i]
		r.o.TS = now.UnixMilli()
		r.o.E2EMS = ms(now.Sub(r.start))
		if err := a.appendRecord(&r.o); err != nil {
			return err
		}
	}
	if err := a.cfg.Output.Commit(); err != nil {
		return fmt.Errorf("commit outcomes: %w", err)
	}
	for i := range batch {
		r := &batch[i]
		a.tr.done(r.seqs, pos)
		n := uint64(len(r.seqs))
		switch r.o.Status {
		case StatusAnswered:
			a.c.answered.Add(n)
		case StatusFailed:
			a.c.failed.Add(n)
		case StatusExpired:
			a.c.expired.Add(n)
		case StatusRejected:
			a.c.rejected.Add(n)
		}
		a.c.inTok.Add(uint64(max(0, r.o.InputTokens)))
		a.c.outTok.Add(uint64(max(0, r.o.OutputTokens)))
		a.c.records.Add(1)
		if a.cfg.Observer != nil {
			a.cfg.Observer.ObserveOutcome(&r.o, len(r.seqs))
		}
	}
	return nil
}

// appendRecord encodes o into the Output, truncating the answer when the frame would be too big.
func (a *Agent) appendRecord(o *Outcome) error {
	rec := a.encode(o)
	limit := a.cfg.MaxRecordBytes
	for tries := 0; ; tries++ {
		if limit > 0 && len(rec) > limit && o.Text != "" && tries < 8 {
			over := len(rec) - limit
			cut := max(0, len(o.Text)-over-16)
			for cut > 0 && !utf8.RuneStart(o.Text[cut]) {
				cut--
			}
			o.Text, o.Truncated = o.Text[:cut], true
			rec = a.encode(o)
			continue
		}
		buf, err := a.cfg.Output.Allocate(len(rec))
		if err == nil {
			copy(buf, rec)
			return nil
		}
		if isFrameTooLarge(err) && tries < 8 {
			if limit == 0 || limit >= len(rec) {
				limit = min(len(rec)-1, 65531)
			}
			if o.Text == "" {
				o.Error = "outcome record too large for the response log"
				o.Metadata = nil
				o.IDs = nil
				rec = a.encode(o)
				limit = len(rec)
				if tries >= 6 {
					return fmt.Errorf("append outcome for cursor %d: %w", o.Cursor, err)
				}
			}
			continue
		}
		return fmt.Errorf("append outcome for cursor %d: %w", o.Cursor, err)
	}
}

func (a *Agent) encode(o *Outcome) []byte {
	a.encBuf.Reset()
	if err := a.enc.Encode(o); err != nil {
		// Only Metadata can fail (it came from a decoder); drop it rather than the record.
		o.Metadata = nil
		a.encBuf.Reset()
		_ = a.enc.Encode(o)
	}
	return bytes.TrimSuffix(a.encBuf.Bytes(), []byte{'\n'})
}

// writeCheckpoint writes the cursor file when the watermark moved (or always with force).
func (a *Agent) writeCheckpoint(force bool) error {
	if a.cfg.CheckpointPath == "" {
		a.c.checkpoint.Store(a.tr.watermark())
		return nil
	}
	outEnd := int64(-1)
	if a.cfg.Outcomes != nil {
		outEnd = a.cfg.Outcomes.End()
	}
	cur, out := a.tr.checkpoint(outEnd)
	if !force && a.cpValid && a.lastCP.Cursor == cur && a.lastCP.OutCursor == out {
		return nil
	}
	cp := Checkpoint{Cursor: cur, OutCursor: out, InputID: a.cfg.InputID, Updated: time.Now().UTC()}
	if err := WriteCheckpoint(a.cfg.CheckpointPath, cp); err != nil {
		a.c.cpErrors.Add(1)
		a.log.Error("checkpoint", "err", err)
		return err
	}
	a.lastCP, a.cpValid = cp, true
	a.c.checkpoint.Store(cur)
	return nil
}
