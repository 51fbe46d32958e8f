package agent

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the agent's counters and gauges. Prompt counters count prompts (a
// coalesced request counts each of its prompts).
type Stats struct {
	Read      uint64 // prompt frames read from the input
	Answered  uint64
	Failed    uint64
	Expired   uint64
	Rejected  uint64
	Refused   uint64 // answers the model declined (stop_reason "refusal")
	Recovered uint64 // frames skipped on start because a previous run already wrote their outcome
	Records   uint64 // outcome records committed
	Deltas    uint64 // streamed delta records committed

	Requests     uint64 // API attempts started
	Retries      uint64 // attempts scheduled after a transient failure
	InFlight     int64  // API requests outstanding
	Pending      int64  // prompts read whose outcome is not committed yet
	InputTokens  uint64
	OutputTokens uint64
	// CacheWriteTokens and CacheReadTokens are prompt-cache writes and hits.
	CacheWriteTokens uint64
	CacheReadTokens  uint64
	CostUSD          float64 // estimated from the price table

	RateLimitWaits    uint64        // sends delayed by the client-side budget or a retry-after pause
	RateLimitWaitTime time.Duration // total delay

	ReadCursor int64 // input cursor after the last frame read
	Watermark  int64 // every prompt before it has a committed outcome
	Checkpoint int64 // cursor in the checkpoint file (-1 before the first write)
	InputEnd   int64 // cursor of the input's committed end, as last seen
	// LagBytes and LagFrames measure the input from Watermark to its committed end; UnreadBytes
	// from ReadCursor. With Config.Lag they are exact; otherwise bytes are cursor differences
	// and LagFrames counts the frames read past the watermark plus an estimate of the unread ones
	// from the mean frame size so far (a log does not count its frames).
	LagBytes    int64
	UnreadBytes int64
	LagFrames   int64

	CheckpointErrors uint64

	// Fatal is the reason the agent stopped dispatching ("" while healthy), see [FatalError].
	Fatal string
	// BackoffLevel counts the failed probes of the shared back-off (0 = not backed off);
	// BackoffUntil is when the next probe may go.
	BackoffLevel int
	BackoffUntil time.Time
	// BatchesInFlight counts message batches submitted and not yet fully delivered.
	BatchesInFlight int
}

// Observer receives events for histograms and logs. Methods are called from the agent's
// goroutines concurrently and must be quick.
type Observer interface {
	// ObserveAttempt follows every API attempt: its latency and its error (nil on success).
	ObserveAttempt(latency time.Duration, err error)
	// ObserveOutcome follows every committed outcome record (prompts is how many prompts it covers).
	ObserveOutcome(o *Outcome, prompts int)
	// ObserveRateLimitWait follows every send delayed by the client-side budget.
	ObserveRateLimitWait(d time.Duration)
}

type counters struct {
	read, answered, failed, expired, rejected, recovered, records atomic.Uint64
	requests, retries, inTok, outTok, rlWaits, cpErrors           atomic.Uint64
	refused, cacheWrite, cacheRead, deltas                        atomic.Uint64
	costMicro, batches                                            atomic.Int64
	rlWaitNS                                                      atomic.Int64
	inFlight                                                      atomic.Int64
	readCursor, committed, checkpoint, readBytes                  atomic.Int64
}

// Stats returns a snapshot; safe to call from any goroutine at any time.
func (a *Agent) Stats() Stats {
	c := &a.c
	s := Stats{
		Read: c.read.Load(), Answered: c.answered.Load(), Failed: c.failed.Load(),
		Expired: c.expired.Load(), Rejected: c.rejected.Load(), Recovered: c.recovered.Load(),
		Records: c.records.Load(), Requests: c.requests.Load(), Retries: c.retries.Load(),
		InFlight: c.inFlight.Load(), InputTokens: c.inTok.Load(), OutputTokens: c.outTok.Load(),
		RateLimitWaits: c.rlWaits.Load(), RateLimitWaitTime: time.Duration(c.rlWaitNS.Load()),
		ReadCursor: c.readCursor.Load(), InputEnd: c.committed.Load(), Checkpoint: c.checkpoint.Load(),
		CheckpointErrors: c.cpErrors.Load(), BatchesInFlight: int(c.batches.Load()), Refused: c.refused.Load(), CacheWriteTokens: c.cacheWrite.Load(),
		CacheReadTokens: c.cacheRead.Load(), Deltas: c.deltas.Load(), CostUSD: float64(c.costMicro.Load()) / 1e6,
	}
	if fe := a.fatalError(); fe != nil {
		s.Fatal = fe.Reason
	}
	if !a.started.Load() {
		return s
	}
	s.BackoffLevel, s.BackoffUntil = a.gate.state()

	s.Pending = a.tr.pending()
	s.Watermark = a.tr.watermark()
	if a.cfg.Lag != nil {
		f, b, err := a.cfg.Lag(s.Watermark)
		_, ub, err2 := a.cfg.Lag(s.ReadCursor)
		if err == nil && err2 == nil {
			s.LagFrames, s.LagBytes, s.UnreadBytes = f, b, ub
			return s
		}
	}
	s.LagBytes = max(0, s.InputEnd-s.Watermark)
	s.UnreadBytes = max(0, s.InputEnd-s.ReadCursor)
	s.LagFrames = a.tr.window()
	if n := s.Read + s.Recovered; n > 0 && s.UnreadBytes > 0 {
		mean := max(1, c.readBytes.Load()/int64(n))
		s.LagFrames += (s.UnreadBytes + mean - 1) / mean
	}
	return s
}
