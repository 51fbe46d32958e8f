package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// DemoConfig is one demo: a writer streaming DemoPayload-byte events at Rate per second for
// Duration, and Readers readers checking every one, on a log of Capacity bytes in Dir.
type DemoConfig struct {
	Duration time.Duration
	Readers  int
	Capacity int64
	Rate     int64
	Dir      string // "": DefaultLogDir
}

// DemoStatsEvery is how often the demo's children report and Demo.Run calls its live function.
const DemoStatsEvery = 250 * time.Millisecond

// Demo is a demo whose log exists; Run runs it, Close removes the log.
type Demo struct {
	Path      string  // the log
	Capacity  int64   // the log's capacity
	Rate      float64 // events per second: the asked rate, lowered so Duration of events fit
	cfg       DemoConfig
	maxEvents int64
}

// NewDemo creates the demo's log.
func NewDemo(cfg DemoConfig) (*Demo, error) {
	if cfg.Duration <= 0 || cfg.Readers < 1 || cfg.Rate <= 0 || cfg.Capacity < 1<<20 {
		return nil, fmt.Errorf("bench: invalid demo config %+v", cfg)
	}
	dir := cfg.Dir
	if dir == "" {
		dir = DefaultLogDir(cfg.Capacity)
	}
	d := &Demo{Path: tempLogPath(dir, "demo", 1), cfg: cfg}
	h, err := createLog("the demo log", d.Path, cfg.Capacity)
	if err != nil {
		return nil, err
	}
	overhead := int64(4)
	if h.WideFrames {
		overhead = 8
	}
	d.Capacity = h.Capacity
	d.maxEvents = (h.Capacity-h.DataOffset)/(demoPayload+overhead) - 1 // one frame for the end marker
	d.Rate = float64(cfg.Rate)
	if fit := float64(d.maxEvents) * 0.95 / cfg.Duration.Seconds(); d.Rate > fit {
		d.Rate = fit
	}
	return d, nil
}

// Close removes the log (if Run has not already); call it on every path out.
func (d *Demo) Close() { os.Remove(d.Path) }

// DemoLive is the demo's state at one moment, for a live status line.
type DemoLive struct {
	Elapsed     time.Duration
	WriterRate  float64   // events per second over the last interval
	ReaderRates []float64 // each reader's
	P50, P99    int64     // the worst reader's write-to-read latency over the last interval, ns
}

// DemoResult is what the writer and each reader reported at the end.
type DemoResult struct {
	Writer  DemoWriterResult
	Readers []DemoReaderResult
}

// Problems describes every reader that did not get every event, in order and intact; none means
// the demo verified.
func (r DemoResult) Problems() []string {
	var problems []string
	wr := r.Writer
	for i, rr := range r.Readers {
		switch {
		case !rr.GotEnd:
			problems = append(problems, fmt.Sprintf("reader %d never saw the end of the stream", i+1))
		case rr.Events != wr.Events || rr.Announced != wr.Events || rr.LastSeq != wr.Events-1:
			problems = append(problems, fmt.Sprintf("reader %d got %s of %s events", i+1, FormatCount(rr.Events), FormatCount(wr.Events)))
		case rr.OutOfOrder > 0 || rr.BadChecksum > 0:
			problems = append(problems, fmt.Sprintf("reader %d saw %d events out of order and %d checksum errors", i+1, rr.OutOfOrder, rr.BadChecksum))
		}
	}
	return problems
}

// demoProc is the parent's live view of one child.
type demoProc struct {
	c              *childProc
	last, prev     demoStats
	hasLast, hasPr bool
}

func (p *demoProc) rate() float64 {
	if !p.hasPr || p.last.AtNs <= p.prev.AtNs {
		return 0
	}
	return float64(p.last.Events-p.prev.Events) / (float64(p.last.AtNs-p.prev.AtNs) / 1e9)
}

// Run starts the readers and the writer, calls live (when not nil) every DemoStatsEvery until
// they are done, and removes the log. The result says what every process saw (see Problems); the
// error is for a process that failed or ctx ending, after every child has been stopped.
func (d *Demo) Run(ctx context.Context, live func(DemoLive)) (DemoResult, error) {
	limit := d.cfg.Duration + 60*time.Second
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("gave up after %v", limit))
	defer cancel()
	var procs []*demoProc
	defer func() {
		for _, p := range procs {
			p.c.kill()
		}
	}()

	for i := range d.cfg.Readers {
		c, err := startChild(ctx, fmt.Sprintf("reader %d", i+1), "demo-reader", demoReaderConfig{Path: d.Path, StatsEvery: DemoStatsEvery})
		if err != nil {
			return DemoResult{}, err
		}
		procs = append(procs, &demoProc{c: c})
	}
	for _, p := range procs {
		if err := p.c.waitReady(ctx); err != nil {
			return DemoResult{}, err
		}
	}
	wc, err := startChild(ctx, "writer", "demo-writer", demoWriterConfig{
		Path: d.Path, Duration: d.cfg.Duration, Rate: d.Rate, MaxEvents: d.maxEvents, StatsEvery: DemoStatsEvery})
	if err != nil {
		return DemoResult{}, err
	}
	procs = append([]*demoProc{{c: wc}}, procs...)
	if err := wc.waitReady(ctx); err != nil {
		return DemoResult{}, err
	}
	// Rates start from here: nothing was written before the writer was ready.
	for _, p := range procs {
		p.last, p.hasLast = demoStats{AtNs: nowNanos()}, true
	}

	// Collect every child's stats and result concurrently; report the live state meanwhile.
	var mu sync.Mutex
	res := DemoResult{Readers: make([]DemoReaderResult, d.cfg.Readers)}
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		var dst any = &res.Writer
		if i > 0 {
			dst = &res.Readers[i-1]
		}
		wg.Go(func() {
			errs[i] = p.c.result(ctx, dst, func(raw json.RawMessage) {
				var s demoStats
				if json.Unmarshal(raw, &s) != nil {
					return
				}
				mu.Lock()
				p.prev, p.hasPr = p.last, p.hasLast
				p.last, p.hasLast = s, true
				mu.Unlock()
			})
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	start := time.Now()
	tick := time.NewTicker(DemoStatsEvery)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
			if live != nil {
				mu.Lock()
				l := demoLive(time.Since(start), procs)
				mu.Unlock()
				live(l)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if err := os.Remove(d.Path); err != nil {
		return res, fmt.Errorf("removing the demo log: %s", cause(err))
	}
	return res, nil
}

func demoLive(el time.Duration, procs []*demoProc) DemoLive {
	l := DemoLive{Elapsed: el, WriterRate: procs[0].rate()}
	for _, p := range procs[1:] {
		l.ReaderRates = append(l.ReaderRates, p.rate())
		l.P50, l.P99 = max(l.P50, p.last.P50), max(l.P99, p.last.P99)
	}
	return l
}
