package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

// PushConfig configures a Pusher.
type PushConfig struct {
	Conn   *nats.Conn    // required
	Stream StreamOptions // Name required; the stream is created when missing
	// LogID identifies the source log in message ids; required, non-zero (shmio's Header().ID).
	LogID uint64
	// CursorFile persists the acknowledged cursor; "" keeps it in memory only (the stream's last
	// message still tells a restarted pusher where to resume). A lock file beside it
	// (CursorFile+".lock") keeps a second pusher of the same cursor file out.
	CursorFile string
	// RunFrames and RunBytes bound one message's run of frames (RunBytes counts the encoded
	// payload, and is capped below the server's max_payload); defaults 8192 and 256 KiB.
	RunFrames, RunBytes int
	// Linger is how long a run that is not full may wait for more frames while earlier messages
	// are unacknowledged; with nothing in flight a run goes out at once. Default 1ms.
	Linger time.Duration
	// Window is the most messages awaiting their ack; default 32.
	Window int
	// AckTimeout bounds the wait for one ack before the pusher resynchronises; default 5s.
	AckTimeout time.Duration
	// PersistEvery is how often the cursor file is rewritten while frames keep flowing; it is
	// always rewritten before waiting for new frames and on exit. Default 100ms.
	PersistEvery time.Duration
	// Once stops Run (returning nil) when every committed frame is acknowledged, instead of
	// waiting; errors retrying cannot fix (a full stream, say) are returned rather than retried.
	Once bool
	// Logf receives progress and retry messages; nil discards them.
	Logf func(format string, args ...any)
}

// PushStats is a snapshot of a pusher's progress; safe to call from any goroutine.
type PushStats struct {
	Cursor     int64  // source cursor of the first frame not yet acknowledged
	Seq        uint64 // stream sequence of the last acknowledged message
	Published  int64  // messages published this run (retries included)
	Acked      int64  // messages acknowledged this run
	Frames     int64  // frames this run stored in the stream (acknowledged, or found there on a resync)
	Bytes      int64  // their payload bytes
	Duplicates int64  // acknowledgements the server flagged as duplicates
	Resyncs    int64  // times the pusher re-read the stream's end after an error or on start
}

// Pusher publishes a source log's frames to a JetStream stream, a run of frames per message.
// Use Run once.
type Pusher struct {
	src    shmio.FrameIterator
	cfg    PushConfig
	js     jetstream.JetStream
	stream jetstream.Stream
	log    logf

	expect    uint64 // stream sequence the next publish expects to follow (Nats-Expected-Last-Sequence)
	next      int64  // cursor the next run starts at: the end of the last one published
	persisted int64  // cursor last written (or being written) to the cursor file
	lastSave  time.Time
	saveMu    sync.Mutex // held while the cursor file is written, by a background save too
	saveErr   atomic.Pointer[error]

	run   runBuf
	q     []inflight // FIFO of unacknowledged messages, head at q[0]
	lost  []inflight // messages whose publish failed; a resync may find them stored
	free  [][]byte   // payload buffers of acknowledged messages, for reuse
	batch []shmio.Frame

	cursor, published, acked, frames, nbytes, dups, resyncs atomic.Int64
	seq                                                     atomic.Uint64
}

// runBuf is the run being assembled.
type runBuf struct {
	buf        []byte
	first, end int64
	n, payload int
	started    time.Time
}

type inflight struct {
	fut        jetstream.PubAckFuture
	buf        []byte
	first, end int64
	n, payload int
}

// fatalError marks errors retrying cannot fix (the source log, a foreign stream, oversized frames).
type fatalError = permanentError

func fatalf(format string, args ...any) error { return &fatalError{fmt.Errorf(format, args...)} }

// NewPusher checks the configuration; nothing is contacted until Run.
func NewPusher(src shmio.FrameIterator, cfg PushConfig) (*Pusher, error) {
	if src == nil || cfg.Conn == nil {
		return nil, errors.New("replicate: push needs a source and a NATS connection")
	}
	if err := CheckStreamName(cfg.Stream.Name); err != nil {
		return nil, err
	}
	if cfg.LogID == 0 {
		return nil, errors.New("replicate: push needs a non-zero log identity")
	}
	if cfg.Stream.Subject == "" {
		cfg.Stream.Subject = DefaultSubject(cfg.Stream.Name)
	}
	if cfg.RunFrames <= 0 {
		cfg.RunFrames = 8192
	}
	if cfg.RunBytes <= 0 {
		cfg.RunBytes = 256 << 10
	}
	if cfg.Linger <= 0 {
		cfg.Linger = time.Millisecond
	}
	if cfg.Window <= 0 {
		cfg.Window = 32
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.PersistEvery <= 0 {
		cfg.PersistEvery = 100 * time.Millisecond
	}
	// A batch of frames may end a run and start another: two messages more than the window.
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(cfg.Window+2))
	if err != nil {
		return nil, fmt.Errorf("replicate: %w", err)
	}
	p := &Pusher{src: src, cfg: cfg, js: js, log: logf(cfg.Logf), persisted: -1}
	return p, nil
}

// Stats returns the pusher's progress so far.
func (p *Pusher) Stats() PushStats {
	return PushStats{
		Cursor: p.cursor.Load(), Seq: p.seq.Load(), Published: p.published.Load(), Acked: p.acked.Load(),
		Frames: p.frames.Load(), Bytes: p.nbytes.Load(), Duplicates: p.dups.Load(), Resyncs: p.resyncs.Load(),
	}
}

// Run publishes until ctx is done (then it returns nil), until caught up when Once is set, or
// until an error retrying cannot fix (errors.Is(err, ErrPermanent)). Lost connections, timeouts
// and rejected publishes are retried: the pusher drains its window, re-reads where the stream
// ends and carries on from there.
func (p *Pusher) Run(ctx context.Context) error {
	if p.cfg.CursorFile != "" {
		unlock, err := lockFile(p.cfg.CursorFile + ".lock")
		if err != nil {
			return &permanentError{err}
		}
		defer unlock()
	}
	if err := p.loadCursorFile(); err != nil {
		return err
	}
	backoff := 100 * time.Millisecond
	for {
		err := p.connect(ctx)
		if err == nil {
			err = p.resync(ctx)
		}
		if err == nil {
			before := p.cursor.Load()
			err = p.pump(ctx)
			if p.cursor.Load() != before {
				backoff = 100 * time.Millisecond
			}
		}
		if perr := p.persist(true); perr != nil && err == nil {
			err = perr
		}
		if err == nil || ctx.Err() != nil {
			return nil
		}
		var fe *fatalError
		if errors.As(err, &fe) {
			return err
		}
		if p.cfg.Once && isStreamFull(err) {
			return &permanentError{fmt.Errorf("replicate: stream %s is full: %w", p.cfg.Stream.Name, err)}
		}
		if errors.Is(err, nats.ErrReconnectBufExceeded) {
			err = errors.New("not connected; waiting for the server") // nothing is buffered while reconnecting
		}
		p.log.printf("push: %v; resynchronising in %v", err, backoff)
		if !sleepCtx(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (p *Pusher) connect(ctx context.Context) error {
	if p.stream != nil {
		return nil
	}
	s, err := EnsureStream(ctx, p.js, p.cfg.Stream)
	if err != nil {
		return err
	}
	p.stream = s
	return nil
}

// resync finds where the stream ends and moves the source there. The stream is the truth: every
// frame up to its last message is stored, whatever the cursor file says.
func (p *Pusher) resync(ctx context.Context) error {
	p.resyncs.Add(1)
	info, err := p.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("replicate: stream info: %w", err)
	}
	acked := p.cursor.Load()
	resume := acked
	if info.State.LastSeq == 0 {
		if acked > 0 {
			return fatalf("replicate: stream %s is empty but cursor %d of log %016x was acknowledged: "+
				"the stream was deleted or recreated; remove the cursor file to push the log again",
				p.cfg.Stream.Name, acked, p.cfg.LogID)
		}
	} else {
		raw, err := p.stream.GetMsg(ctx, info.State.LastSeq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// The last message was removed (limits, age): runs after the acknowledged cursor
			// that the stream still holds come back as duplicates, and resynchronise again.
			p.log.printf("push: last message %d of stream %s is gone; resuming at cursor %d", info.State.LastSeq, p.cfg.Stream.Name, acked)
		case err != nil:
			return fmt.Errorf("replicate: read stream %s message %d: %w", p.cfg.Stream.Name, info.State.LastSeq, err)
		default:
			id := raw.Header.Get(jetstream.MsgIDHeader)
			rh, perr := parseRunHeader(raw.Header, id)
			if perr != nil || rh.logID != p.cfg.LogID {
				return fatalf("replicate: stream %s ends with message %d (id %q) from another source; "+
					"use one stream per log", p.cfg.Stream.Name, raw.Sequence, id)
			}
			next, err := p.checkRun(rh, raw.Data)
			if err != nil {
				return err
			}
			if next < acked {
				return fatalf("replicate: stream %s ends at cursor %d but cursor %d was acknowledged: "+
					"messages were removed; remove the cursor file to push the log again", p.cfg.Stream.Name, next, acked)
			}
			resume = next
			p.seq.Store(raw.Sequence)
		}
	}
	// Runs whose acks were lost but which the stream holds count as stored.
	for _, e := range p.lost {
		if e.first >= acked && e.end <= resume {
			p.frames.Add(int64(e.n))
			p.nbytes.Add(int64(e.payload))
		}
	}
	p.lost = p.lost[:0]
	if _, err := p.src.Seek(resume, io.SeekStart); err != nil {
		return fatalf("replicate: seek source to %d: %w", resume, err)
	}
	p.cursor.Store(resume)
	p.next = resume
	p.expect = info.State.LastSeq
	return nil
}

// checkRun checks that the source holds the stream's last run where its header says and returns
// the cursor after it.
func (p *Pusher) checkRun(rh runHeader, data []byte) (int64, error) {
	if _, err := p.src.Seek(rh.first, io.SeekStart); err != nil {
		return 0, fatalf("replicate: the stream's last run starts at cursor %d, which this log does not have: %w", rh.first, err)
	}
	rest, legacy := data, rh.legacy
	for n := 0; ; n++ {
		var want []byte
		if legacy {
			if n == 1 {
				break
			}
			want = data
		} else {
			var ok bool
			var err error
			if want, rest, ok, err = nextFrame(rest); err != nil {
				return 0, fatalf("replicate: the stream's last message: %w", err)
			} else if !ok {
				break
			}
		}
		f, err := p.src.NextFrame()
		if err != nil {
			return 0, fatalf("replicate: read source at %d: %w", p.src.Cursor(), err)
		}
		if f.Data == nil || !bytes.Equal(f.Data, want) {
			return 0, fatalf("replicate: the stream's last run (from cursor %d) differs from the log's frame %d there: "+
				"the stream holds another log's frames", rh.first, n)
		}
		if rh.end >= 0 && f.End > rh.end {
			return 0, fatalf("replicate: the stream's last run (cursors %d to %d) does not match this log", rh.first, rh.end)
		}
	}
	end := p.src.Cursor()
	if rh.end >= 0 {
		end = rh.end
	}
	return end, nil
}

// noRetry turns off the client's own re-publish on "no responders": it could land a message after
// the resync that follows the error; the resync already covers that failure.
var noRetry = jetstream.WithRetryAttempts(0)

// pump reads runs of frames, publishes them and harvests acks, in order, until an error, ctx done
// or (Once) caught up.
func (p *Pusher) pump(ctx context.Context) error {
	maxBytes := p.cfg.RunBytes
	if mp := int(p.cfg.Conn.MaxPayload()) - 1024; mp > 0 && mp < maxBytes {
		maxBytes = mp // room for the headers
	}
	maxFrames := p.cfg.RunFrames
	r := &p.run
	r.n, r.buf, r.payload = 0, r.buf[:0], 0
	defer p.drain(ctx)
	for {
		caughtUp := false
		for len(p.q) < p.cfg.Window && r.n < maxFrames && len(r.buf) < maxBytes {
			var err error
			p.batch, err = p.src.NextFrames(p.batch[:0], shmio.BatchOptions{MaxFrames: maxFrames - r.n, MaxBytes: maxBytes - len(r.buf)})
			if err != nil {
				return fatalf("replicate: read source at %d: %w", p.src.Cursor(), err)
			}
			if len(p.batch) == 0 {
				caughtUp = true
				break
			}
			for _, f := range p.batch {
				sz := encodedSize(len(f.Data))
				if r.n > 0 && len(r.buf)+sz > maxBytes {
					if err := p.publish(); err != nil {
						return err
					}
				}
				if sz > maxBytes {
					return fatalf("replicate: frame at cursor %d (%d bytes) exceeds the server's max_payload (%d)",
						f.Cursor, len(f.Data), p.cfg.Conn.MaxPayload())
				}
				if r.n == 0 {
					r.first, r.started = p.next, time.Now()
				}
				r.buf = appendFrame(r.buf, f.Data)
				r.n++
				r.payload += len(f.Data)
				r.end = f.End
			}
			clear(p.batch) // hold no references to the mapping
			if r.n >= maxFrames || len(r.buf) >= maxBytes {
				if err := p.publish(); err != nil {
					return err
				}
			}
		}
		// A run that is not full goes out when nothing is in flight (low rate: no waiting) or
		// after the linger (high rate: acks pace the runs).
		if caughtUp && r.n > 0 && (len(p.q) == 0 || time.Since(r.started) >= p.cfg.Linger) {
			if err := p.publish(); err != nil {
				return err
			}
		}
		if len(p.q) == 0 {
			if !caughtUp {
				continue
			}
			if p.cfg.Once {
				return p.persist(true)
			}
			if err := p.persist(false); err != nil {
				return err
			}
			// Caught up. A cursor not saved yet (saving at most every PersistEvery keeps fsync off
			// the path of a trickle of frames) bounds the wait.
			wctx, cancel := ctx, context.CancelFunc(func() {})
			if p.cfg.CursorFile != "" && p.cursor.Load() != p.persisted {
				wctx, cancel = context.WithDeadline(ctx, p.lastSave.Add(p.cfg.PersistEvery))
			}
			err := p.src.Wait(wctx)
			cancel()
			if err != nil && wctx.Err() == nil {
				return fatalf("replicate: wait for source: %w", err)
			}
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		// Block on the oldest ack when there is nothing else to do (bounded by the linger of a
		// run waiting to go out); otherwise take what is ready.
		var wait time.Duration = -1
		if caughtUp || len(p.q) >= p.cfg.Window {
			wait = 0
			if r.n > 0 {
				wait = max(p.cfg.Linger-time.Since(r.started), time.Microsecond)
			}
		}
		if err := p.harvest(ctx, wait); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := p.persist(false); err != nil {
			return err
		}
	}
}

// publish sends the run as one message and starts a new one.
func (p *Pusher) publish() error {
	r := &p.run
	h := nats.Header{
		jetstream.MsgIDHeader:           {MsgID(p.cfg.LogID, r.first)},
		HeaderEncoding:                  {EncodingRuns},
		HeaderEnd:                       {strconv.FormatInt(r.end, 10)},
		jetstream.ExpectedLastSeqHeader: {strconv.FormatUint(p.expect, 10)},
	}
	fut, err := p.js.PublishMsgAsync(&nats.Msg{Subject: p.cfg.Stream.Subject, Data: r.buf, Header: h}, noRetry)
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return fatalf("replicate: run at cursor %d (%d bytes) exceeds the server's max_payload", r.first, len(r.buf))
		}
		return fmt.Errorf("replicate: publish run at cursor %d: %w", r.first, err)
	}
	p.published.Add(1)
	p.expect++
	p.q = append(p.q, inflight{fut: fut, buf: r.buf, first: r.first, end: r.end, n: r.n, payload: r.payload})
	p.next = r.end
	r.n, r.payload = 0, 0
	r.buf = nil
	if k := len(p.free); k > 0 {
		r.buf, p.free = p.free[k-1][:0], p.free[:k-1]
	}
	return nil
}

// harvest takes the acks that are ready, in order. wait >= 0 first blocks on the oldest one, for
// at most wait when wait > 0.
func (p *Pusher) harvest(ctx context.Context, wait time.Duration) error {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	n := 0
	defer func() { p.q = append(p.q[:0], p.q[n:]...) }()
	for n < len(p.q) {
		e := p.q[n]
		var ack *jetstream.PubAck
		var err error
		if wait >= 0 && n == 0 {
			select {
			case ack = <-e.fut.Ok():
			case err = <-e.fut.Err():
			case <-timeout:
				return nil
			case <-ctx.Done():
				return nil
			}
		} else {
			select {
			case ack = <-e.fut.Ok():
			case err = <-e.fut.Err():
			default:
			}
		}
		if ack == nil && err == nil {
			return nil
		}
		if err != nil {
			n++
			p.lost = append(p.lost, e)
			return fmt.Errorf("replicate: publish run at cursor %d: %w", e.first, err)
		}
		if ack.Duplicate {
			n++
			p.lost = append(p.lost, e)
			// The stream already holds a run starting here, perhaps a different one (published
			// by a pusher that died or lost its connection): resynchronise from the stream.
			p.dups.Add(1)
			return fmt.Errorf("replicate: the stream already holds a run at cursor %d (sequence %d)", e.first, ack.Sequence)
		}
		n++
		p.ackOne(e, ack.Sequence)
	}
	return nil
}

func (p *Pusher) ackOne(e inflight, seq uint64) {
	p.acked.Add(1)
	p.frames.Add(int64(e.n))
	p.nbytes.Add(int64(e.payload))
	p.seq.Store(seq)
	p.cursor.Store(e.end)
	p.free = append(p.free, e.buf)
}

// drain waits (bounded by AckTimeout) for publishes still in flight when pump returns, so the
// cursor and the counts include them and a resync sees the stream after them rather than racing
// them. Acks are taken in order up to the first failure; later ones are only waited for.
func (p *Pusher) drain(ctx context.Context) {
	wait := p.cfg.AckTimeout + time.Second
	if ctx.Err() != nil {
		wait = min(wait, 2*time.Second) // stopping: do not hold up the exit for long
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	failed := false
	for _, e := range p.q {
		var ack *jetstream.PubAck
		select {
		case ack = <-e.fut.Ok():
		case <-e.fut.Err():
		case <-deadline.C:
			failed = true
			p.lost = append(p.lost, p.q...)
			p.q = p.q[:0]
			return
		}
		if ack != nil && !ack.Duplicate && !failed {
			p.ackOne(e, ack.Sequence)
			continue
		}
		failed = true
		p.lost = append(p.lost, e)
	}
	p.q = p.q[:0]
	p.run.n, p.run.payload, p.run.buf = 0, 0, p.run.buf[:0]
}
