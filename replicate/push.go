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
	// message still tells a restarted pusher where to resume).
	CursorFile string
	// Window is the most publishes awaiting their ack; default 1024.
	Window int
	// AckTimeout bounds the wait for one ack before the pusher resynchronises; default 5s.
	AckTimeout time.Duration
	// PersistEvery is how often the cursor file is rewritten while frames keep flowing; it is
	// always rewritten before waiting for new frames and on exit. Default 100ms.
	PersistEvery time.Duration
	// Once stops Run (returning nil) when every committed frame is acknowledged, instead of waiting.
	Once bool
	// Logf receives progress and retry messages; nil discards them.
	Logf func(format string, args ...any)
}

// PushStats is a snapshot of a pusher's progress; safe to call from any goroutine.
type PushStats struct {
	Cursor     int64  // source cursor of the first frame not yet acknowledged
	Seq        uint64 // stream sequence of the last acknowledged frame
	Published  int64  // publishes this run (retries included)
	Acked      int64  // acknowledgements this run
	Duplicates int64  // acknowledgements the server flagged as duplicates
	Resyncs    int64  // times the pusher re-read the stream's end after an error or on start
}

// Pusher publishes a source log's frames to a JetStream stream. Use Run once.
type Pusher struct {
	src    Source
	cfg    PushConfig
	js     jetstream.JetStream
	stream jetstream.Stream
	log    logf

	expect    uint64 // stream sequence the next publish expects to follow (Nats-Expected-Last-Sequence)
	persisted int64  // cursor last written (or being written) to the cursor file
	lastSave  time.Time
	saveMu    sync.Mutex // held while the cursor file is written, by a background save too
	saveErr   atomic.Pointer[error]

	cursor, published, acked, dups, resyncs atomic.Int64
	seq                                     atomic.Uint64
}

// fatalError marks errors retrying cannot fix (the source log, a foreign stream, oversized frames).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error { return &fatalError{fmt.Errorf(format, args...)} }

// NewPusher checks the configuration; nothing is contacted until Run.
func NewPusher(src Source, cfg PushConfig) (*Pusher, error) {
	if src == nil || cfg.Conn == nil {
		return nil, errors.New("replicate: push needs a source and a NATS connection")
	}
	if cfg.Stream.Name == "" {
		return nil, errors.New("replicate: push needs a stream name")
	}
	if cfg.LogID == 0 {
		return nil, errors.New("replicate: push needs a non-zero log identity")
	}
	if cfg.Stream.Subject == "" {
		cfg.Stream.Subject = DefaultSubject(cfg.Stream.Name)
	}
	if cfg.Window <= 0 {
		cfg.Window = 1024
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.PersistEvery <= 0 {
		cfg.PersistEvery = 100 * time.Millisecond
	}
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(cfg.Window))
	if err != nil {
		return nil, fmt.Errorf("replicate: %w", err)
	}
	p := &Pusher{src: src, cfg: cfg, js: js, log: logf(cfg.Logf), persisted: -1}
	return p, nil
}

// Stats returns the pusher's progress so far.
func (p *Pusher) Stats() PushStats {
	return PushStats{
		Cursor: p.cursor.Load(), Seq: p.seq.Load(), Published: p.published.Load(),
		Acked: p.acked.Load(), Duplicates: p.dups.Load(), Resyncs: p.resyncs.Load(),
	}
}

// Run publishes until ctx is done (then it returns nil), until caught up when Once is set, or
// until an error retrying cannot fix. Lost connections, timeouts and rejected publishes are
// retried: the pusher drains its window, re-reads where the stream ends and carries on from there.
func (p *Pusher) Run(ctx context.Context) error {
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
			return fe.err
		}
		p.log.printf("push: %v; resynchronising in %v", err, backoff)
		if !sleepCtx(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (p *Pusher) loadCursorFile() error {
	if p.cfg.CursorFile == "" {
		return nil
	}
	st, ok, err := ReadCursorFile(p.cfg.CursorFile)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	if st.LogID != p.cfg.LogID || st.Stream != p.cfg.Stream.Name {
		return fmt.Errorf("replicate: cursor file %s belongs to log %016x, stream %q, not log %016x, stream %q",
			p.cfg.CursorFile, st.LogID, st.Stream, p.cfg.LogID, p.cfg.Stream.Name)
	}
	p.cursor.Store(st.Cursor)
	p.seq.Store(st.Seq)
	p.persisted = st.Cursor
	return nil
}

// persist saves the cursor when it moved: in the background at most every PersistEvery (an fsync
// must not stall publishing), or, with force, right away and after any background save.
func (p *Pusher) persist(force bool) error {
	if e := p.saveErr.Load(); e != nil {
		return &fatalError{*e}
	}
	if p.cfg.CursorFile == "" {
		return nil
	}
	cur := p.cursor.Load()
	st := CursorState{LogID: p.cfg.LogID, Stream: p.cfg.Stream.Name, Cursor: cur, Seq: p.seq.Load()}
	if force {
		p.saveMu.Lock()
		defer p.saveMu.Unlock()
		if cur == p.persisted {
			return nil
		}
		if err := WriteCursorFile(p.cfg.CursorFile, st); err != nil {
			return &fatalError{err}
		}
	} else {
		if cur == p.persisted || time.Since(p.lastSave) < p.cfg.PersistEvery || !p.saveMu.TryLock() {
			return nil
		}
		go func() {
			defer p.saveMu.Unlock()
			if err := WriteCursorFile(p.cfg.CursorFile, st); err != nil {
				p.saveErr.Store(&err)
			}
		}()
	}
	p.persisted, p.lastSave = cur, time.Now()
	return nil
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
			// The last message was removed (limits, age): frames after the acknowledged cursor
			// that the stream still holds come back as duplicates and are skipped.
			p.log.printf("push: last message %d of stream %s is gone; resuming at cursor %d", info.State.LastSeq, p.cfg.Stream.Name, acked)
		case err != nil:
			return fmt.Errorf("replicate: read stream %s message %d: %w", p.cfg.Stream.Name, info.State.LastSeq, err)
		default:
			id := raw.Header.Get(jetstream.MsgIDHeader)
			logID, cur, perr := ParseMsgID(id)
			if perr != nil || logID != p.cfg.LogID {
				return fatalf("replicate: stream %s ends with message %d (id %q) from another source; "+
					"use one stream per log", p.cfg.Stream.Name, raw.Sequence, id)
			}
			next, err := p.frameAfter(cur, raw.Data)
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
	if _, err := p.src.Seek(resume, io.SeekStart); err != nil {
		return fatalf("replicate: seek source to %d: %w", resume, err)
	}
	p.cursor.Store(resume)
	p.expect = info.State.LastSeq
	return nil
}

// frameAfter checks that the source holds data at cur and returns the cursor after that frame.
func (p *Pusher) frameAfter(cur int64, data []byte) (int64, error) {
	if _, err := p.src.Seek(cur, io.SeekStart); err != nil {
		return 0, fatalf("replicate: the stream's last frame is at cursor %d, which this log does not have: %w", cur, err)
	}
	b, err := p.src.NextBatch(nil, shmio.BatchOptions{MaxFrames: 1})
	if err != nil {
		return 0, fatalf("replicate: read source at %d: %w", cur, err)
	}
	if len(b) != 1 || !bytes.Equal(b[0], data) {
		return 0, fatalf("replicate: the stream's last frame (cursor %d) differs from the log's frame there: "+
			"the stream holds another log's frames", cur)
	}
	return p.src.Cursor(), nil
}

// noRetry turns off the client's own re-publish on "no responders": it would re-read the frame
// later (a segmented queue may have unmapped it by then) and could reorder; the pusher's resync
// already covers that failure.
var noRetry = jetstream.WithRetryAttempts(0)

type inflight struct {
	fut jetstream.PubAckFuture
	end int64 // source cursor after the frame
}

// pump publishes frames and harvests acks, in order, until an error, ctx done or (Once) caught up.
func (p *Pusher) pump(ctx context.Context) error {
	window := p.cfg.Window
	q := make([]inflight, 0, window) // FIFO; head at q[0]
	var batch [][]byte
	subject := p.cfg.Stream.Subject
	defer func() {
		if ctx.Err() == nil {
			p.drain(q)
		}
	}()
	for {
		caughtUp := false
		if len(q) < window {
			c0 := p.src.Cursor()
			var err error
			batch, err = p.src.NextBatch(batch[:0], shmio.BatchOptions{MaxFrames: min(window-len(q), 256), MaxBytes: 1 << 20})
			if err != nil {
				return fatalf("replicate: read source at %d: %w", c0, err)
			}
			caughtUp = len(batch) == 0
			starts, err := p.frameStarts(c0, batch)
			if err != nil {
				return err
			}
			for i, f := range batch {
				id := MsgID(p.cfg.LogID, starts[i])
				h := nats.Header{
					jetstream.MsgIDHeader:           {id},
					HeaderCursor:                    {strconv.FormatInt(starts[i], 10)},
					jetstream.ExpectedLastSeqHeader: {strconv.FormatUint(p.expect, 10)},
				}
				fut, err := p.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: f, Header: h}, noRetry)
				if err != nil {
					if errors.Is(err, nats.ErrMaxPayload) {
						return fatalf("replicate: frame at cursor %d (%d bytes) exceeds the server's max_payload", starts[i], len(f))
					}
					return fmt.Errorf("replicate: publish frame at cursor %d: %w", starts[i], err)
				}
				p.published.Add(1)
				p.expect++
				end := p.src.Cursor()
				if i+1 < len(batch) {
					end = starts[i+1]
				}
				q = append(q, inflight{fut: fut, end: end})
			}
		}
		if len(q) == 0 {
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
		// Block on the oldest ack when there is nothing else to do; otherwise take what is ready.
		block := caughtUp || len(q) >= window
		n := 0
		for n < len(q) {
			e := q[n]
			var ack *jetstream.PubAck
			var err error
			if block && n == 0 {
				select {
				case ack = <-e.fut.Ok():
				case err = <-e.fut.Err():
				case <-ctx.Done():
					q = q[n:]
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
				break
			}
			if err != nil {
				q = q[n:]
				return fmt.Errorf("replicate: publish frame before cursor %d: %w", e.end, err)
			}
			n++
			p.acked.Add(1)
			if ack.Duplicate {
				p.dups.Add(1)
			}
			p.seq.Store(ack.Sequence)
			p.cursor.Store(e.end)
		}
		if n > 0 {
			q = append(q[:0], q[n:]...)
			if err := p.persist(false); err != nil {
				return err
			}
		}
	}
}

// frameStarts returns each frame's source cursor. Cursors advance by payload length plus a fixed
// per-frame overhead (4, or 8 for wide frames), derived from the batch; when the batch does not
// follow that rule (a segmented queue's cursor jumps at a segment boundary) it is re-read one
// frame at a time.
func (p *Pusher) frameStarts(c0 int64, batch [][]byte) ([]int64, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	c1 := p.src.Cursor()
	var payload int64
	for _, f := range batch {
		payload += int64(len(f))
	}
	gap := c1 - c0 - payload
	n := int64(len(batch))
	starts := make([]int64, len(batch))
	if per := gap / n; gap%n == 0 && (per == 4 || per == 8) {
		c := c0
		for i, f := range batch {
			starts[i] = c
			c += int64(len(f)) + per
		}
		return starts, nil
	}
	if _, err := p.src.Seek(c0, io.SeekStart); err != nil {
		return nil, fatalf("replicate: seek source to %d: %w", c0, err)
	}
	for i := range batch {
		starts[i] = p.src.Cursor()
		one, err := p.src.NextBatch(nil, shmio.BatchOptions{MaxFrames: 1})
		if err != nil || len(one) != 1 {
			return nil, fatalf("replicate: re-read source at %d: %v", starts[i], err)
		}
	}
	return starts, nil
}

// drain waits (bounded by AckTimeout) for publishes still in flight after an error, so the resync
// that follows sees the stream after them rather than racing them.
func (p *Pusher) drain(q []inflight) {
	deadline := time.NewTimer(p.cfg.AckTimeout + time.Second)
	defer deadline.Stop()
	for _, e := range q {
		select {
		case ack := <-e.fut.Ok():
			p.acked.Add(1)
			_ = ack // acknowledged late: the resync reads the stream's end, which includes it
		case <-e.fut.Err():
		case <-deadline.C:
			return
		}
	}
}
