package bench

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
	"os"
	"strings"
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

func (r *runner) latency(ctx context.Context, mode string, size int) Result {
	count, warmup := r.cfg.PingCounts()
	res := Result{Kind: "latency", Transport: mode, Size: size, Readers: 1, Frames: int64(count)}
	r.report(fmt.Sprintf("latency %s, %s frames", mode, FormatSize(size)))
	limit := 30*time.Second + time.Duration(count)*200*time.Microsecond
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("gave up after %v", limit))
	defer cancel()
	var children []*childProc
	defer func() { killAll(children) }()

	cfg := pingConfig{Size: size, Count: count, Warmup: warmup}
	var pingFiles, pongFiles []*os.File
	switch mode {
	case "shmio-spin", "shmio-futex":
		cfg.Mode = strings.TrimPrefix(mode, "shmio-")
		capacity := logCapacity(int64(count+warmup), size)
		var err error
		if cfg.PathAB, err = r.newLog(capacity); err != nil {
			return res.fail(err)
		}
		defer os.Remove(cfg.PathAB)
		if cfg.PathBA, err = r.newLog(capacity); err != nil {
			return res.fail(err)
		}
		defer os.Remove(cfg.PathBA)
	default:
		cfg.Mode = "unix"
		var err error
		if pingFiles, pongFiles, err = streamPairs("unix", 1, r.sockDir); err != nil {
			return res.fail(err)
		}
		defer func() {
			for _, f := range append(pingFiles, pongFiles...) {
				f.Close()
			}
		}()
	}
	pong, err := startChild(ctx, mode+" pong", "pong", cfg, pongFiles...)
	if err != nil {
		return res.fail(err)
	}
	children = append(children, pong)
	if err := pong.waitReady(ctx); err != nil {
		return res.fail(err)
	}
	ping, err := startChild(ctx, mode+" ping", "ping", cfg, pingFiles...)
	if err != nil {
		return res.fail(err)
	}
	children = append(children, ping)
	var pr pingResult
	if err := ping.waitReady(ctx); err != nil {
		return res.fail(err)
	}
	if err := ping.result(ctx, &pr, nil); err != nil {
		return res.fail(err)
	}
	var po pongResult
	if err := pong.result(ctx, &po, nil); err != nil {
		return res.fail(err)
	}
	total := int64(count + warmup)
	pingOK := pr.Gaps == 0 && pr.Bad == 0 && pr.Samples == count
	pongOK := po.Frames == total && po.Gaps == 0 && po.Bad == 0
	res.Consumers = []ConsumerReport{
		{Frames: total, Gaps: pr.Gaps, Bad: pr.Bad, Verified: pingOK},
		{Frames: po.Frames, Gaps: po.Gaps, Bad: po.Bad, Verified: pongOK},
	}
	res.Verified = pingOK && pongOK
	res.CPUSeconds = childrenCPU(children)
	res.P50, res.P99, res.P999, res.Max = pr.P50, pr.P99, pr.P999, pr.Max
	return res
}
