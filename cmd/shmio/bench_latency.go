package main

// One-way latency by ping-pong between two processes: the pinger sends frame i and waits for the ponger
// to send it back; one-way latency is half the round trip, timed in the pinger alone (one clock). shmio
// uses two logs, one per direction, each frame committed at once. The reader side either busy-polls
// Next ("spin") or sleeps in Wait right away ("futex", IteratorOptions.Spin < 0). The socket variant uses
// one Unix domain stream connection with the same bufio setup as the throughput baseline, flushed per frame.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/shmio/shmio"
)

func init() {
	childRoles["ping"] = runPing
	childRoles["pong"] = runPong
}

type pingConfig struct {
	Mode   string `json:"mode"` // spin, futex, unix
	PathAB string `json:"path_ab,omitempty"`
	PathBA string `json:"path_ba,omitempty"`
	Count  int    `json:"count"`  // measured round trips
	Warmup int    `json:"warmup"` // unmeasured round trips first
	Size   int    `json:"size"`
}

type pingResult struct {
	Samples int   `json:"samples"`
	P50     int64 `json:"p50_ns"`
	P99     int64 `json:"p99_ns"`
	P999    int64 `json:"p999_ns"`
	Max     int64 `json:"max_ns"`
	Gaps    int64 `json:"gaps"`
	Bad     int64 `json:"bad"`
}

type pongResult struct {
	Frames int64 `json:"frames"`
	Gaps   int64 `json:"gaps"`
	Bad    int64 `json:"bad"`
}

// pingEnd is one side of a ping-pong: send a payload, receive the next one.
type pingEnd interface {
	send(p []byte) error
	recv() ([]byte, error)
	close()
}

type shmPingEnd struct {
	ctx    context.Context
	wl, rl *shmio.Log
	w      *shmio.Writer
	it     *shmio.Iterator
	spin   bool
}

func openShmPingEnd(ctx context.Context, cfg pingConfig, writePath, readPath string) (*shmPingEnd, error) {
	e := &shmPingEnd{ctx: ctx, spin: cfg.Mode == "spin"}
	var err error
	if e.wl, e.w, err = openChildWriter(writePath); err != nil {
		return nil, err
	}
	// Futex: sleep at once, so the wake-up path is what gets measured (the spinning side never waits).
	if e.rl, e.it, err = openChildReader(readPath, -1); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *shmPingEnd) send(p []byte) error {
	if err := e.w.Append(p); err != nil {
		return err
	}
	return e.w.Commit()
}

func (e *shmPingEnd) recv() ([]byte, error) {
	for {
		p, err := e.it.Next()
		if p != nil || err != nil {
			return p, err
		}
		if !e.spin {
			if err := e.it.Wait(e.ctx); err != nil {
				return nil, err
			}
		}
	}
}

func (e *shmPingEnd) close() {
	if e.rl != nil {
		e.rl.Close()
	}
	e.wl.Close()
}

type streamPingEnd struct {
	c     io.ReadWriteCloser
	r     *bufio.Reader
	w     *bufio.Writer
	frame []byte
}

func openStreamPingEnd() (*streamPingEnd, error) {
	c, err := inheritedConn("unix", 0)
	if err != nil {
		return nil, err
	}
	return &streamPingEnd{c: c, r: bufio.NewReaderSize(c, streamBufSize), w: bufio.NewWriterSize(c, streamBufSize)}, nil
}

func (e *streamPingEnd) send(p []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(p)))
	e.w.Write(hdr[:])
	e.w.Write(p)
	return e.w.Flush()
}

func (e *streamPingEnd) recv() ([]byte, error) {
	hdr, err := e.r.Peek(4)
	if err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(hdr))
	if n > streamBufSize-4 {
		return nil, fmt.Errorf("bad frame length %d", n)
	}
	b, err := e.r.Peek(4 + n)
	if err != nil {
		return nil, err
	}
	e.frame = append(e.frame[:0], b[4:]...)
	e.r.Discard(4 + n)
	return e.frame, nil
}

func (e *streamPingEnd) close() { e.c.Close() }

func openPingEnd(ctx context.Context, cfg pingConfig, pinger bool) (pingEnd, error) {
	if cfg.Mode == "unix" {
		return openStreamPingEnd()
	}
	if pinger {
		return openShmPingEnd(ctx, cfg, cfg.PathAB, cfg.PathBA)
	}
	return openShmPingEnd(ctx, cfg, cfg.PathBA, cfg.PathAB)
}

func runPing(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg pingConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	e, err := openPingEnd(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer e.close()
	p := benchTemplate(cfg.Size)
	chk := seqCheck{size: cfg.Size}
	var h latHist
	out.ready()

	for i := range cfg.Warmup + cfg.Count {
		benchFill(p, uint64(i))
		t0 := time.Now()
		if err := e.send(p); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
		q, err := e.recv()
		if err != nil {
			return fmt.Errorf("receive %d: %w", i, err)
		}
		rtt := time.Since(t0)
		chk.checkBatch([][]byte{q}, 0)
		if i >= cfg.Warmup {
			h.add(int64(rtt) / 2)
		}
	}
	out.emit("result", pingResult{Samples: cfg.Count, P50: h.quantile(0.5), P99: h.quantile(0.99), P999: h.quantile(0.999), Max: h.max, Gaps: chk.gaps, Bad: chk.bad})
	return nil
}

func runPong(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg pingConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	e, err := openPingEnd(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer e.close()
	chk := seqCheck{size: cfg.Size}
	out.ready()
	for i := range cfg.Warmup + cfg.Count {
		q, err := e.recv()
		if err != nil {
			return fmt.Errorf("receive %d: %w", i, err)
		}
		chk.checkBatch([][]byte{q}, 0)
		if err := e.send(q); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	out.emit("result", pongResult{Frames: chk.frames, Gaps: chk.gaps, Bad: chk.bad})
	return nil
}
