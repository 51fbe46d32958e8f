package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shmio/shmio/internal/bench"
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

	d, err := bench.NewDemo(bench.DemoConfig{Duration: o.duration, Readers: o.readers, Capacity: int64(o.size), Rate: o.rate, Dir: o.dir})
	if err != nil {
		return err
	}
	defer d.Close() // on every path out, interrupted or not
	fmt.Fprintf(stdout, "shmio demo: 1 writer and %d %s on %s (%s), %s events/s of %d bytes for %v\n",
		o.readers, plural(int64(o.readers), "reader"), d.Path, formatSize(d.Capacity), fmtRate(d.Rate), bench.DemoPayload, o.duration)
	if d.Rate < float64(o.rate) {
		fmt.Fprintf(stdout, "  (rate lowered from %s/s so %v of events fit in %s; raise --size for more)\n", fmtRate(float64(o.rate)), o.duration, formatSize(d.Capacity))
	}

	// The live line: redrawn on a terminal, else a plain line a second while the writer runs.
	status := newStatusLine(os.Stdout)
	if f, ok := stdout.(*os.File); !ok || f != os.Stdout {
		status.tty = false
	}
	lastPlain := time.Duration(0)
	res, err := d.Run(ctx, func(l bench.DemoLive) {
		if status.tty {
			status.update("%s", demoLiveLine(l))
		} else if l.Elapsed-lastPlain >= time.Second && l.Elapsed < o.duration+bench.DemoStatsEvery {
			lastPlain = l.Elapsed.Truncate(time.Second)
			fmt.Fprintln(stdout, demoLiveLine(l))
		}
	})
	status.clear()
	if ctx.Err() != nil {
		return &exitError{130, errors.New("interrupted; children stopped and log removed")}
	}
	if err != nil {
		return err
	}
	return demoSummary(stdout, res)
}

// demoLiveLine is one status line: elapsed time, per-process event rates and the worst reader's
// latency over the last interval.
func demoLiveLine(l bench.DemoLive) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs  writer %s/s  readers", l.Elapsed.Seconds(), fmtRate(l.WriterRate))
	lo, hi := -1.0, 0.0
	for _, r := range l.ReaderRates {
		if len(l.ReaderRates) <= 4 {
			fmt.Fprintf(&b, " %s", fmtRate(r))
		}
		if lo < 0 || r < lo {
			lo = r
		}
		hi = max(hi, r)
	}
	if len(l.ReaderRates) > 4 {
		fmt.Fprintf(&b, " %s..%s", fmtRate(lo), fmtRate(hi))
	}
	b.WriteString("/s")
	if l.P50 > 0 {
		fmt.Fprintf(&b, "  latency p50 %s p99 %s", fmtNanos(l.P50), fmtNanos(l.P99))
	}
	return b.String()
}

// demoSummary prints the per-process results and the verdict; a reader that missed anything fails
// the command.
func demoSummary(w io.Writer, res bench.DemoResult) error {
	wr := res.Writer
	fmt.Fprintf(w, "writer    %s events in %.2fs (%s/s)", fmtCount(wr.Events), wr.Seconds, fmtRate(float64(wr.Events)/max(wr.Seconds, 1e-9)))
	if wr.Full {
		fmt.Fprint(w, ", stopped early: the log is full")
	}
	fmt.Fprintln(w)
	for i, r := range res.Readers {
		order := "in order"
		if r.OutOfOrder > 0 {
			order = fmt.Sprintf("%s out of order", fmtCount(r.OutOfOrder))
		}
		fmt.Fprintf(w, "%s %s events, last seq %s, %s, %s checksum errors, latency p50 %s p99 %s p99.9 %s\n",
			benchPad(fmt.Sprintf("reader %d", i+1), 9), fmtCount(r.Events), fmtCount(r.LastSeq), order,
			fmtCount(r.BadChecksum), fmtNanos(r.P50), fmtNanos(r.P99), fmtNanos(r.P999))
	}
	if problems := res.Problems(); len(problems) > 0 {
		fmt.Fprintf(w, "FAILED: %s\n", strings.Join(problems, "; "))
		return &exitError{1, errors.New("demo failed: " + problems[0])}
	}
	fmt.Fprintf(w, "OK: every reader got every event (%s each), in order, with intact checksums. Log removed.\n", fmtCount(wr.Events))
	return nil
}
