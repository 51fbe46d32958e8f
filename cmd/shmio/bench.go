package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newBenchCmd()) }

type benchOptions struct {
	quick       bool
	json        bool
	size        optionalSize
	frames      int64
	commitEvery int
	fanout      int
	runs        int
	pings       int
	transports  []string
	spin        time.Duration
	dir         string
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
			var sizes []int
			if cmd.Flags().Changed("size") {
				sizes = []int{int(o.size.sizeValue)}
			} else {
				sizes = []int{32, 1024}
			}
			return runBench(cmd.Context(), cmd.OutOrStdout(), o, sizes)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.quick, "quick", false, "small frame counts: the whole run takes a few seconds")
	f.BoolVar(&o.json, "json", false, "write machine-readable results as JSON")
	f.Var(&o.size, "size", "payload size in bytes (8 to 65531; default: both 32 and 1KiB)")
	f.Int64Var(&o.frames, "frames", 0, "frames per throughput run (default 10M for 32 B, 1M for 1 KiB; 200k/32k with --quick)")
	f.IntVar(&o.commitEvery, "commit-every", 1000, "commit (shmio) or flush (streams) every N frames")
	f.IntVar(&o.fanout, "fanout", 3, "readers in the fan-out runs")
	f.IntVar(&o.runs, "runs", 1, "measure everything this many times and report the median run of each row")
	f.IntVar(&o.pings, "pings", 0, "measured round trips per latency run (default 50000; 2000 with --quick)")
	f.StringSliceVar(&o.transports, "transports", []string{"shmio", "ceiling", "unix", "pipe", "tcp"}, "throughput transports to run (ceiling: a bare loop over a raw mapping, see bench_ceiling.go)")
	f.DurationVar(&o.spin, "spin", 0, "shmio consumers' Wait spin before sleeping, negative to sleep at once (default: the library's when every process has a CPU, else sleep at once)")
	f.StringVar(&o.dir, "dir", "", "directory for the benchmark logs (default /dev/shm, else the temp dir)")
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

// benchResult is one row of the table and of the JSON output.
type benchResult struct {
	Kind      string  `json:"kind"`      // throughput or latency
	Transport string  `json:"transport"` // shmio, unix, pipe, tcp; latency: shmio-spin, shmio-futex, unix
	Size      int     `json:"size"`
	Readers   int     `json:"readers"`
	Frames    int64   `json:"frames"` // throughput: frames sent; latency: measured round trips
	Seconds   float64 `json:"seconds,omitempty"`
	// ProducerSeconds is how long the producer took to send everything (readers may finish later).
	ProducerSeconds float64 `json:"producer_seconds,omitempty"`
	// CPUSeconds is the CPU time all processes of the run used, start-up included: on a loaded
	// machine the rate varies with what else runs, the CPU cost much less.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	// CPU nanoseconds per frame spent sending (producer) and receiving and checking (average
	// consumer), measured inside the processes around the transfer only.
	ProducerCPUPerFrame float64 `json:"producer_cpu_ns_per_frame,omitempty"`
	ConsumerCPUPerFrame float64 `json:"consumer_cpu_ns_per_frame,omitempty"`
	// Throughput: frames (payload bytes) the producer sent per second, until the last reader had all of
	// them. Each reader receives every frame, so deliveries per second are Readers times this.
	FramesPerSec float64 `json:"frames_per_sec,omitempty"`
	BytesPerSec  float64 `json:"bytes_per_sec,omitempty"`
	// Latency: one-way, nanoseconds.
	P50  int64 `json:"p50_ns,omitempty"`
	P99  int64 `json:"p99_ns,omitempty"`
	P999 int64 `json:"p999_ns,omitempty"`
	Max  int64 `json:"max_ns,omitempty"`
	// Runs is how many times the row was measured; the figures are those of the median run.
	Runs int `json:"runs"`
	// ConsumerSpin is the shmio consumers' IteratorOptions.Spin (0: the library default).
	ConsumerSpin time.Duration `json:"consumer_spin_ns,omitempty"`
	// VsSocket: throughput / Unix socket throughput, or socket p50 / this p50; 0 when unknown.
	VsSocket  float64          `json:"vs_socket"`
	VsCeiling float64          `json:"vs_ceiling"` // throughput / the ceiling row's (bench_ceiling.go); 0 when unknown
	Verified  bool             `json:"verified"`
	Consumers []consumerReport `json:"consumers"`
	Error     string           `json:"error,omitempty"`
}

// consumerReport is one consumer's verification.
type consumerReport struct {
	Frames   int64  `json:"frames"`
	Gaps     int64  `json:"gaps"`
	Bad      int64  `json:"bad"`
	FirstBad string `json:"first_bad,omitempty"`
	Verified bool   `json:"verified"`
}

type machineInfo struct {
	OS     string `json:"os"`
	Arch   string `json:"arch"`
	CPUs   int    `json:"cpus"`
	CPU    string `json:"cpu,omitempty"`
	Kernel string `json:"kernel,omitempty"`
	Go     string `json:"go"`
}

type benchReport struct {
	Machine     machineInfo   `json:"machine"`
	Quick       bool          `json:"quick"`
	CommitEvery int           `json:"commit_every"`
	LogDir      string        `json:"log_dir"`
	Results     []benchResult `json:"results"`
	Verified    bool          `json:"verified"`               // every consumer of every run verified its data
	LoadAverage float64       `json:"load_average,omitempty"` // 1-minute load average at the start
}

func benchMachine() machineInfo {
	m := machineInfo{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// defaultFrames keeps a full run near a second per row and a log under 1 GiB.
func defaultFrames(size int, quick bool) int64 {
	if quick {
		return min(200_000, (32<<20)/int64(size+8))
	}
	return min(10_000_000, (1<<30)/int64(size+8))
}

// logCapacity fits n frames of size bytes with room for any header and frame format.
func logCapacity(n int64, size int) int64 { return n*int64(size+8) + 1<<20 }

type bencher struct {
	o       *benchOptions
	dir     string // logs
	sockDir string // Unix socket files
	nlogs   int
	status  *statusLine
	step    int
	steps   int
}

func runBench(ctx context.Context, stdout io.Writer, o *benchOptions, sizes []int) error {
	for _, s := range sizes {
		if s < 8 || s > 65531 {
			return fmt.Errorf("invalid --size %s: want 8 to 65531 bytes (8 for the sequence number; 65531 is the largest frame of a Node-compatible log and fits the 64 KiB stream buffers)", benchSize(s))
		}
	}
	if o.commitEvery < 1 {
		return fmt.Errorf("invalid --commit-every %d: want at least 1", o.commitEvery)
	}
	if o.runs < 1 {
		return fmt.Errorf("invalid --runs %d: want at least 1", o.runs)
	}
	if o.fanout < 1 {
		return fmt.Errorf("invalid --fanout %d: want at least 1", o.fanout)
	}
	if o.frames < 0 || o.pings < 0 {
		return errors.New("invalid --frames/--pings: want a positive count")
	}
	for _, t := range o.transports {
		if !slices.Contains([]string{"shmio", "ceiling", "unix", "pipe", "tcp"}, t) {
			return fmt.Errorf("invalid --transports %q: want shmio, ceiling, unix, pipe or tcp", t)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	b := &bencher{o: o, status: newStatusLine(os.Stderr)}
	defer b.status.clear()
	var maxLog int64
	for _, s := range sizes {
		maxLog = max(maxLog, logCapacity(b.frames(s), s))
	}
	b.dir = o.dir
	if b.dir == "" {
		b.dir = defaultLogDir(maxLog)
	}
	var err error
	if b.sockDir, err = os.MkdirTemp("", "shmio-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.sockDir)

	readerCounts := []int{1}
	if o.fanout != 1 {
		readerCounts = append(readerCounts, o.fanout)
	}
	b.steps = len(sizes) * (len(readerCounts)*len(o.transports) + 3) * o.runs
	rep := benchReport{Machine: benchMachine(), Quick: o.quick, CommitEvery: o.commitEvery, LogDir: b.dir}
	rep.LoadAverage, _ = machineLoad()
	for _, size := range sizes {
		for _, readers := range readerCounts {
			for _, t := range o.transports {
				r := b.repeat(func() benchResult { return b.throughput(ctx, t, size, readers) })
				rep.Results = append(rep.Results, r)
				if ctx.Err() != nil {
					return &exitError{130, errors.New("interrupted; children stopped and logs removed")}
				}
			}
		}
		for _, mode := range []string{"shmio-spin", "shmio-futex", "unix"} {
			r := b.repeat(func() benchResult { return b.latency(ctx, mode, size) })
			rep.Results = append(rep.Results, r)
			if ctx.Err() != nil {
				return &exitError{130, errors.New("interrupted; children stopped and logs removed")}
			}
		}
	}
	b.status.clear()
	fillRatios(rep.Results)
	fillCeilingRatios(rep.Results)
	failed := benchFailures(rep.Results)
	rep.Verified = len(failed) == 0
	if o.json {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printBenchTable(stdout, &rep, sizes, b)
	}
	if len(failed) > 0 {
		return &exitError{1, fmt.Errorf("%d run(s) failed verification; first: %s", len(failed), failed[0])}
	}
	return nil
}

// benchFailures describes every run whose consumers did not all verify their data.
func benchFailures(rs []benchResult) []string {
	var failed []string
	for _, r := range rs {
		if !r.Verified {
			failed = append(failed, fmt.Sprintf("%s %s %s, %d reader(s): %s", r.Kind, r.Transport, benchSize(r.Size), r.Readers, r.failure()))
		}
	}
	return failed
}

// repeat runs one measurement --runs times and returns the median run (by frames/s, or by p50
// for latency), whole, so each row's figures come from one run. Any failed run fails the row.
func (b *bencher) repeat(run func() benchResult) benchResult {
	rs := make([]benchResult, 0, b.o.runs)
	for range b.o.runs {
		r := run()
		if !r.Verified {
			r.Runs = len(rs) + 1
			return r
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(x, y benchResult) int {
		if x.Kind == "latency" {
			return cmp.Compare(x.P50, y.P50)
		}
		return cmp.Compare(x.FramesPerSec, y.FramesPerSec)
	})
	m := rs[len(rs)/2]
	m.Runs = len(rs)
	return m
}

func (b *bencher) frames(size int) int64 {
	if b.o.frames > 0 {
		return b.o.frames
	}
	return defaultFrames(size, b.o.quick)
}

// oversubscribedSpin is the shmio consumers' Spin when a run has more processes than CPUs: a
// spinning reader then takes CPU from the producer it waits for. Sleeping at once (negative) did
// as well as or better than 2µs and 20µs spins with 3 readers on 2 CPUs (median of 6 runs each).
const oversubscribedSpin = time.Duration(-1)

func (b *bencher) consumerSpin(readers int) time.Duration {
	switch {
	case b.o.spin != 0:
		return b.o.spin
	case readers+1 > runtime.NumCPU():
		return oversubscribedSpin
	default:
		return 0
	}
}

func (b *bencher) pings() (count, warmup int) {
	switch {
	case b.o.pings > 0:
		return b.o.pings, min(1000, b.o.pings/10)
	case b.o.quick:
		return 2000, 200
	default:
		return 50_000, 2000
	}
}

func (b *bencher) progress(what string) {
	b.step++
	b.status.update("bench [%d/%d] %s ...", b.step, b.steps, what)
	progressLine(os.Stderr, b.status.tty, b.step, b.steps, what)
}

// runTimeout bounds one run so a wedged child cannot hang the command (or the test suite).
func runTimeout(frames int64, size int) time.Duration {
	return 30*time.Second + time.Duration(frames*int64(size+4)/(20<<20))*time.Second
}

// createLog makes a fresh log file for one run; the caller removes it.
func (b *bencher) createLog(capacity int64) (string, error) {
	b.nlogs++
	path := tempLogPath(b.dir, "bench", b.nlogs)
	os.Remove(path) // a leftover from a killed run with a recycled pid
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: capacity, Writable: true})
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("creating benchmark log: %w", err)
	}
	if err := l.Close(); err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

func (b *bencher) throughput(ctx context.Context, transport string, size, readers int) benchResult {
	n := b.frames(size)
	res := benchResult{Kind: "throughput", Transport: transport, Size: size, Readers: readers, Frames: n}
	b.progress(fmt.Sprintf("throughput %s, %s frames, %d reader(s)", transport, benchSize(size), readers))
	limit := runTimeout(n, size)
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("gave up after %v", limit))
	defer cancel()
	var children []*childProc
	defer func() { killAll(children) }()

	var prodFiles, consFiles []*os.File
	var prodRole, consRole string
	var prodCfg, consCfg any
	if transport == "shmio" {
		path, err := b.createLog(logCapacity(n, size))
		if err != nil {
			return res.fail(err)
		}
		defer os.Remove(path)
		res.ConsumerSpin = b.consumerSpin(readers)
		cfg := shmConfig{Path: path, Frames: n, Size: size, CommitEvery: b.o.commitEvery, Spin: res.ConsumerSpin, Batch: 256}
		prodRole, consRole, prodCfg, consCfg = "shm-producer", "shm-consumer", cfg, cfg
	} else if transport == "ceiling" {
		path, cfg, err := b.ceilingSetup(n, size, readers)
		if err != nil {
			return res.fail(err)
		}
		defer os.Remove(path)
		prodRole, consRole, prodCfg, consCfg = "ceiling-producer", "ceiling-consumer", cfg, cfg
	} else {
		var err error
		prodFiles, consFiles, err = streamPairs(transport, readers, b.sockDir)
		if err != nil {
			return res.fail(err)
		}
		defer func() {
			for _, f := range append(prodFiles, consFiles...) {
				f.Close()
			}
		}()
		cfg := streamConfig{Transport: transport, Frames: n, Size: size, CommitEvery: b.o.commitEvery, Conns: readers}
		prodRole, consRole, prodCfg, consCfg = "stream-producer", "stream-consumer", cfg, cfg
	}

	consumers := make([]*childProc, readers)
	for i := range readers {
		var files []*os.File
		if consFiles != nil {
			files = consFiles[i : i+1]
		}
		c, err := startChild(ctx, fmt.Sprintf("%s consumer %d", transport, i+1), consRole, consCfg, files...)
		if err != nil {
			return res.fail(err)
		}
		consumers[i] = c
		children = append(children, c)
		if consFiles != nil {
			consFiles[i].Close() // the child has its copy; ours would keep a pipe open past the writer
		}
	}
	for _, c := range consumers {
		if err := c.waitReady(ctx); err != nil {
			return res.fail(err)
		}
	}
	prod, err := startChild(ctx, transport+" producer", prodRole, prodCfg, prodFiles...)
	if err != nil {
		return res.fail(err)
	}
	children = append(children, prod)
	for _, f := range prodFiles {
		f.Close()
	}
	if err := prod.waitReady(ctx); err != nil {
		return res.fail(err)
	}
	var pr producerResult
	if err := prod.result(ctx, &pr, nil); err != nil {
		return res.fail(err)
	}
	res.Verified = true
	end, consCPU := pr.EndNs, int64(0)
	for _, c := range consumers {
		var cr consumerResult
		if err := c.result(ctx, &cr, nil); err != nil {
			return res.fail(err)
		}
		ok := cr.verified(n)
		res.Verified = res.Verified && ok
		res.Consumers = append(res.Consumers, consumerReport{Frames: cr.Frames, Gaps: cr.Gaps, Bad: cr.Bad, FirstBad: cr.FirstBad, Verified: ok})
		end = max(end, cr.EndNs)
		consCPU += cr.CPUNs
	}
	if n > 0 {
		res.ProducerCPUPerFrame = float64(pr.CPUNs) / float64(n)
		res.ConsumerCPUPerFrame = float64(consCPU) / float64(readers) / float64(n)
	}
	res.CPUSeconds = childrenCPU(children)
	elapsed := float64(end-pr.StartNs) / 1e9
	res.ProducerSeconds = float64(pr.EndNs-pr.StartNs) / 1e9
	if elapsed > 0 {
		res.Seconds = elapsed
		res.FramesPerSec = float64(n) / elapsed
		res.BytesPerSec = float64(n) * float64(size) / elapsed
	}
	return res
}

func (b *bencher) latency(ctx context.Context, mode string, size int) benchResult {
	count, warmup := b.pings()
	res := benchResult{Kind: "latency", Transport: mode, Size: size, Readers: 1, Frames: int64(count)}
	b.progress(fmt.Sprintf("latency %s, %s frames", mode, benchSize(size)))
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
		if cfg.PathAB, err = b.createLog(capacity); err != nil {
			return res.fail(err)
		}
		defer os.Remove(cfg.PathAB)
		if cfg.PathBA, err = b.createLog(capacity); err != nil {
			return res.fail(err)
		}
		defer os.Remove(cfg.PathBA)
	default:
		cfg.Mode = "unix"
		var err error
		if pingFiles, pongFiles, err = streamPairs("unix", 1, b.sockDir); err != nil {
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
	res.Consumers = []consumerReport{
		{Frames: total, Gaps: pr.Gaps, Bad: pr.Bad, Verified: pingOK},
		{Frames: po.Frames, Gaps: po.Gaps, Bad: po.Bad, Verified: pongOK},
	}
	res.Verified = pingOK && pongOK
	res.CPUSeconds = childrenCPU(children)
	res.P50, res.P99, res.P999, res.Max = pr.P50, pr.P99, pr.P999, pr.Max
	return res
}

func childrenCPU(cs []*childProc) float64 {
	var d time.Duration
	for _, c := range cs {
		d += c.cpu()
	}
	return d.Seconds()
}

func (r benchResult) fail(err error) benchResult {
	r.Verified = false
	r.Error = err.Error()
	return r
}

// failure describes why a run is not verified.
func (r benchResult) failure() string {
	if r.Error != "" {
		return r.Error
	}
	for i, c := range r.Consumers {
		if !c.Verified {
			s := fmt.Sprintf("consumer %d got %d of %d frames, %d gaps, %d damaged", i+1, c.Frames, r.Frames, c.Gaps, c.Bad)
			if c.FirstBad != "" {
				s += " (first: " + c.FirstBad + ")"
			}
			return s
		}
	}
	return "not verified"
}

// fillRatios sets VsSocket from the Unix socket row with the same kind, size and readers.
func fillRatios(rs []benchResult) {
	for i := range rs {
		r := &rs[i]
		for _, s := range rs {
			if s.Kind != r.Kind || s.Transport != "unix" || s.Size != r.Size || s.Readers != r.Readers {
				continue
			}
			switch {
			case r.Kind == "throughput" && s.FramesPerSec > 0:
				r.VsSocket = r.FramesPerSec / s.FramesPerSec
			case r.Kind == "latency" && r.P50 > 0 && s.P50 > 0:
				r.VsSocket = float64(s.P50) / float64(r.P50)
			}
		}
	}
}

func printBenchTable(w io.Writer, rep *benchReport, sizes []int, b *bencher) {
	m := rep.Machine
	cpu := m.CPU
	if cpu == "" {
		cpu = m.Arch
	}
	fmt.Fprint(w, loadNote(rep.LoadAverage, m.CPUs))
	fmt.Fprintf(w, "shmio bench: %d CPUs (%s), %s/%s, %s; logs in %s\n", m.CPUs, cpu, m.OS, m.Arch, m.Go, rep.LogDir)
	var counts []string
	for _, s := range sizes {
		counts = append(counts, fmt.Sprintf("%s frames of %s", fmtCount(b.frames(s)), benchSize(s)))
	}
	pings, _ := b.pings()
	fmt.Fprintf(w, "throughput: %s, commit/flush every %d frames; latency: %s round trips, one-way = half\n",
		strings.Join(counts, ", "), rep.CommitEvery, fmtCount(int64(pings)))
	if b.o.runs > 1 {
		fmt.Fprintf(w, "each row: the median of %d runs\n", b.o.runs)
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
		ratio := dash
		if r.VsSocket > 0 {
			ratio = fmt.Sprintf("%.2fx", r.VsSocket)
		}
		check := "ok"
		if !r.Verified {
			check = "FAILED: " + r.failure()
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Transport, benchSize(r.Size),
			r.Readers, rate, bytes, p50, p99, p999, ratio, fmtRatio(r.VsCeiling), check)
	}
	tw.Flush()
	if goals := benchGoals(rep.Results, b.o.fanout); len(goals) > 0 {
		fmt.Fprintln(w, "\ngoals:")
		for _, g := range goals {
			fmt.Fprintln(w, "  "+g)
		}
	}
}

// benchSize prints a payload size for the table: 32 B, 1 KiB, 1000 B.
func benchSize(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// benchGoals reports the project's goal figures for this machine (reported, never asserted).
func benchGoals(rs []benchResult, fanout int) []string {
	find := func(kind, transport string, size, readers int) *benchResult {
		for i := range rs {
			r := &rs[i]
			if r.Kind == kind && r.Transport == transport && r.Size == size && r.Readers == readers && r.Verified {
				return r
			}
		}
		return nil
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "below goal"
	}
	out := ceilingGoals(rs, fanout)
	if r := find("throughput", "shmio", 32, 1); r != nil && r.VsSocket > 0 {
		out = append(out, fmt.Sprintf("32 B, 1 reader: %.2fx the socket's frames/s (goal >= 3x): %s", r.VsSocket, socketGoal(rs, r, 3)))
	}
	if fanout == 3 {
		if r := find("throughput", "shmio", 32, 3); r != nil && r.VsSocket > 0 {
			out = append(out, fmt.Sprintf("32 B, 3 readers: %.2fx the socket's frames/s (goal >= 6x): %s", r.VsSocket, socketGoal(rs, r, 6)))
		}
	}
	if r := find("throughput", "shmio", 1024, 1); r != nil && r.VsSocket > 0 {
		out = append(out, fmt.Sprintf("1 KiB, 1 reader: %.2fx the socket's bytes/s (goal >= 3x): %s", r.VsSocket, socketGoal(rs, r, 3)))
	}
	if r := find("latency", "shmio-spin", 32, 1); r != nil {
		out = append(out, fmt.Sprintf("32 B spinning one-way p50 %s (goal < 1µs): %s", fmtNanos(r.P50), mark(r.P50 < 1000)))
	}
	if r, s := find("latency", "shmio-futex", 32, 1), find("latency", "unix", 32, 1); r != nil && s != nil {
		out = append(out, fmt.Sprintf("32 B futex one-way p50 %s vs socket %s (goal: no worse): %s", fmtNanos(r.P50), fmtNanos(s.P50), mark(r.P50 <= s.P50)))
	}
	return out
}
