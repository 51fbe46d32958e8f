package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newDemoCmd()) }

type demoOptions struct {
	duration time.Duration
	readers  int
	size     sizeValue
	rate     int64
	dir      string
}

func newDemoCmd() *cobra.Command {
	o := &demoOptions{duration: 3 * time.Second, readers: 3, size: 256 << 20, rate: 1_000_000}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a writer and three readers on a shared-memory log for a few seconds",
		Long: `demo creates a log under /dev/shm (the temporary directory where /dev/shm is missing or
too small), starts one writer process and three reader processes, and streams 64-byte events for a
few seconds while showing each process's rate and the write-to-read latency. Then it checks that every
reader got every event, in order, with intact checksums, prints a summary and removes the log.`,
		Example: `  shmio demo
  shmio demo --duration 10s --readers 5 --rate 2000000 --size 2GiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", o.duration, "how long the writer streams events")
	f.IntVar(&o.readers, "readers", o.readers, "number of reader processes")
	f.Var(&o.size, "size", "log capacity (the rate is lowered if the events would not fit)")
	f.Int64Var(&o.rate, "rate", o.rate, "events per second the writer aims for")
	f.StringVar(&o.dir, "dir", "", "directory for the log (default /dev/shm, else the temp dir)")
	return cmd
}

// demoProc is the parent's live view of one child.
type demoProc struct {
	name           string
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

func runDemo(ctx context.Context, stdout io.Writer, o *demoOptions) error {
	switch {
	case o.duration <= 0:
		return fmt.Errorf("invalid --duration %v: want a positive duration", o.duration)
	case o.readers < 1 || o.readers > 64:
		return fmt.Errorf("invalid --readers %d: want 1 to 64", o.readers)
	case o.rate <= 0:
		return fmt.Errorf("invalid --rate %d: want a positive number of events per second", o.rate)
	case o.size < 1<<20:
		return fmt.Errorf("invalid --size %s: want at least 1MiB", formatSize(int64(o.size)))
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	dir := o.dir
	if dir == "" {
		dir = defaultLogDir(int64(o.size))
	}
	path := tempLogPath(dir, "demo", 1)
	os.Remove(path) // a leftover from a killed run with a recycled pid
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: int64(o.size), Writable: true})
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("creating the demo log %s: %s", path, rootCause(err))
	}
	defer os.Remove(path) // on every path out, interrupted or not
	h := l.Header()
	if err := l.Close(); err != nil {
		return err
	}
	overhead := int64(4)
	if h.WideFrames {
		overhead = 8
	}
	maxEvents := (h.Capacity-h.DataOffset)/(demoPayload+overhead) - 1 // one frame for the end marker
	rate := float64(o.rate)
	if fit := float64(maxEvents) * 0.95 / o.duration.Seconds(); rate > fit {
		rate = fit
	}
	fmt.Fprintf(stdout, "shmio demo: 1 writer and %d %s on %s (%s), %s events/s of %d bytes for %v\n",
		o.readers, plural(int64(o.readers), "reader"), path, formatSize(h.Capacity), fmtRate(rate), demoPayload, o.duration)
	if rate < float64(o.rate) {
		fmt.Fprintf(stdout, "  (rate lowered from %s/s so %v of events fit in %s; raise --size for more)\n", fmtRate(float64(o.rate)), o.duration, formatSize(h.Capacity))
	}

	limit := o.duration + 60*time.Second
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("gave up after %v", limit))
	defer cancel()
	statsEvery := 250 * time.Millisecond
	var procs []*demoProc
	defer func() {
		for _, p := range procs {
			p.c.kill()
		}
	}()
	interrupted := func(err error) error {
		if errors.Is(ctx.Err(), context.Canceled) {
			return &exitError{130, errors.New("interrupted; children stopped and log removed")}
		}
		return err
	}

	for i := range o.readers {
		c, err := startChild(ctx, fmt.Sprintf("reader %d", i+1), "demo-reader", demoReaderConfig{Path: path, StatsEvery: statsEvery})
		if err != nil {
			return err
		}
		procs = append(procs, &demoProc{name: fmt.Sprintf("reader %d", i+1), c: c})
	}
	for _, p := range procs {
		if err := p.c.waitReady(ctx); err != nil {
			return interrupted(err)
		}
	}
	wc, err := startChild(ctx, "writer", "demo-writer", demoWriterConfig{
		Path: path, Duration: o.duration, Rate: rate, MaxEvents: maxEvents, StatsEvery: statsEvery})
	if err != nil {
		return err
	}
	writer := &demoProc{name: "writer", c: wc}
	procs = append([]*demoProc{writer}, procs...)
	if err := wc.waitReady(ctx); err != nil {
		return interrupted(err)
	}
	// Rates start from here: nothing was written before the writer was ready.
	for _, p := range procs {
		p.last, p.hasLast = demoStats{AtNs: nowNanos()}, true
	}

	// Collect every child's stats and result concurrently; render the live line meanwhile.
	var mu sync.Mutex
	var wres demoWriterResult
	rres := make([]demoReaderResult, o.readers)
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		var dst any = &wres
		if i > 0 {
			dst = &rres[i-1]
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
	live := newStatusLine(os.Stdout)
	if f, ok := stdout.(*os.File); !ok || f != os.Stdout {
		live.tty = false
	}
	start := time.Now()
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	lastPlain := time.Duration(0)
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
			mu.Lock()
			line := demoLiveLine(time.Since(start), procs)
			mu.Unlock()
			if live.tty {
				live.update("%s", line)
			} else if el := time.Since(start); el-lastPlain >= time.Second && el < o.duration+statsEvery {
				lastPlain = el.Truncate(time.Second)
				fmt.Fprintln(stdout, line)
			}
		}
	}
	live.clear()
	if err := errors.Join(errs...); err != nil {
		return interrupted(err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing the demo log: %s", rootCause(err))
	}
	return demoSummary(stdout, wres, rres)
}

// demoLiveLine is one status line: elapsed time, per-process event rates and the worst reader's
// latency over the last interval.
func demoLiveLine(el time.Duration, procs []*demoProc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs  writer %s/s  readers", el.Seconds(), fmtRate(procs[0].rate()))
	readers := procs[1:]
	var p50, p99 int64
	lo, hi := -1.0, 0.0
	for _, p := range readers {
		r := p.rate()
		if len(readers) <= 4 {
			fmt.Fprintf(&b, " %s", fmtRate(r))
		}
		if lo < 0 || r < lo {
			lo = r
		}
		hi = max(hi, r)
		p50, p99 = max(p50, p.last.P50), max(p99, p.last.P99)
	}
	if len(readers) > 4 {
		fmt.Fprintf(&b, " %s..%s", fmtRate(lo), fmtRate(hi))
	}
	b.WriteString("/s")
	if p50 > 0 {
		fmt.Fprintf(&b, "  latency p50 %s p99 %s", fmtNanos(p50), fmtNanos(p99))
	}
	return b.String()
}

// demoSummary prints the per-process results and the verdict; a reader that missed anything fails
// the command.
func demoSummary(w io.Writer, wr demoWriterResult, rs []demoReaderResult) error {
	fmt.Fprintf(w, "writer    %s events in %.2fs (%s/s)", fmtCount(wr.Events), wr.Seconds, fmtRate(float64(wr.Events)/max(wr.Seconds, 1e-9)))
	if wr.Full {
		fmt.Fprint(w, ", stopped early: the log is full")
	}
	fmt.Fprintln(w)
	var problems []string
	for i, r := range rs {
		order := "in order"
		if r.OutOfOrder > 0 {
			order = fmt.Sprintf("%s out of order", fmtCount(r.OutOfOrder))
		}
		fmt.Fprintf(w, "%s %s events, last seq %s, %s, %s checksum errors, latency p50 %s p99 %s p99.9 %s\n",
			benchPad(fmt.Sprintf("reader %d", i+1), 9), fmtCount(r.Events), fmtCount(r.LastSeq), order,
			fmtCount(r.BadChecksum), fmtNanos(r.P50), fmtNanos(r.P99), fmtNanos(r.P999))
		switch {
		case !r.GotEnd:
			problems = append(problems, fmt.Sprintf("reader %d never saw the end of the stream", i+1))
		case r.Events != wr.Events || r.Announced != wr.Events || r.LastSeq != wr.Events-1:
			problems = append(problems, fmt.Sprintf("reader %d got %s of %s events", i+1, fmtCount(r.Events), fmtCount(wr.Events)))
		case r.OutOfOrder > 0 || r.BadChecksum > 0:
			problems = append(problems, fmt.Sprintf("reader %d saw %d events out of order and %d checksum errors", i+1, r.OutOfOrder, r.BadChecksum))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "FAILED: %s\n", strings.Join(problems, "; "))
		return &exitError{1, errors.New("demo failed: " + problems[0])}
	}
	fmt.Fprintf(w, "OK: every reader got every event (%s each), in order, with intact checksums. Log removed.\n", fmtCount(wr.Events))
	return nil
}
