package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	rpm, itpm, rpmBurst int
	coalesce            int
	linger              time.Duration
	maxAttempts         int
	backoffBase         time.Duration
	backoffMax          time.Duration
	onFatal             string
	input               string
	prices              string
	stream, cacheSystem bool
	batchAPI            bool
	batchSize           int
	batchAge, batchPoll time.Duration
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

A prompt frame is a JSON object {"id","prompt" or "messages","system","model","max_tokens",
"stop_sequences","effort","ts","ttl_ms","metadata"} (ts in Unix milliseconds; messages is a list
of {"role","content"} turns) or plain UTF-8 text taken as the prompt: with --input auto (the
default) any frame that is not a JSON object with "prompt" or "messages" is text, so Go code and
JSON log lines are prompts too. A JSON prompt with an unknown field, or with a setting the API does
not take (temperature, top_p, top_k), gets a rejected outcome saying why, keeping its id and
metadata. "shmio prompt" writes one and waits for its outcome.

Logs that do not exist are created with --capacity. A path that is a directory (even an empty
one) is read or written as a segmented queue, which never fills up. The checkpoint file holds the input cursor below which every prompt
has its outcome committed; a restarted agent resumes there, and skips prompts whose outcome the
previous run already wrote, so only requests in flight at a crash are sent again (outcome records
carry the input cursor for readers that must drop duplicates).

The API key comes from ANTHROPIC_API_KEY and is never printed; ANTHROPIC_BASE_URL (or --base-url)
points the client at a gateway. SIGINT or SIGTERM stops reading, lets requests in flight finish
for up to --drain-timeout, writes their outcomes and the checkpoint, and exits 0.

Failures are handled by class. Overload and rate limits (429, 529, 5xx, connection errors) put
the whole agent into one shared back-off (the server's retry-after or anthropic-ratelimit reset,
else --backoff-base doubling up to --backoff-max), probing with one request at a time; a prompt
then fails only when its TTL runs out (or after --max-attempts). A 400 caused by one prompt fails
that prompt. Errors of the agent's own configuration (401, 403, unknown --model, a refused
--max-tokens) stop dispatching at once: nothing more is consumed, the checkpoint stays before
the first unanswered prompt, stderr and shmio_agent_fatal{reason} say why, and the agent exits
with status 3 (--on-fatal pause: it waits for SIGTERM first). Restarted with the configuration
fixed, it answers every prompt that waited.`,
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
	f.IntVar(&o.rpm, "rpm", 0, "requests per minute budget, evenly spaced (0: unlimited)")
	f.IntVar(&o.rpmBurst, "rpm-burst", 1, "with --rpm, requests that may go back to back (1: no sliding second exceeds rpm/60)")
	f.IntVar(&o.itpm, "itpm", 0, "input tokens per minute budget (0: unlimited)")
	f.IntVar(&o.coalesce, "coalesce", 1, "merge up to this many prompts into one request")
	f.DurationVar(&o.linger, "linger", 0, "with --coalesce, how long a group waits for more prompts")
	f.IntVar(&o.maxAttempts, "max-attempts", 0, "attempts per prompt through overload and rate limits (0: no cap, the TTL decides)")
	f.DurationVar(&o.backoffBase, "backoff-base", 500*time.Millisecond, "first interval of the shared back-off when the server does not say")
	f.DurationVar(&o.backoffMax, "backoff-max", 30*time.Second, "cap of the shared back-off interval")
	f.StringVar(&o.onFatal, "on-fatal", "exit", `on a fatal API error (bad key, permission, unknown model, refused setting): "exit" with status 3, or "pause" until SIGTERM (then exit 3)`)
	f.DurationVar(&o.requestTimeout, "request-timeout", 5*time.Minute, "timeout of one API attempt")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long requests in flight may finish")
	f.StringVar(&o.input, "input", "auto", `prompt frames: "auto" (a JSON object with "prompt" or "messages" is a JSON prompt, anything else text), "json" or "text"`)
	f.StringVar(&o.prices, "prices", "", `JSON price table overriding the built-in one for cost_usd: {"model or prefix": {"input","output","cache_write","cache_read"}} in USD per million tokens`)
	f.BoolVar(&o.stream, "stream", false, "stream answers: text deltas go to the response log as they arrive, then the outcome (with ttft_ms)")
	f.BoolVar(&o.cacheSystem, "cache-system", true, "mark --system for prompt caching (cache_control), so prompts sharing it read it from the cache")
	f.BoolVar(&o.batchAPI, "batch-api", false, "send prompts through the Message Batches API (half price, answers within 24h); batches in flight are kept in CHECKPOINT.batches and resumed after a restart")
	f.IntVar(&o.batchSize, "batch-size", 1000, "with --batch-api, prompts per batch")
	f.DurationVar(&o.batchAge, "batch-age", time.Minute, "with --batch-api, how long a batch gathers prompts before it is submitted")
	f.DurationVar(&o.batchPoll, "batch-poll", 15*time.Second, "with --batch-api, how often a batch in flight is polled")
	f.StringVar(&o.from, "from", "start", `where to begin without a checkpoint: "start" or "end" of the prompt log`)
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on ADDR/metrics (e.g. :9090)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log every retry")
	for _, name := range []string{"in", "out", "checkpoint"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// agentIO is the agent's input and output opened from paths (logs or queues).
func runAgent(cmd *cobra.Command, o agentOptions) error {
	if o.from != "start" && o.from != "end" {
		return fmt.Errorf(`--from must be "start" or "end", not %q`, o.from)
	}
	if o.maxInFlight < 1 || o.readBatch < 1 || o.coalesce < 1 || o.maxTokens < 1 {
		return errors.New("--max-in-flight, --read-batch, --coalesce and --max-tokens must be at least 1")
	}
	if o.maxAttempts < 0 || o.backoffBase <= 0 || o.backoffMax < o.backoffBase {
		return errors.New("--max-attempts must not be negative, --backoff-base must be positive and at most --backoff-max")
	}
	formats := map[string]agent.Format{"auto": agent.FormatAuto, "json": agent.FormatJSON, "text": agent.FormatText}
	format, ok := formats[o.input]
	if !ok {
		return fmt.Errorf(`--input must be "auto", "json" or "text", not %q`, o.input)
	}
	if o.batchSize < 1 || o.batchAge <= 0 || o.batchPoll <= 0 {
		return errors.New("--batch-size, --batch-age and --batch-poll must be positive")
	}
	if o.batchAPI && (o.client != "anthropic" || o.stream || o.coalesce > 1) {
		return errors.New("--batch-api needs --client anthropic, and does not go with --stream or --coalesce")
	}
	if o.onFatal != "exit" && o.onFatal != "pause" {
		return fmt.Errorf(`--on-fatal must be "exit" or "pause", not %q`, o.onFatal)
	}
	if o.rpm < 0 || o.itpm < 0 || o.rpmBurst < 1 || o.ttl < 0 || o.linger < 0 || o.requestTimeout <= 0 || o.drainTimeout < 0 {
		return errors.New("--rpm, --itpm, --ttl, --linger and --drain-timeout must not be negative, --rpm-burst and --request-timeout must be positive")
	}
	var prices map[string]agent.Price
	if o.prices != "" {
		var err error
		if prices, err = agent.LoadPrices(o.prices); err != nil {
			return err
		}
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

	aio, err := agent.OpenLogs(o.in, o.out, int64(o.capacity))
	if pe := (*agent.PathError)(nil); errors.As(err, &pe) {
		if errors.Is(err, shmio.ErrLocked) {
			return writerError(pe.Path, err)
		}
		return openError(pe.Path, pe.Path == o.out, pe.Err)
	} else if err != nil {
		return err
	}
	defer aio.Close()

	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))

	cfg := agent.Config{
		Input: aio.Input, Output: aio.Output, Outcomes: aio.Outcomes, Lag: aio.Lag, Client: client,
		CheckpointPath: o.checkpoint, InputID: aio.InputID, Model: o.model, MaxTokens: o.maxTokens,
		System: o.system, MaxInFlight: o.maxInFlight, ReadMaxFrames: o.readBatch, TTL: o.ttl,
		RequestsPerMinute: o.rpm, RequestBurst: o.rpmBurst, InputTokensPerMinute: o.itpm, MaxAttempts: o.maxAttempts,
		Decoder: agent.NewDecoder(format), Prices: prices, Stream: o.stream, CacheSystem: o.cacheSystem,
		Batch: o.batchAPI, BatchSize: o.batchSize, BatchAge: o.batchAge, BatchPoll: o.batchPoll, BackoffBase: o.backoffBase, BackoffMax: o.backoffMax, PauseOnFatal: o.onFatal == "pause",
		RequestTimeout: o.requestTimeout, Coalesce: o.coalesce, Linger: o.linger,
		DrainTimeout: o.drainTimeout, MaxRecordBytes: aio.MaxRecordBytes, Logger: logger,
	}
	if o.drainTimeout == 0 {
		cfg.DrainTimeout = time.Nanosecond // 0 means the default in agent.Config; the flag means "do not wait"
	}
	if o.from == "end" {
		if _, err := os.Stat(o.checkpoint); errors.Is(err, fs.ErrNotExist) {
			if _, err := aio.Input.Seek(0, io.SeekEnd); err != nil {
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
		if errors.Is(err, agent.ErrFatal) {
			// A distinct code, so a supervisor can tell "fix the configuration" from a crash.
			return &exitError{3, err}
		}
		return err
	}
	s := a.Stats()
	logger.Info("agent summary", "answered", s.Answered, "failed", s.Failed, "expired", s.Expired,
		"rejected", s.Rejected, "refused", s.Refused, "cache_read_tokens", s.CacheReadTokens, "cost_usd", s.CostUSD, "retries", s.Retries, "input_tokens", s.InputTokens, "output_tokens", s.OutputTokens,
		"checkpoint", s.Checkpoint)
	return nil
}

// writerError words a failure to take a log's writer lock.
func writerError(path string, err error) error {
	if errors.Is(err, shmio.ErrLocked) {
		return fmt.Errorf("%s: another process is writing to it (one writer per log)", path)
	}
	return fmt.Errorf("%s: %s", path, rootCause(err))
}
