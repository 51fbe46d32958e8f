package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio"
)

// The concrete log types plug in directly.
var (
	_ Source = shmio.FrameIterator(nil)
	_ Sink   = shmio.FrameWriter(nil)
)

func isFrameTooLarge(err error) bool { return errors.Is(err, shmio.ErrFrameTooLarge) }

// Source is the prompt input: the subset of [shmio.FrameIterator] the agent uses, so
// *shmio.Iterator, *shmio.QueueIterator and any other FrameIterator plug in. Every prompt's
// cursor is the Frame's own (Frame.Cursor); nothing is derived from frame lengths.
type Source interface {
	NextFrames(dst []shmio.Frame, o shmio.BatchOptions) ([]shmio.Frame, error)
	// Wait blocks until a frame past the cursor is committed, or ctx is done.
	Wait(ctx context.Context) error
	// Cursor is the position of the next frame NextFrames returns.
	Cursor() int64
	Seek(offset int64, whence int) (int64, error)
	// End is the cursor of the committed end (for lag metrics).
	End() int64
}

// Sink is the outcome output: the subset of [shmio.FrameWriter] the agent uses.
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

	RequestsPerMinute int // client-side request budget, evenly spaced; 0 = unlimited
	// RequestBurst is how many requests may go back to back within the RPM budget (default 1:
	// evenly spaced, so no sliding second at the server exceeds RPM/60).
	RequestBurst         int
	InputTokensPerMinute int // client-side input-token budget; 0 = unlimited

	// MaxAttempts caps the attempts of a prompt through transient failures (overload, rate
	// limits, server and connection errors), first included; 0 = no cap: such a prompt fails
	// only when its TTL runs out.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the shared back-off after transient failures when the
	// server does not say how long to wait: BackoffBase doubled per failed probe, capped at
	// BackoffMax, jittered in its upper half. Defaults 500ms and 30s.
	BackoffBase    time.Duration
	BackoffMax     time.Duration
	RequestTimeout time.Duration // per attempt; default 5m

	// PauseOnFatal keeps Run waiting for its context after a fatal API error (bad key,
	// permission, unknown model, refused configuration) instead of returning at once; either
	// way nothing further is dispatched and Run returns the *FatalError.
	PauseOnFatal bool

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

	// Stream sends requests with streaming (the Client must be a StreamClient): each text delta
	// is appended to the Output as a small Delta record as it arrives, then the outcome, which
	// carries the time to first token.
	Stream bool
	// CacheSystem marks the configured system prompt for prompt caching (cache_control), so
	// prompts sharing it read it from the cache; outcomes and Stats show the cache tokens.
	CacheSystem bool

	// Batch sends prompts through the Message Batches API (the Client must be a BatchClient):
	// up to BatchSize prompts (default 1000), gathered for at most BatchAge (default 1m), go in
	// one batch, polled every BatchPoll (default 15s). It needs CheckpointPath: the batches in
	// flight are kept beside it (BatchStatePath) so a restart resumes them.
	Batch     bool
	BatchSize int
	BatchAge  time.Duration
	BatchPoll time.Duration

	// Prices is the price table for outcomes' cost_usd; nil means DefaultPrices.
	Prices map[string]Price

	Observer Observer
	Logger   *slog.Logger
}

// Agent dispatches prompts from Config.Input and writes outcomes to Config.Output.
type Agent struct {
	cfg     Config
	gate    *gate
	fatalCh chan struct{} // closed by setFatal
	fatalMu sync.Mutex
	fatal   *FatalError
	log     *slog.Logger
	lim     *limiter
	tr      *tracker
	bt      *batcher // Config.Batch
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
	if _, ok := cfg.Client.(StreamClient); cfg.Stream && !ok {
		return nil, fmt.Errorf("agent: Config.Stream needs a StreamClient, not %T", cfg.Client)
	}
	if cfg.Batch {
		if _, ok := cfg.Client.(BatchClient); !ok {
			return nil, fmt.Errorf("agent: Config.Batch needs a BatchClient, not %T", cfg.Client)
		}
		switch {
		case cfg.CheckpointPath == "":
			return nil, errors.New("agent: Config.Batch needs a CheckpointPath (the batches in flight are kept beside it)")
		case cfg.Stream || cfg.Coalesce > 1:
			return nil, errors.New("agent: Config.Batch does not go with Stream or Coalesce")
		}
	}
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"MaxInFlight", int64(cfg.MaxInFlight)}, {"ReadMaxFrames", int64(cfg.ReadMaxFrames)},
		{"ReadMaxBytes", int64(cfg.ReadMaxBytes)}, {"MaxPending", int64(cfg.MaxPending)},
		{"TTL", int64(cfg.TTL)}, {"RequestsPerMinute", int64(cfg.RequestsPerMinute)},
		{"InputTokensPerMinute", int64(cfg.InputTokensPerMinute)}, {"RequestBurst", int64(cfg.RequestBurst)}, {"MaxAttempts", int64(cfg.MaxAttempts)},
		{"BackoffBase", int64(cfg.BackoffBase)}, {"BackoffMax", int64(cfg.BackoffMax)},
		{"RequestTimeout", int64(cfg.RequestTimeout)}, {"Coalesce", int64(cfg.Coalesce)},
		{"Linger", int64(cfg.Linger)}, {"DrainTimeout", int64(cfg.DrainTimeout)},
		{"MaxTokens", int64(cfg.MaxTokens)}, {"CheckpointInterval", int64(cfg.CheckpointInterval)},
		{"MaxRecordBytes", int64(cfg.MaxRecordBytes)}, {"BatchSize", int64(cfg.BatchSize)},
		{"BatchAge", int64(cfg.BatchAge)}, {"BatchPoll", int64(cfg.BatchPoll)},
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
	if cfg.Prices == nil {
		cfg.Prices = DefaultPrices
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	def(&cfg.MaxTokens, 1024)
	def(&cfg.MaxInFlight, 8)
	def(&cfg.ReadMaxFrames, 64)
	def(&cfg.Coalesce, 1)
	def(&cfg.BatchSize, 1000)
	defD(&cfg.BatchAge, time.Minute)
	defD(&cfg.BatchPoll, 15*time.Second)
	if cfg.Batch {
		def(&cfg.MaxPending, 2*cfg.BatchSize+cfg.ReadMaxFrames)
	}
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
	a.fatalCh = make(chan struct{})
	a.gate = newGate(cfg.BackoffBase, cfg.BackoffMax)
	return a, nil
}

// ErrFatal marks the error Run returns when the API refused the agent's own configuration.
var ErrFatal = errors.New("fatal API error")

// FatalError is why the agent stopped dispatching: an API error that every further request would
// get too (401, 403, billing, unknown model, a refused configured parameter). It matches ErrFatal
// and the underlying *APIError with errors.Is/As.
type FatalError struct {
	Reason string // authentication_error, permission_error, billing_error, model_not_found, invalid_config, ...
	Err    error
}

func (e *FatalError) Error() string {
	return "agent stopped on a fatal API error (" + e.Reason + "): " + e.Err.Error()
}

func (e *FatalError) Unwrap() []error { return []error{ErrFatal, e.Err} }

// setFatal records the first fatal error and stops dispatching.
func (a *Agent) setFatal(reason string, err error) {
	a.fatalMu.Lock()
	defer a.fatalMu.Unlock()
	if a.fatal != nil {
		return
	}
	a.fatal = &FatalError{Reason: reason, Err: err}
	close(a.fatalCh)
	a.log.Error("fatal API error: dispatching stopped, the checkpoint stays before the first unanswered prompt",
		"reason", reason, "err", err)
}

func (a *Agent) fatalError() *FatalError {
	a.fatalMu.Lock()
	defer a.fatalMu.Unlock()
	return a.fatal
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
	// delta, when set, is a streamed text delta to write instead of an outcome.
	delta *Delta
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
	a.lim = newLimiter(a.cfg.RequestsPerMinute, a.cfg.InputTokensPerMinute, a.cfg.RequestBurst, time.Now())
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
	// A fatal API error stops reading and dispatching at once; in-flight answers still land.
	go func() {
		select {
		case <-a.fatalCh:
			softCancel()
		case <-hard.Done():
		}
	}()

	work := make(chan []item, a.cfg.MaxPending)
	results := make(chan result, a.cfg.MaxPending)

	writerDone := make(chan error, 1)
	go func() { writerDone <- a.writeLoop(results) }()

	var workers sync.WaitGroup
	if a.bt != nil {
		a.bt.wg = &workers
		workers.Go(func() { a.bt.run(soft, hard, work, results) })
	}
	for range a.cfg.MaxInFlight * boolInt(a.bt == nil) {
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
	if a.bt != nil && a.cfg.CheckpointPath != "" {
		if err := a.bt.prune(a.c.checkpoint.Load()); err != nil {
			return err
		}
	}
	if fatal != nil {
		return fatal
	}
	if fe := a.fatalError(); fe != nil {
		if a.cfg.PauseOnFatal {
			a.log.Error("paused after a fatal API error: fix the configuration and restart", "reason", fe.Reason)
			<-ctx.Done()
		}
		return fe
	}
	a.log.Info("agent stopped", "checkpoint", a.c.checkpoint.Load())
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
