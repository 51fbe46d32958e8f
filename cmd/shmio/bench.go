package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/shmio/shmio/internal/bench"
	"github.com/spf13/cobra"
)

func init() { register(newBenchCmd()) }

type benchOptions struct {
	bench.Config
	json bool
	size optionalSize
}

func newBenchCmd() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Compare shmio with a Unix socket, a pipe and loopback TCP between processes",
		Long: `bench measures, each time between separate processes on this machine:

  throughput  producer -> consumer frames/s and bytes/s for shmio, a Unix domain socket, a pipe
              and loopback TCP, with 1 reader and with --fanout readers (every reader gets every frame);
              shmio commits, the others flush a 64 KiB buffered writer, every --commit-every frames
  ceiling     the same frames and checks done by a bare loop over a raw shared mapping, without
              the library: what this machine allows; VS CEILING is each row's ratio to it
  latency     one-way latency (half a ping-pong round trip), p50/p99/p99.9, for shmio with spinning
              readers, shmio with readers sleeping on a futex, and the Unix socket

for 32 B and 1 KiB payloads (or only --size). Every consumer checks every frame's sequence number, so a
fast wrong answer cannot win; the command fails if any consumer saw a gap or a damaged frame.
The VS SOCKET column is the ratio to the Unix socket (for latency: socket p50 / this p50).`,
		Example: `  shmio bench                 # full run, about half a minute
  shmio bench --quick         # a few seconds, small frame counts
  shmio bench --size 1KiB --frames 2000000 --json > results.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Sizes = []int{32, 1024}
			if cmd.Flags().Changed("size") {
				o.Sizes = []int{int(o.size.sizeValue)}
			}
			return runBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Quick, "quick", false, "small frame counts: the whole run takes a few seconds")
	f.BoolVar(&o.json, "json", false, "write machine-readable results as JSON")
	f.Var(&o.size, "size", "payload size in bytes (8 to 65531; default: both 32 and 1KiB)")
	f.Int64Var(&o.Frames, "frames", 0, "frames per throughput run (default 10M for 32 B, 1M for 1 KiB; 200k/32k with --quick)")
	f.IntVar(&o.CommitEvery, "commit-every", 1000, "commit (shmio) or flush (streams) every N frames")
	f.IntVar(&o.Fanout, "fanout", 3, "readers in the fan-out runs")
	f.IntVar(&o.Runs, "runs", 1, "measure every row this many times, in alternating rounds, and report its median run (VS CEILING: the median of the rounds' ratios)")
	f.IntVar(&o.Pings, "pings", 0, "measured round trips per latency run (default 50000; 2000 with --quick)")
	f.StringSliceVar(&o.Transports, "transports", slices.Clone(bench.DefaultTransports), "throughput transports to run (ceiling: a bare loop over a raw mapping, see internal/bench/ceiling.go)")
	f.DurationVar(&o.Spin, "spin", 0, "shmio consumers' Wait spin before sleeping, negative to sleep at once (default: the library's when every process has a CPU, else sleep at once)")
	f.StringVar(&o.Dir, "dir", "", "directory for the benchmark logs (default /dev/shm, else the temp dir)")
	return cmd
}

// optionalSize is a size flag whose default is "not given" (bench then runs both 32 B and 1 KiB).
type optionalSize struct{ sizeValue }

func (v *optionalSize) String() string {
	if v.sizeValue == 0 {
		return ""
	}
	return v.sizeValue.String()
}

func runBench(ctx context.Context, stdout io.Writer, o *benchOptions) error {
	for _, s := range o.Sizes {
		if s < bench.MinSize || s > bench.MaxSize {
			return fmt.Errorf("invalid --size %s: want 8 to 65531 bytes (8 for the sequence number; 65531 is the largest frame of a Node-compatible log and fits the 64 KiB stream buffers)", bench.FormatSize(s))
		}
	}
	switch {
	case o.CommitEvery < 1:
		return fmt.Errorf("invalid --commit-every %d: want at least 1", o.CommitEvery)
	case o.Runs < 1:
		return fmt.Errorf("invalid --runs %d: want at least 1", o.Runs)
	case o.Fanout < 1:
		return fmt.Errorf("invalid --fanout %d: want at least 1", o.Fanout)
	case o.Frames < 0 || o.Pings < 0:
		return errors.New("invalid --frames/--pings: want a positive count")
	}
	for _, t := range o.Transports {
		if !bench.KnownTransport(t) {
			known := bench.DefaultTransports
			return fmt.Errorf("invalid --transports %q: want %s or %s", t, strings.Join(known[:len(known)-1], ", "), known[len(known)-1])
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	status := newStatusLine(os.Stderr)
	defer status.clear()
	rep, err := bench.Run(ctx, o.Config, func(s bench.Step) {
		status.update("bench [%d/%d] %s ...", s.N, s.Of, s.What)
		progressLine(os.Stderr, status.tty, s)
	})
	if ctx.Err() != nil {
		return &exitError{130, errors.New("interrupted; children stopped and logs removed")}
	}
	if err != nil {
		return err
	}
	status.clear()
	if o.json {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printBenchTable(stdout, &rep, o)
	}
	if failed := bench.Failures(rep.Results); len(failed) > 0 {
		return &exitError{1, fmt.Errorf("%d run(s) failed verification; first: %s", len(failed), failed[0])}
	}
	return nil
}

func printBenchTable(w io.Writer, rep *bench.Report, o *benchOptions) {
	m := rep.Machine
	cpu := m.CPU
	if cpu == "" {
		cpu = m.Arch
	}
	fmt.Fprint(w, loadNote(rep.LoadAverage, m.CPUs))
	goVersion := m.Go
	if m.PGO != "" {
		goVersion += " with PGO (" + m.PGO + ")"
	}
	fmt.Fprintf(w, "shmio bench: %d CPUs (%s), %s/%s, %s; logs in %s\n", m.CPUs, cpu, m.OS, m.Arch, goVersion, rep.LogDir)
	var counts []string
	for _, s := range o.Sizes {
		counts = append(counts, fmt.Sprintf("%s frames of %s", fmtCount(o.FramesFor(s)), fmtSize(s)))
	}
	pings, _ := o.PingCounts()
	fmt.Fprintf(w, "throughput: %s, commit/flush every %d frames; latency: %s round trips, one-way = half\n",
		strings.Join(counts, ", "), rep.CommitEvery, fmtCount(int64(pings)))
	if o.Runs > 1 {
		fmt.Fprintf(w, "each row: the median of %d runs\n", o.Runs)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TEST\tSIZE\tREADERS\tFRAMES/S\tBYTES/S\tP50\tP99\tP99.9\tVS SOCKET\tVS CEILING\tCHECK")
	dash := "-"
	for _, r := range rep.Results {
		rate, bytes, p50, p99, p999 := dash, dash, dash, dash, dash
		if r.FramesPerSec > 0 {
			rate, bytes = fmtRate(r.FramesPerSec), fmtBytesRate(r.BytesPerSec)
		}
		if r.P50 > 0 {
			p50, p99, p999 = fmtNanos(r.P50), fmtNanos(r.P99), fmtNanos(r.P999)
		}
		check := "ok"
		if !r.Verified {
			check = "FAILED: " + r.Failure()
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Transport, fmtSize(r.Size),
			r.Readers, rate, bytes, p50, p99, p999, fmtRatio(r.VsSocket), fmtRatio(r.VsCeiling), check)
	}
	tw.Flush()
	if goals := bench.Goals(rep.Results, o.Fanout); len(goals) > 0 {
		fmt.Fprintln(w, "\ngoals:")
		for _, g := range goals {
			fmt.Fprintln(w, "  "+g)
		}
	}
}
