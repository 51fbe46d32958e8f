package bench

// The baselines: the same frames over a Unix domain socket, a pipe and loopback TCP. Frames are
// length-prefixed ([u32 len][payload]) and go through a 64 KiB bufio.Writer flushed every
// Config.CommitEvery frames (the socket equivalent of a commit) and whenever it fills. The consumer uses a
// 64 KiB bufio.Reader and parses every complete frame already buffered before reading again, so the
// baseline is as strong as plain buffered stream code gets without copying tricks.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
)

const streamBufSize = 64 << 10

func init() {
	childRoles["stream-producer"] = runStreamProducer
	childRoles["stream-consumer"] = runStreamConsumer
}

// benchFill writes the sequence number at the head of p and its complement at the tail, so a consumer
// detects lost, repeated, reordered, misframed and torn frames with two loads.
func benchFill(p []byte, seq uint64) {
	binary.LittleEndian.PutUint64(p, seq)
	if len(p) >= 16 {
		binary.LittleEndian.PutUint64(p[len(p)-8:], ^seq)
	}
}

// benchTemplate is a payload with a recognisable filler between the sequence fields.
func benchTemplate(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// seqCheck is the consumers' verification state.
type seqCheck struct {
	size     int
	next     uint64 // expected sequence number
	frames   int64
	gaps     int64 // frames whose sequence number was not the expected one
	bad      int64 // frames of the wrong size or with a torn tail
	firstBad string
}

// checkBatch checks frames in order; it reports whether the last frame has been seen. The loop
// lives here, with the expected case spelled out, so the check costs no call per frame.
func (c *seqCheck) checkBatch(ps [][]byte, last uint64) bool {
	for _, p := range ps {
		if n := len(p); n == c.size && n >= 16 {
			if seq := binary.LittleEndian.Uint64(p); seq == c.next && binary.LittleEndian.Uint64(p[n-8:]) == ^seq {
				c.frames++
				c.next++
				if seq >= last {
					return true
				}
				continue
			}
		}
		if c.checkSlow(p, last) {
			return true
		}
	}
	return false
}

// checkSlow handles frames shorter than 16 bytes and counts and describes problems.
func (c *seqCheck) checkSlow(p []byte, last uint64) bool {
	c.frames++
	if len(p) != c.size || len(p) < 8 {
		c.bad++
		if c.firstBad == "" {
			c.firstBad = fmt.Sprintf("frame %d: %d bytes, want %d", c.frames-1, len(p), c.size)
		}
		return false
	}
	seq := binary.LittleEndian.Uint64(p)
	if len(p) >= 16 && binary.LittleEndian.Uint64(p[len(p)-8:]) != ^seq {
		c.bad++
		if c.firstBad == "" {
			c.firstBad = fmt.Sprintf("frame %d: torn (head says seq %d, tail disagrees)", c.frames-1, seq)
		}
	}
	if seq != c.next {
		c.gaps++
		if c.firstBad == "" {
			c.firstBad = fmt.Sprintf("frame %d: seq %d, want %d", c.frames-1, seq, c.next)
		}
	}
	c.next = seq + 1
	return seq >= last
}

// consumerResult is what every throughput consumer reports.
type consumerResult struct {
	Frames   int64  `json:"frames"`
	Gaps     int64  `json:"gaps"`
	Bad      int64  `json:"bad"`
	FirstBad string `json:"first_bad,omitempty"`
	StartNs  int64  `json:"start_ns"` // first frame received
	EndNs    int64  `json:"end_ns"`   // last frame received
	usage           // from ready to the last frame
}

func (c *seqCheck) result(start, end int64, u usage) consumerResult {
	return consumerResult{Frames: c.frames, Gaps: c.gaps, Bad: c.bad, FirstBad: c.firstBad, StartNs: start, EndNs: end, usage: u}
}

// verified reports whether a consumer saw exactly frames 0..n-1, in order, intact.
func (r consumerResult) verified(n int64) bool {
	return r.Frames == n && r.Gaps == 0 && r.Bad == 0
}

// producerResult is what every throughput producer reports.
type producerResult struct {
	Frames  int64 `json:"frames"`
	StartNs int64 `json:"start_ns"` // just before the first frame
	EndNs   int64 `json:"end_ns"`   // after the last commit/flush
	usage         // spent sending
}

// streamConfig configures both ends of a stream run.
type streamConfig struct {
	Transport   string `json:"transport"` // unix, pipe, tcp
	Frames      int64  `json:"frames"`
	Size        int    `json:"size"`
	CommitEvery int    `json:"commit_every"`
	Conns       int    `json:"conns"` // producer: number of inherited connections (one per consumer)
}

// inheritedConn turns inherited fd 3+i into a stream: a net.Conn for sockets (what real code uses),
// the *os.File itself for a pipe.
func inheritedConn(transport string, i int) (io.ReadWriteCloser, error) {
	f := os.NewFile(uintptr(3+i), fmt.Sprintf("%s-%d", transport, i))
	if f == nil {
		return nil, fmt.Errorf("inherited descriptor %d missing", 3+i)
	}
	if transport == "pipe" {
		return f, nil
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("inherited %s connection: %w", transport, err)
	}
	return c, nil
}

func runStreamProducer(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg streamConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	ws := make([]*bufio.Writer, cfg.Conns)
	for i := range ws {
		c, err := inheritedConn(cfg.Transport, i)
		if err != nil {
			return err
		}
		defer c.Close()
		ws[i] = bufio.NewWriterSize(c, streamBufSize)
	}
	frame := make([]byte, 4+cfg.Size)
	binary.LittleEndian.PutUint32(frame, uint32(cfg.Size))
	copy(frame[4:], benchTemplate(cfg.Size))
	payload := frame[4:]
	out.ready()

	flush := func() error {
		for _, w := range ws {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
		}
		return nil
	}
	u0, start := selfUsage(), nowNanos()
	batch := 0
	for seq := range uint64(cfg.Frames) {
		benchFill(payload, seq)
		for _, w := range ws {
			if _, err := w.Write(frame); err != nil {
				return fmt.Errorf("write frame %d: %w", seq, err)
			}
		}
		if batch++; batch == cfg.CommitEvery {
			batch = 0
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	end := nowNanos()
	out.emit("result", producerResult{Frames: cfg.Frames, StartNs: start, EndNs: end, usage: selfUsage().since(u0)})
	return nil
}

func runStreamConsumer(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg streamConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	c, err := inheritedConn(cfg.Transport, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, streamBufSize)
	chk := seqCheck{size: cfg.Size}
	out.ready()
	u0 := selfUsage()
	start, err := streamConsume(r, &chk, cfg.Frames)
	if err != nil {
		return err
	}
	out.emit("result", chk.result(start, nowNanos(), selfUsage().since(u0)))
	return nil
}

// streamConsume parses and checks length-prefixed frames until the last of n arrived or the stream
// ends, without allocating: frames are checked in place in the reader's buffer. It returns when the
// first bytes arrived.
func streamConsume(r *bufio.Reader, chk *seqCheck, n int64) (start int64, err error) {
	last := uint64(n - 1)
	done := n == 0
	for !done {
		if r.Buffered() < 4 {
			if _, err := r.Peek(4); err != nil {
				if errors.Is(err, io.EOF) {
					break // the producer is gone: report what arrived, the parent judges
				}
				return start, fmt.Errorf("read: %w", err)
			}
		}
		if start == 0 {
			start = nowNanos()
		}
		buf, _ := r.Peek(r.Buffered())
		off := 0
		for off+4 <= len(buf) && !done {
			n := int(binary.LittleEndian.Uint32(buf[off:]))
			if n > streamBufSize-4 {
				return start, fmt.Errorf("frame %d: length %d is not a frame boundary", chk.frames, n)
			}
			if off+4+n > len(buf) {
				break
			}
			// The expected case inline, as checkBatch does for shmio.
			p := buf[off+4 : off+4+n]
			if n == chk.size && n >= 16 && binary.LittleEndian.Uint64(p) == chk.next && binary.LittleEndian.Uint64(p[n-8:]) == ^chk.next {
				chk.frames++
				chk.next++
				done = chk.next > last
			} else {
				done = chk.checkSlow(p, last)
			}
			off += 4 + n
		}
		if off == 0 {
			// Only part of one frame is buffered: wait for the rest of it.
			n := int(binary.LittleEndian.Uint32(buf))
			if n > streamBufSize-4 {
				return start, fmt.Errorf("frame %d: length %d is not a frame boundary", chk.frames, n)
			}
			if _, err := r.Peek(4 + n); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				return start, fmt.Errorf("read: %w", err)
			}
			continue
		}
		r.Discard(off)
	}
	return start, nil
}

// streamPairs connects n producer ends to n consumer ends over transport, returning the files to hand
// to the children (the parent closes its copies after starting them).
func streamPairs(transport string, n int, dir string) (prod, cons []*os.File, err error) {
	closeAll := func() {
		for _, f := range append(prod, cons...) {
			f.Close()
		}
	}
	switch transport {
	case "pipe":
		for range n {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("pipe: %w", err)
			}
			prod, cons = append(prod, w), append(cons, r)
		}
		return prod, cons, nil
	case "unix", "tcp":
	default:
		return nil, nil, fmt.Errorf("unknown transport %q", transport)
	}
	network, addr := "unix", filepath.Join(dir, "bench.sock")
	if transport == "tcp" {
		network, addr = "tcp", "127.0.0.1:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", transport, err)
	}
	defer ln.Close()
	for range n {
		a, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("dial %s: %w", transport, err)
		}
		b, err := ln.Accept()
		if err != nil {
			a.Close()
			closeAll()
			return nil, nil, fmt.Errorf("accept %s: %w", transport, err)
		}
		fa, errA := a.(interface{ File() (*os.File, error) }).File()
		fb, errB := b.(interface{ File() (*os.File, error) }).File()
		a.Close()
		b.Close()
		if err := errors.Join(errA, errB); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s connection file: %w", transport, err)
		}
		prod, cons = append(prod, fa), append(cons, fb)
	}
	return prod, cons, nil
}
