package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shmio/shmio"
	"github.com/shmio/shmio/agent"
	"github.com/spf13/cobra"
)

func init() { register(newAgentCmd()) }

type agentOptions struct {
	in, out, checkpoint string
	capacity            sizeValue
	client              string
	model, system       string
	baseURL             string
	maxTokens           int
	maxInFlight         int
	readBatch           int
	ttl                 time.Duration
	rpm, itpm           int
	coalesce            int
	linger              time.Duration
	maxAttempts         int
	requestTimeout      time.Duration
	drainTimeout        time.Duration
	from                string
	metricsAddr         string
	verbose             bool
}

func newAgentCmd() *cobra.Command {
	o := agentOptions{capacity: 64 << 20}
	cmd := &cobra.Command{
		Use:   "agent --in PATH --out PATH --checkpoint FILE",
		Short: "Answer prompts from a log with Claude, writing outcomes to another log",
		Long: `Run the prompt agent: follow the prompt log (--in), send each prompt to the Anthropic Messages
API (or answer locally with --client echo), and append one JSON outcome record per prompt to the
response log (--out): answered, failed, expired or rejected, with the prompt's id and cursor,
the answer, token counts, attempts and latencies.

A prompt frame is JSON {"id","prompt","system","max_tokens","ts","ttl_ms","metadata"} (ts in
Unix milliseconds) or plain UTF-8 text taken as the prompt. "shmio prompt" writes one and waits
for its outcome.

Logs that do not exist are created with --capacity. A path that is a directory (even an empty
one) is read or written as a segmented queue, which never fills up. The checkpoint file holds the input cursor below which every prompt
has its outcome committed; a restarted agent resumes there, and skips prompts whose outcome the
previous run already wrote, so only requests in flight at a crash are sent again (outcome records
carry the input cursor for readers that must drop duplicates).

The API key comes from ANTHROPIC_API_KEY and is never printed; ANTHROPIC_BASE_URL (or --base-url)
points the client at a gateway. SIGINT or SIGTERM stops reading, lets requests in flight finish
for up to --drain-timeout, writes their outcomes and the checkpoint, and exits 0.`,
		Example: `  shmio agent --in /dev/shm/prompts --out /dev/shm/answers --checkpoint agent.cp --client echo
  ANTHROPIC_API_KEY=... shmio agent --in /dev/shm/prompts --out /dev/shm/answers --checkpoint agent.cp \
      --max-in-flight 16 --rpm 50 --ttl 2m --metrics-addr :9090
  shmio agent --in /dev/shm/syslog --out /dev/shm/summaries --checkpoint sum.cp \
      --coalesce 50 --linger 5s --system "Summarise these log lines in three bullet points."`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runAgent(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.in, "in", "", "prompt log (or queue directory) to read")
	f.StringVar(&o.out, "out", "", "response log (or queue directory) to write outcome records to")
	f.StringVar(&o.checkpoint, "checkpoint", "", "cursor file: resume point, rewritten atomically")
	f.Var(&o.capacity, "capacity", "capacity of logs created because they do not exist")
	f.StringVar(&o.client, "client", "anthropic", `"anthropic" (Messages API, needs ANTHROPIC_API_KEY) or "echo" (answers with the prompt)`)
	f.StringVar(&o.model, "model", agent.DefaultModel, "model to ask")
	f.StringVar(&o.system, "system", "", "system prompt for prompts that bring none")
	f.StringVar(&o.baseURL, "base-url", "", "API base URL (default: ANTHROPIC_BASE_URL, else the Anthropic API)")
	f.IntVar(&o.maxTokens, "max-tokens", 1024, "answer cap for prompts without max_tokens")
	f.IntVar(&o.maxInFlight, "max-in-flight", 8, "concurrent API requests")
	f.IntVar(&o.readBatch, "read-batch", 64, "prompt frames read per batch")
	f.DurationVar(&o.ttl, "ttl", 0, "default time to live of a prompt (0: none; a prompt's ttl_ms wins)")
	f.IntVar(&o.rpm, "rpm", 0, "requests per minute budget (0: unlimited)")
	f.IntVar(&o.itpm, "itpm", 0, "input tokens per minute budget (0: unlimited)")
	f.IntVar(&o.coalesce, "coalesce", 1, "merge up to this many prompts into one request")
	f.DurationVar(&o.linger, "linger", 0, "with --coalesce, how long a group waits for more prompts")
	f.IntVar(&o.maxAttempts, "max-attempts", 5, "attempts per prompt, retries of transient failures included")
	f.DurationVar(&o.requestTimeout, "request-timeout", 5*time.Minute, "timeout of one API attempt")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long requests in flight may finish")
	f.StringVar(&o.from, "from", "start", `where to begin without a checkpoint: "start" or "end" of the prompt log`)
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on ADDR/metrics (e.g. :9090)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log every retry")
	for _, name := range []string{"in", "out", "checkpoint"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// agentIO is the agent's input and output opened from paths (logs or queues).
type agentIO struct {
	input    agent.Source
	output   agent.Sink
	outcomes agent.Source
	lag      func(int64) (int64, int64, error)
	inputID  string
	maxRec   int
	closers  []func() error
}

func (x *agentIO) close() {
	for i := len(x.closers) - 1; i >= 0; i-- {
		_ = x.closers[i]()
	}
}

func runAgent(cmd *cobra.Command, o agentOptions) error {
	if o.from != "start" && o.from != "end" {
		return fmt.Errorf(`--from must be "start" or "end", not %q`, o.from)
	}
	if o.maxInFlight < 1 || o.readBatch < 1 || o.maxAttempts < 1 || o.coalesce < 1 || o.maxTokens < 1 {
		return errors.New("--max-in-flight, --read-batch, --max-attempts, --coalesce and --max-tokens must be at least 1")
	}
	if o.rpm < 0 || o.itpm < 0 || o.ttl < 0 || o.linger < 0 || o.requestTimeout <= 0 || o.drainTimeout < 0 {
		return errors.New("--rpm, --itpm, --ttl, --linger and --drain-timeout must not be negative, --request-timeout must be positive")
	}
	var client agent.Client
	clientDesc := o.client
	switch o.client {
	case "echo":
		client = agent.EchoClient{}
	case "anthropic":
		c, err := agent.NewAnthropicClient(agent.AnthropicConfig{BaseURL: o.baseURL, MaxIdleConns: o.maxInFlight})
		if errors.Is(err, agent.ErrNoAPIKey) {
			return errors.New("no Anthropic API key: set ANTHROPIC_API_KEY, or try the pipeline with --client echo")
		}
		if err != nil {
			return err
		}
		client = c
		clientDesc = "anthropic, model " + o.model
	default:
		return fmt.Errorf(`--client must be "anthropic" or "echo", not %q`, o.client)
	}

	aio, err := openAgentIO(o)
	if err != nil {
		return err
	}
	defer aio.close()

	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))

	cfg := agent.Config{
		Input: aio.input, Output: aio.output, Outcomes: aio.outcomes, Lag: aio.lag, Client: client,
		CheckpointPath: o.checkpoint, InputID: aio.inputID, Model: o.model, MaxTokens: o.maxTokens,
		System: o.system, MaxInFlight: o.maxInFlight, ReadMaxFrames: o.readBatch, TTL: o.ttl,
		RequestsPerMinute: o.rpm, InputTokensPerMinute: o.itpm, MaxAttempts: o.maxAttempts,
		RequestTimeout: o.requestTimeout, Coalesce: o.coalesce, Linger: o.linger,
		DrainTimeout: o.drainTimeout, MaxRecordBytes: aio.maxRec, Logger: logger,
	}
	if o.drainTimeout == 0 {
		cfg.DrainTimeout = time.Nanosecond // 0 means the default in agent.Config; the flag means "do not wait"
	}
	if o.from == "end" {
		if _, err := os.Stat(o.checkpoint); errors.Is(err, fs.ErrNotExist) {
			if _, err := aio.input.Seek(0, io.SeekEnd); err != nil {
				return fmt.Errorf("%s: seek to the end: %w", o.in, err)
			}
		}
	}
	var metrics *agentMetrics
	if o.metricsAddr != "" {
		metrics = newAgentMetrics()
		cfg.Observer = metrics
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if metrics != nil {
		metrics.agent = a
		srv, addr, err := serveMetrics(o.metricsAddr, metrics)
		if err != nil {
			return err
		}
		defer srv.Close()
		logger.Info("serving metrics", "url", "http://"+addr+"/metrics")
	}
	logger.Info("agent", "in", o.in, "out", o.out, "checkpoint", o.checkpoint, "client", clientDesc)
	if err := a.Run(ctx); err != nil {
		return err
	}
	s := a.Stats()
	logger.Info("agent summary", "answered", s.Answered, "failed", s.Failed, "expired", s.Expired,
		"rejected", s.Rejected, "retries", s.Retries, "input_tokens", s.InputTokens, "output_tokens", s.OutputTokens,
		"checkpoint", s.Checkpoint)
	return nil
}

// openAgentIO opens (creating when missing) the prompt and response logs or queues.
func openAgentIO(o agentOptions) (_ *agentIO, err error) {
	aio := &agentIO{}
	defer func() {
		if err != nil {
			aio.close()
		}
	}()
	if isDir(o.in) {
		q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: o.in})
		if errors.Is(err, fs.ErrNotExist) { // an empty directory: make it a queue
			q, err = shmio.OpenQueue(shmio.QueueOptions{Dir: o.in, Writable: true})
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s", o.in, rootCause(err))
		}
		aio.closers = append(aio.closers, q.Close)
		it, err := q.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %s", o.in, rootCause(err))
		}
		aio.closers = append(aio.closers, it.Close)
		aio.input, aio.lag = it, q.Lag
		if abs, err := filepath.Abs(o.in); err == nil {
			aio.inputID = "queue:" + abs
		}
	} else {
		l, err := openOrCreate(o.in, int64(o.capacity), false)
		if err != nil {
			return nil, err
		}
		aio.closers = append(aio.closers, l.Close)
		it, err := l.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %s", o.in, rootCause(err))
		}
		aio.closers = append(aio.closers, it.Close)
		aio.input = it
		if id := l.Header().ID; id != 0 {
			aio.inputID = strconv.FormatUint(id, 16)
		}
	}
	if isDir(o.out) {
		q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: o.out, Writable: true})
		if err != nil {
			return nil, fmt.Errorf("%s: %s", o.out, rootCause(err))
		}
		aio.closers = append(aio.closers, q.Close)
		w, err := q.Writer()
		if err != nil {
			return nil, writerError(o.out, err)
		}
		aio.closers = append(aio.closers, w.Close)
		it, err := q.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %s", o.out, rootCause(err))
		}
		aio.closers = append(aio.closers, it.Close)
		aio.output, aio.outcomes, aio.maxRec = w, it, q.MaxPayload()
	} else {
		l, err := openOrCreate(o.out, int64(o.capacity), true)
		if err != nil {
			return nil, err
		}
		aio.closers = append(aio.closers, l.Close)
		w, err := l.Writer()
		if err != nil {
			return nil, writerError(o.out, err)
		}
		aio.closers = append(aio.closers, w.Close)
		it, err := l.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %s", o.out, rootCause(err))
		}
		aio.closers = append(aio.closers, it.Close)
		aio.output, aio.outcomes, aio.maxRec = w, it, l.MaxPayload()
	}
	return aio, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// openOrCreate opens a log, creating it with capacity when it does not exist.
func openOrCreate(path string, capacity int64, writable bool) (*shmio.Log, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		l, err := shmio.Open(shmio.Options{Path: path, Capacity: capacity, Writable: true})
		if err != nil {
			return nil, openError(path, true, err)
		}
		return l, nil
	}
	return openLog(path, writable, false)
}

// writerError words a failure to take a log's writer lock.
func writerError(path string, err error) error {
	if errors.Is(err, shmio.ErrLocked) {
		return fmt.Errorf("%s: another process is writing to it (one writer per log)", path)
	}
	return fmt.Errorf("%s: %s", path, rootCause(err))
}

// serveMetrics listens on addr and serves the registry at /metrics; it returns the bound address.
func serveMetrics(addr string, m *agentMetrics) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--metrics-addr: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// agentMetrics exports agent.Stats as Prometheus metrics at scrape time, and feeds the latency
// histograms from the agent's Observer hooks.
type agentMetrics struct {
	agent      *agent.Agent
	apiLatency *prometheus.HistogramVec
	e2eLatency *prometheus.HistogramVec
	rateWait   prometheus.Histogram

	prompts, read, recovered, records, requests, retries, inFlight, pending *prometheus.Desc
	tokens, rlWaits, rlWaitSecs, lagBytes, lagFrames, unread                *prometheus.Desc
	checkpoint, readCursor, cpErrors                                        *prometheus.Desc
}

func newAgentMetrics() *agentMetrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("shmio_agent_"+name, help, labels, nil)
	}
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	return &agentMetrics{
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shmio_agent_api_latency_seconds",
			Help: "Latency of API attempts.", Buckets: buckets}, []string{"result"}),
		e2eLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shmio_agent_e2e_latency_seconds",
			Help: "Time from a prompt's ts (or its reading) to its committed outcome.", Buckets: buckets}, []string{"outcome"}),
		rateWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shmio_agent_rate_limit_wait_seconds",
			Help: "Delays imposed by the client-side rate budget.", Buckets: buckets}),
		prompts:    d("prompts_total", "Prompts by outcome.", "outcome"),
		read:       d("prompts_read_total", "Prompt frames read."),
		recovered:  d("prompts_recovered_total", "Prompts skipped at start because a previous run wrote their outcome."),
		records:    d("outcome_records_total", "Outcome records committed."),
		requests:   d("requests_total", "API attempts started."),
		retries:    d("retries_total", "Retries scheduled after transient failures."),
		inFlight:   d("in_flight", "API requests outstanding."),
		pending:    d("pending", "Prompts read whose outcome is not committed yet."),
		tokens:     d("tokens_total", "Tokens reported by the API.", "direction"),
		rlWaits:    d("rate_limit_waits_total", "Sends delayed by the client-side rate budget."),
		rlWaitSecs: d("rate_limit_wait_seconds_total", "Total delay imposed by the client-side rate budget."),
		lagBytes:   d("lag_bytes", "Prompt log bytes from the checkpoint watermark to the committed end."),
		lagFrames:  d("lag_frames", "Prompt frames from the checkpoint watermark to the committed end."),
		unread:     d("unread_bytes", "Prompt log bytes not read yet."),
		checkpoint: d("checkpoint_cursor", "Input cursor in the checkpoint file."),
		readCursor: d("read_cursor", "Input cursor after the last frame read."),
		cpErrors:   d("checkpoint_errors_total", "Failed checkpoint writes."),
	}
}

func (m *agentMetrics) ObserveAttempt(d time.Duration, err error) {
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.apiLatency.WithLabelValues(r).Observe(d.Seconds())
}

func (m *agentMetrics) ObserveOutcome(o *agent.Outcome, prompts int) {
	h := m.e2eLatency.WithLabelValues(string(o.Status))
	for range prompts {
		h.Observe(o.E2EMS / 1000)
	}
}

func (m *agentMetrics) ObserveRateLimitWait(d time.Duration) { m.rateWait.Observe(d.Seconds()) }

func (m *agentMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.apiLatency.Describe(ch)
	m.e2eLatency.Describe(ch)
	m.rateWait.Describe(ch)
	for _, d := range []*prometheus.Desc{m.prompts, m.read, m.recovered, m.records, m.requests, m.retries, m.inFlight,
		m.pending, m.tokens, m.rlWaits, m.rlWaitSecs, m.lagBytes, m.lagFrames, m.unread, m.checkpoint, m.readCursor, m.cpErrors} {
		ch <- d
	}
}

func (m *agentMetrics) Collect(ch chan<- prometheus.Metric) {
	m.apiLatency.Collect(ch)
	m.e2eLatency.Collect(ch)
	m.rateWait.Collect(ch)
	if m.agent == nil {
		return
	}
	s := m.agent.Stats()
	c := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	c(m.prompts, float64(s.Answered), "answered")
	c(m.prompts, float64(s.Failed), "failed")
	c(m.prompts, float64(s.Expired), "expired")
	c(m.prompts, float64(s.Rejected), "rejected")
	c(m.read, float64(s.Read))
	c(m.recovered, float64(s.Recovered))
	c(m.records, float64(s.Records))
	c(m.requests, float64(s.Requests))
	c(m.retries, float64(s.Retries))
	c(m.tokens, float64(s.InputTokens), "input")
	c(m.tokens, float64(s.OutputTokens), "output")
	c(m.rlWaits, float64(s.RateLimitWaits))
	c(m.rlWaitSecs, s.RateLimitWaitTime.Seconds())
	c(m.cpErrors, float64(s.CheckpointErrors))
	g(m.inFlight, float64(s.InFlight))
	g(m.pending, float64(s.Pending))
	g(m.lagBytes, float64(s.LagBytes))
	g(m.lagFrames, float64(s.LagFrames))
	g(m.unread, float64(s.UnreadBytes))
	g(m.checkpoint, float64(s.Checkpoint))
	g(m.readCursor, float64(s.ReadCursor))
}
