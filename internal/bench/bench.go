// Package bench holds the workloads of "shmio bench" and "shmio demo": the child processes that
// write and read logs, the Unix socket, pipe and TCP streams they are compared with, latency
// ping-pong, the statistics, and the verification of every frame. The command parses flags and
// prints; this package computes.
//
// Every measured party is a separate process: the running binary re-executed with ChildArg, which
// its main must hand to ChildMain before anything else.
package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Payload sizes Run accepts: 8 bytes for the sequence number; 65531 is the largest frame of a
// Node-compatible log and fits the 64 KiB stream buffers.
const (
	MinSize = 8
	MaxSize = 65531
)

// DefaultTransports are the throughput transports in the order of the table. "ceiling" is a bare
// loop over a raw shared mapping, without the library (ceiling.go): what this machine allows.
var DefaultTransports = []string{"shmio", "ceiling", "unix", "pipe", "tcp"}

// KnownTransport reports whether name is a throughput transport Run can measure.
func KnownTransport(name string) bool { _, ok := transports[name]; return ok }

// Config is one benchmark: every throughput transport with 1 and Fanout readers, then latency
// with spinning and sleeping shmio readers and the Unix socket, for every size.
type Config struct {
	Sizes       []int
	Quick       bool          // small default counts: the whole run takes a few seconds
	Frames      int64         // per throughput run; 0: the default for the size (FramesFor)
	CommitEvery int           // commit (shmio) or flush (streams) every N frames
	Fanout      int           // readers in the fan-out runs
	Runs        int           // each row is the median of this many runs
	Pings       int           // measured round trips per latency run; 0: the default
	Transports  []string      // throughput transports, from DefaultTransports (or more registered)
	Spin        time.Duration // shmio consumers' Wait spin; 0: chosen per run (see consumerSpin)
	Dir         string        // for the logs; "": DefaultLogDir
}

// FramesFor is the frame count of a throughput run with payloads of size bytes.
func (c Config) FramesFor(size int) int64 {
	if c.Frames > 0 {
		return c.Frames
	}
	return defaultFrames(size, c.Quick)
}

// PingCounts are the measured and the unmeasured (first) round trips of a latency run.
func (c Config) PingCounts() (count, warmup int) {
	switch {
	case c.Pings > 0:
		return c.Pings, min(1000, c.Pings/10)
	case c.Quick:
		return 2000, 200
	default:
		return 50_000, 2000
	}
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

// Step is progress: run N of Of is starting.
type Step struct {
	N, Of int
	What  string // e.g. "throughput shmio, 32 B frames, 1 reader(s)"
}

// Result is one row of the table and of the JSON output.
type Result struct {
	Kind      string  `json:"kind"`      // throughput or latency
	Transport string  `json:"transport"` // shmio, ceiling, unix, pipe, tcp; latency: shmio-spin, shmio-futex, unix
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
	// Context switches per million frames, counted as the CPU per frame is: how often the producer
	// and the average consumer gave up the CPU (waits: futex sleeps, blocking reads and writes),
	// and how often the scheduler took it from any of them (preemptions, all processes summed).
	// They show how each side waits, which decides throughput when processes outnumber CPUs.
	ProducerWaits float64 `json:"producer_waits_per_mframe,omitempty"`
	ConsumerWaits float64 `json:"consumer_waits_per_mframe,omitempty"`
	Preemptions   float64 `json:"preemptions_per_mframe,omitempty"`
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
	VsSocket float64 `json:"vs_socket"`
	// VsCeiling: the median, over the rounds of Runs, of this run's throughput / the ceiling run's
	// of the same round (measured back to back, see runner.rounds); 0 when unknown.
	VsCeiling     float64   `json:"vs_ceiling"`
	CeilingRatios []float64 `json:"ceiling_ratios,omitempty"` // every round's ratio
	// RunsFramesPerSec is every run's throughput, in the order measured: how steady the row is.
	RunsFramesPerSec []float64        `json:"runs_frames_per_sec,omitempty"`
	Verified         bool             `json:"verified"`
	Consumers        []ConsumerReport `json:"consumers"`
	Error            string           `json:"error,omitempty"`
}

// ConsumerReport is one consumer's verification.
type ConsumerReport struct {
	Frames   int64  `json:"frames"`
	Gaps     int64  `json:"gaps"`
	Bad      int64  `json:"bad"`
	FirstBad string `json:"first_bad,omitempty"`
	Verified bool   `json:"verified"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	OS     string `json:"os"`
	Arch   string `json:"arch"`
	CPUs   int    `json:"cpus"`
	CPU    string `json:"cpu,omitempty"`
	Kernel string `json:"kernel,omitempty"`
	Go     string `json:"go"`
	// PGO is the profile the running binary was built with (go build -pgo), "" for none: with
	// cmd/shmio's default.pgo the compiler inlines the hot calls of the bench loops, Writer.Allocate
	// among them, as it would in an application built with its own profile.
	PGO string `json:"pgo,omitempty"`
}

// Report is a whole benchmark, as the JSON output shows it.
type Report struct {
	Machine     Machine  `json:"machine"`
	Quick       bool     `json:"quick"`
	CommitEvery int      `json:"commit_every"`
	LogDir      string   `json:"log_dir"`
	Results     []Result `json:"results"`
	Verified    bool     `json:"verified"`               // every consumer of every run verified its data
	LoadAverage float64  `json:"load_average,omitempty"` // 1-minute load average at the start
}

func machine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
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
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-pgo" {
				m.PGO = filepath.Base(s.Value)
			}
		}
	}
	return m
}

// runner is one Run's state.
type runner struct {
	cfg      Config
	dir      string // logs
	sockDir  string // Unix socket files
	nlogs    int
	step     int
	steps    int
	progress func(Step)
}

// Run measures everything cfg asks for and returns the report, verification included: a run whose
// consumers did not all get every frame intact is a row with Verified false (see Failures), not an
// error. The error is for a config Run cannot start with, and for ctx ending (the report then holds
// the rows done so far); every child is stopped and every log removed before Run returns.
// progress, when not nil, is called as each run starts.
func Run(ctx context.Context, cfg Config, progress func(Step)) (Report, error) {
	if len(cfg.Sizes) == 0 || cfg.CommitEvery < 1 || cfg.Runs < 1 || cfg.Fanout < 1 || cfg.Frames < 0 || cfg.Pings < 0 {
		return Report{}, fmt.Errorf("bench: invalid config %+v", cfg)
	}
	for _, s := range cfg.Sizes {
		if s < MinSize || s > MaxSize {
			return Report{}, fmt.Errorf("bench: invalid size %d: want %d to %d bytes", s, MinSize, MaxSize)
		}
	}
	for _, t := range cfg.Transports {
		if !KnownTransport(t) {
			return Report{}, fmt.Errorf("bench: unknown transport %q", t)
		}
	}
	r := &runner{cfg: cfg, dir: cfg.Dir, progress: progress}
	if r.dir == "" {
		var maxLog int64
		for _, s := range cfg.Sizes {
			maxLog = max(maxLog, logCapacity(cfg.FramesFor(s), s))
		}
		r.dir = DefaultLogDir(maxLog)
	}
	var err error
	if r.sockDir, err = os.MkdirTemp("", "shmio-bench-"); err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(r.sockDir)

	readerCounts := []int{1}
	if cfg.Fanout != 1 {
		readerCounts = append(readerCounts, cfg.Fanout)
	}
	r.steps = len(cfg.Sizes) * (len(readerCounts)*len(cfg.Transports) + 3) * cfg.Runs
	rep := Report{Machine: machine(), Quick: cfg.Quick, CommitEvery: cfg.CommitEvery, LogDir: r.dir, LoadAverage: loadAverage()}
	latencyModes := []string{"shmio-spin", "shmio-futex", "unix"}
	for _, size := range cfg.Sizes {
		for _, readers := range readerCounts {
			runs := r.rounds(ctx, len(cfg.Transports), func(i int) Result { return r.throughput(ctx, cfg.Transports[i], size, readers) })
			rows := medians(runs)
			if c := slices.Index(cfg.Transports, "ceiling"); c >= 0 {
				for i := range rows {
					rows[i].CeilingRatios = pairedRatios(runs[i], runs[c])
					rows[i].VsCeiling = median(rows[i].CeilingRatios)
				}
			}
			rep.Results = append(rep.Results, rows...)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
		runs := r.rounds(ctx, len(latencyModes), func(i int) Result { return r.latency(ctx, latencyModes[i], size) })
		rep.Results = append(rep.Results, medians(runs)...)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	fillRatios(rep.Results)
	fillCeilingRatios(rep.Results)
	rep.Verified = len(Failures(rep.Results)) == 0
	return rep, nil
}

// Failures describes every run whose consumers did not all verify their data.
func Failures(rs []Result) []string {
	var failed []string
	for _, r := range rs {
		if !r.Verified {
			failed = append(failed, fmt.Sprintf("%s %s %s, %d reader(s): %s", r.Kind, r.Transport, FormatSize(r.Size), r.Readers, r.Failure()))
		}
	}
	return failed
}

// rounds measures n rows Config.Runs times each, round by round: every round runs each row once,
// starting one row further than the round before, so that rows measured back to back share the
// load of the moment (this machine's or other programs') and no row always runs first. It returns
// each row's runs in order; a row whose run failed keeps that run and is measured no more.
func (r *runner) rounds(ctx context.Context, n int, run func(i int) Result) [][]Result {
	runs := make([][]Result, n)
	for k := range r.cfg.Runs {
		for j := range n {
			i := (k + j) % n
			if m := len(runs[i]); m > 0 && !runs[i][m-1].Verified {
				continue
			}
			runs[i] = append(runs[i], run(i))
			if ctx.Err() != nil {
				return runs
			}
		}
	}
	return runs
}

// medians returns each row's median run (by frames/s, or by p50 for latency), whole, so each
// row's figures come from one run, with Runs set and the frames/s of every run; a row with a
// failed run is that run.
func medians(runs [][]Result) []Result {
	rows := make([]Result, 0, len(runs))
	for _, rs := range runs {
		if len(rs) == 0 {
			continue
		}
		if last := rs[len(rs)-1]; !last.Verified {
			last.Runs = len(rs)
			rows = append(rows, last)
			continue
		}
		var rates []float64
		for _, r := range rs {
			rates = append(rates, r.FramesPerSec)
		}
		sorted := slices.SortedFunc(slices.Values(rs), func(x, y Result) int {
			if x.Kind == "latency" {
				return cmp.Compare(x.P50, y.P50)
			}
			return cmp.Compare(x.FramesPerSec, y.FramesPerSec)
		})
		m := sorted[len(sorted)/2]
		m.Runs = len(rs)
		if m.Kind == "throughput" {
			m.RunsFramesPerSec = rates
		}
		rows = append(rows, m)
	}
	return rows
}

// pairedRatios divides each verified run's frames/s by that of the ceiling run of the same round
// (measured just before or after it).
func pairedRatios(runs, ceiling []Result) []float64 {
	var ratios []float64
	for k := range min(len(runs), len(ceiling)) {
		if runs[k].Verified && ceiling[k].Verified && ceiling[k].FramesPerSec > 0 {
			ratios = append(ratios, runs[k].FramesPerSec/ceiling[k].FramesPerSec)
		}
	}
	return ratios
}

// median is the middle value (the upper one of an even count, as for rows); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// oversubscribedSpin is the shmio consumers' Spin when a run has more processes than CPUs: a
// spinning reader then takes CPU from the producer it waits for. Sleeping at once (negative) did
// as well as or better than 2µs and 20µs spins with 3 readers on 2 CPUs (median of 6 runs each).
const oversubscribedSpin = time.Duration(-1)

func (r *runner) consumerSpin(readers int) time.Duration {
	switch {
	case r.cfg.Spin != 0:
		return r.cfg.Spin
	case readers+1 > runtime.NumCPU():
		return oversubscribedSpin
	default:
		return 0
	}
}

func (r *runner) report(what string) {
	r.step++
	if r.progress != nil {
		r.progress(Step{N: r.step, Of: r.steps, What: what})
	}
}

// newLog makes a fresh log file for one run; the caller removes it.
func (r *runner) newLog(capacity int64) (string, error) {
	r.nlogs++
	path := tempLogPath(r.dir, "bench", r.nlogs)
	if _, err := createLog("benchmark log", path, capacity); err != nil {
		return "", err
	}
	return path, nil
}

func childrenCPU(cs []*childProc) float64 {
	var d time.Duration
	for _, c := range cs {
		d += c.cpu()
	}
	return d.Seconds()
}

func (r Result) fail(err error) Result {
	r.Verified = false
	r.Error = err.Error()
	return r
}

// Failure describes why a run is not verified.
func (r Result) Failure() string {
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
func fillRatios(rs []Result) {
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

// Goals reports the project's goal figures for this machine (reported, never asserted); fanout is
// Config.Fanout. Throughput is judged against the bare-loop ceiling of the same run (goal: at least
// 0.8 of it) and against the socket; a socket goal the ceiling itself misses is out of reach here.
func Goals(rs []Result, fanout int) []string {
	find := func(kind, transport string, size, readers int) *Result {
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
	socketGoal := func(r *Result, goal float64) string {
		if c := find(r.Kind, "ceiling", r.Size, r.Readers); r.VsSocket < goal && c != nil && c.VsSocket > 0 && c.VsSocket < goal {
			return fmt.Sprintf("out of reach here: the bare-loop ceiling itself does %.2fx", c.VsSocket)
		}
		return mark(r.VsSocket >= goal)
	}
	var out []string
	for _, g := range []struct{ size, readers int }{{32, 1}, {32, fanout}, {1024, 1}} {
		if r := find("throughput", "shmio", g.size, g.readers); r != nil && r.VsCeiling > 0 && (g.readers == 1 || g.readers == 3) {
			verdict := "at goal"
			if r.VsCeiling < 0.8 {
				verdict = "below goal"
			}
			out = append(out, fmt.Sprintf("%s, %d reader(s): %.2fx the bare-loop ceiling (goal >= 0.8x): %s", FormatSize(g.size), g.readers, r.VsCeiling, verdict))
		}
	}
	if r := find("throughput", "shmio", 32, 1); r != nil && r.VsSocket > 0 {
		out = append(out, fmt.Sprintf("32 B, 1 reader: %.2fx the socket's frames/s (goal >= 3x): %s", r.VsSocket, socketGoal(r, 3)))
	}
	if fanout == 3 {
		if r := find("throughput", "shmio", 32, 3); r != nil && r.VsSocket > 0 {
			out = append(out, fmt.Sprintf("32 B, 3 readers: %.2fx the socket's frames/s (goal >= 6x): %s", r.VsSocket, socketGoal(r, 6)))
		}
	}
	if r := find("throughput", "shmio", 1024, 1); r != nil && r.VsSocket > 0 {
		out = append(out, fmt.Sprintf("1 KiB, 1 reader: %.2fx the socket's bytes/s (goal >= 3x): %s", r.VsSocket, socketGoal(r, 3)))
	}
	if r := find("latency", "shmio-spin", 32, 1); r != nil {
		out = append(out, fmt.Sprintf("32 B spinning one-way p50 %s (goal < 1µs): %s", FormatNanos(r.P50), mark(r.P50 < 1000)))
	}
	if r, s := find("latency", "shmio-futex", 32, 1), find("latency", "unix", 32, 1); r != nil && s != nil {
		out = append(out, fmt.Sprintf("32 B futex one-way p50 %s vs socket %s (goal: no worse): %s", FormatNanos(r.P50), FormatNanos(s.P50), mark(r.P50 <= s.P50)))
	}
	return out
}
