package replicate

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

// PullConfig configures a Puller.
type PullConfig struct {
	Conn    *nats.Conn // required
	Stream  string     // required; the puller waits for it to exist
	Durable string     // durable consumer name; required, one per destination log
	// Tag is the stream sequence of the last message the local log holds: its commit tag
	// (shmio.Log.CommitTag), 0 when nothing was pulled yet. The puller resumes after it.
	Tag uint64
	// FilterSubject limits the consumer to one subject of the stream; "" takes every message.
	FilterSubject string
	// Batch is the most messages appended per tagged commit; default 64.
	Batch int
	// AckWait is the consumer's redelivery timeout; default 10s.
	AckWait time.Duration
	// IdleCheck is how long without a message before the puller asks the server whether it is
	// missing deliveries; two such checks in a row restart the consumer. Default 2s.
	IdleCheck time.Duration
	// Once stops Run (returning nil) when the consumer has nothing pending, instead of waiting;
	// a missing stream is then an error instead of something to wait for.
	Once bool
	// Logf receives progress and retry messages; nil discards them.
	Logf func(format string, args ...any)
}

// PullStats is a snapshot of a puller's progress; safe to call from any goroutine.
type PullStats struct {
	Tag     uint64 // stream sequence of the last message in the local log
	Msgs    int64  // messages (runs of frames) appended this run
	Frames  int64  // frames appended this run
	Bytes   int64  // payload bytes appended this run
	Skipped int64  // deliveries at or below the tag (already in the log), dropped
	Resets  int64  // times the consumer was (re)created at tag+1
	Pending uint64 // messages the server had not delivered yet, as of the last one received
}

// Puller appends a stream's messages to a local log, exactly once. Use Run once.
type Puller struct {
	w   shmio.FrameWriter
	cfg PullConfig
	js  jetstream.JetStream
	log logf

	prevEnd int64 // source cursor after the last run in the log; -1 unknown

	tag                                  atomic.Uint64
	msgs, frames, bytes, skipped, resets atomic.Int64
	pending                              atomic.Uint64
	streamMissingLogged, pendingKnown    bool
}

// errGap restarts the consumer: a delivery went missing, so committing past it would lose it.
var errGap = errors.New("replicate: missing delivery, restarting the consumer")

// NewPuller checks the configuration; nothing is contacted until Run.
func NewPuller(w shmio.FrameWriter, cfg PullConfig) (*Puller, error) {
	if w == nil || cfg.Conn == nil {
		return nil, errors.New("replicate: pull needs a sink and a NATS connection")
	}
	if err := CheckStreamName(cfg.Stream); err != nil {
		return nil, err
	}
	if cfg.Durable == "" {
		return nil, errors.New("replicate: pull needs a durable consumer name")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 10 * time.Second
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = 2 * time.Second
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("replicate: %w", err)
	}
	p := &Puller{w: w, cfg: cfg, js: js, log: logf(cfg.Logf), prevEnd: -1}
	p.tag.Store(cfg.Tag)
	return p, nil
}

// Stats returns the puller's progress so far.
func (p *Puller) Stats() PullStats {
	return PullStats{
		Tag: p.tag.Load(), Msgs: p.msgs.Load(), Frames: p.frames.Load(), Bytes: p.bytes.Load(), Skipped: p.skipped.Load(),
		Resets: p.resets.Load(), Pending: p.pending.Load(),
	}
}

// Run appends messages until ctx is done (then it returns nil), until caught up when Once is
// set, or until an error retrying cannot fix (the local log is full, a commit fails).
func (p *Puller) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		before := p.tag.Load()
		err := p.session(ctx)
		if err == nil || ctx.Err() != nil {
			if p.cfg.Once {
				_ = p.cfg.Conn.Flush() // the last ack
			}
			return nil
		}
		var fe *fatalError
		if errors.As(err, &fe) {
			return err
		}
		if p.cfg.Once && errors.Is(err, jetstream.ErrStreamNotFound) {
			return &permanentError{err}
		}
		if p.tag.Load() != before || errors.Is(err, errGap) {
			backoff = 100 * time.Millisecond
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) || !p.streamMissingLogged {
			p.log.printf("pull: %v; retrying in %v", err, backoff)
			p.streamMissingLogged = errors.Is(err, jetstream.ErrStreamNotFound)
		}
		if !sleepCtx(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// openConsumer returns the durable consumer positioned right after the tag and the consumer
// sequence its next delivery will carry. A durable left clean by a previous run (everything it
// delivered acknowledged, up to the tag) is reused; anything else is recreated at tag+1, since
// deliveries the previous run never committed would otherwise come back late and out of order.
func (p *Puller) openConsumer(ctx context.Context, s jetstream.Stream) (jetstream.Consumer, uint64, error) {
	tag := p.tag.Load()
	c, err := s.Consumer(ctx, p.cfg.Durable)
	if err == nil {
		ci := c.CachedInfo()
		if ci.Config.AckPolicy == jetstream.AckAllPolicy && ci.Config.FilterSubject == p.cfg.FilterSubject &&
			ci.Delivered.Stream == tag && ci.AckFloor.Stream == tag && ci.NumAckPending == 0 {
			return c, ci.Delivered.Consumer + 1, nil
		}
		if err := s.DeleteConsumer(ctx, p.cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, 0, fmt.Errorf("replicate: delete consumer %s: %w", p.cfg.Durable, err)
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, 0, fmt.Errorf("replicate: look up consumer %s: %w", p.cfg.Durable, err)
	}
	p.resets.Add(1)
	c, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       p.cfg.Durable,
		Description:   "shmio replicate pull",
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   tag + 1,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       p.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 16 * p.cfg.Batch,
		FilterSubject: p.cfg.FilterSubject,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("replicate: create consumer %s at sequence %d: %w", p.cfg.Durable, tag+1, err)
	}
	return c, 1, nil
}

// session runs one consumer until an error (restart), ctx done or, with Once, caught up (nil).
func (p *Puller) session(ctx context.Context) error {
	s, err := p.js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return fmt.Errorf("replicate: stream %s: %w", p.cfg.Stream, err)
	}
	p.streamMissingLogged = false
	state := s.CachedInfo().State
	tag := p.tag.Load()
	if tag > 0 && state.LastSeq < tag {
		return fatalf("replicate: stream %s ends at sequence %d but the local log already holds up to %d: "+
			"the stream was recreated; pull into a new log", p.cfg.Stream, state.LastSeq, tag)
	}
	if state.Msgs > 0 && state.FirstSeq > tag+1 {
		if tag > 0 {
			return fatalf("replicate: stream %s starts at sequence %d but the local log holds up to %d: "+
				"messages %d to %d were removed (stream limits) before they were pulled", p.cfg.Stream, state.FirstSeq, tag, tag+1, state.FirstSeq-1)
		}
		p.log.printf("pull: stream %s starts at sequence %d (earlier messages were removed); the copy starts there", p.cfg.Stream, state.FirstSeq)
	}
	if tag > 0 && p.prevEnd < 0 {
		// Where the log's last run ended, to check that the next one follows it.
		if raw, err := s.GetMsg(ctx, tag); err == nil {
			if rh, err := parseRunHeader(raw.Header, raw.Header.Get(jetstream.MsgIDHeader)); err == nil {
				p.prevEnd = rh.end
			}
		}
	}
	c, nextCons, err := p.openConsumer(ctx, s)
	if err != nil {
		return err
	}
	ch := make(chan jetstream.Msg, 2*p.cfg.Batch)
	errCh := make(chan error, 8)
	stop := make(chan struct{})
	cc, err := c.Consume(func(m jetstream.Msg) {
		select {
		case ch <- m:
		case <-stop:
		}
	}, jetstream.PullMaxMessages(2*p.cfg.Batch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		select {
		case errCh <- err:
		default:
		}
	}))
	if err != nil {
		return fmt.Errorf("replicate: consume %s: %w", p.cfg.Durable, err)
	}
	defer func() {
		close(stop)
		cc.Stop()
	}()

	if p.cfg.Once {
		if ci, err := c.Info(ctx); err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 {
			return nil
		}
	}
	batch := make([]jetstream.Msg, 0, p.cfg.Batch)
	idle := time.NewTimer(p.cfg.IdleCheck)
	defer idle.Stop()
	stalls := 0
	for {
		batch = batch[:0]
		select {
		case m := <-ch:
			batch = append(batch, m)
		case err := <-errCh:
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
				errors.Is(err, jetstream.ErrConnectionClosed) {
				return fmt.Errorf("replicate: consumer %s: %w", p.cfg.Durable, err)
			}
			p.log.printf("pull: consumer %s: %v", p.cfg.Durable, err)
			continue
		case <-idle.C:
			// Nothing arrived for a while. Deliveries the server made that never reached us (a
			// lost connection, a leader change) would only come back after AckWait, and out of
			// order: after two quiet checks in a row, restart the consumer at tag+1 instead.
			idle.Reset(p.cfg.IdleCheck)
			ci, err := c.Info(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				p.log.printf("pull: consumer %s info: %v", p.cfg.Durable, err)
				continue
			}
			p.pending.Store(ci.NumPending)
			if ci.Delivered.Consumer+1 < nextCons {
				// The server lost deliveries it had made (a server killed before it saved its
				// consumer state): start again after the tag.
				return fmt.Errorf("%w (the consumer's delivered count went back from %d to %d)",
					errGap, nextCons-1, ci.Delivered.Consumer)
			}
			if ci.Delivered.Consumer < nextCons && ci.NumPending == 0 {
				stalls = 0
				if p.cfg.Once {
					return nil
				}
				continue
			}
			if stalls++; stalls >= 2 {
				return fmt.Errorf("%w (nothing received for %v; %d delivered but not received, %d undelivered)",
					errGap, 2*p.cfg.IdleCheck, ci.Delivered.Consumer-(nextCons-1), ci.NumPending)
			}
			continue
		case <-ctx.Done():
			return nil
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case m := <-ch:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		var err error
		nextCons, err = p.apply(batch, nextCons)
		if err != nil {
			return err
		}
		if p.cfg.Once && p.pendingKnown && p.pending.Load() == 0 {
			return nil
		}
		stalls = 0
		idle.Reset(p.cfg.IdleCheck)
	}
}

// apply appends the runs of the new messages of batch, commits them tagged with the last stream
// sequence and then acknowledges. It returns the consumer sequence expected next.
func (p *Puller) apply(batch []jetstream.Msg, nextCons uint64) (uint64, error) {
	tag := p.tag.Load()
	last := tag
	prevEnd := p.prevEnd
	var msgs, appended, nbytes int64
	var lastMsg jetstream.Msg
	var fail error
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			fail = fmt.Errorf("replicate: message metadata: %w", err)
			break
		}
		if md.Sequence.Consumer != nextCons {
			fail = fmt.Errorf("%w (consumer sequence %d, expected %d)", errGap, md.Sequence.Consumer, nextCons)
			break
		}
		nextCons++
		lastMsg = m
		p.pending.Store(md.NumPending)
		p.pendingKnown = true
		if md.Sequence.Stream <= last {
			p.skipped.Add(1)
			continue
		}
		n, size, end, err := p.appendRun(m, md.Sequence.Stream, prevEnd)
		if err != nil {
			// Frames of this batch were allocated but are not committed: nothing is lost.
			return nextCons, err
		}
		prevEnd = end
		last = md.Sequence.Stream
		msgs++
		appended += n
		nbytes += size
	}
	if msgs > 0 {
		if err := p.w.CommitTagged(last); err != nil {
			return nextCons, fatalf("replicate: commit through stream sequence %d: %w", last, err)
		}
		p.tag.Store(last)
		p.prevEnd = prevEnd
		p.msgs.Add(msgs)
		p.frames.Add(appended)
		p.bytes.Add(nbytes)
	}
	if lastMsg != nil {
		// AckAll: one ack covers every delivery up to it, all of which are now committed.
		if err := lastMsg.Ack(); err != nil && fail == nil {
			p.log.printf("pull: ack: %v", err)
		}
	}
	return nextCons, fail
}

// appendRun allocates and fills the frames of message m (stream sequence seq), checking first
// that the whole run decodes and follows the previous one (ending at prevEnd, -1 unknown). It
// returns the frames, their bytes and the run's end cursor (-1 unknown).
func (p *Puller) appendRun(m jetstream.Msg, seq uint64, prevEnd int64) (n, size, end int64, err error) {
	h := m.Headers()
	rh, err := parseRunHeader(h, h.Get(jetstream.MsgIDHeader))
	if err != nil {
		return 0, 0, 0, fatalf("replicate: stream %s message %d: %w", p.cfg.Stream, seq, err)
	}
	data := m.Data()
	if rh.legacy {
		if len(data) == 0 {
			return 0, 0, 0, fatalf("replicate: stream %s message %d is empty; a log frame cannot be", p.cfg.Stream, seq)
		}
		buf, err := p.w.Allocate(len(data))
		if err != nil {
			return 0, 0, 0, fatalf("replicate: append stream message %d (%d bytes): %w", seq, len(data), err)
		}
		copy(buf, data)
		return 1, int64(len(data)), -1, nil
	}
	if prevEnd >= 0 && rh.first != prevEnd {
		return 0, 0, 0, fatalf("replicate: stream %s message %d starts at source cursor %d but the previous run ended at %d: "+
			"the stream is not a contiguous copy of one log", p.cfg.Stream, seq, rh.first, prevEnd)
	}
	for rest := data; ; {
		f, r, ok, err := nextFrame(rest)
		if err != nil {
			return 0, 0, 0, fatalf("replicate: stream %s message %d: %w", p.cfg.Stream, seq, err)
		}
		if !ok {
			break
		}
		rest = r
		n++
		size += int64(len(f))
	}
	if n == 0 {
		return 0, 0, 0, fatalf("replicate: stream %s message %d: %w: no frames", p.cfg.Stream, seq, ErrEncoding)
	}
	for rest := data; len(rest) > 0; {
		f, r, _, _ := nextFrame(rest)
		rest = r
		buf, err := p.w.Allocate(len(f))
		if err != nil {
			return 0, 0, 0, fatalf("replicate: append stream message %d (a %d-byte frame): %w", seq, len(f), err)
		}
		copy(buf, f)
	}
	return n, size, rh.end, nil
}
