package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shmio/shmio/agent"
)

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
	ttft       prometheus.Histogram

	prompts, read, recovered, records, requests, retries, inFlight, pending *prometheus.Desc
	tokens, rlWaits, rlWaitSecs, lagBytes, lagFrames, unread                *prometheus.Desc
	checkpoint, readCursor, cpErrors                                        *prometheus.Desc
	fatal, backoffLevel, cost, batches                                      *prometheus.Desc
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
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shmio_agent_ttft_seconds",
			Help: "Time to first token of streamed answers (--stream).", Buckets: buckets}),
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
		fatal: d("fatal", "1 once a fatal API error stopped dispatching (reason: authentication_error, permission_error, "+
			"billing_error, model_not_found, invalid_config, ...), else 0 with reason \"\".", "reason"),
		batches:      d("batches_in_flight", "Message batches submitted and not yet delivered (--batch-api)."),
		cost:         d("cost_usd_total", "Estimated cost of the answers, from the price table."),
		backoffLevel: d("backoff_level", "Failed probes of the shared back-off (0: not backed off)."),
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
	if o.TTFTMS > 0 {
		m.ttft.Observe(o.TTFTMS / 1000)
	}
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
	m.ttft.Describe(ch)
	for _, d := range []*prometheus.Desc{m.prompts, m.read, m.recovered, m.records, m.requests, m.retries, m.inFlight,
		m.pending, m.tokens, m.rlWaits, m.rlWaitSecs, m.lagBytes, m.lagFrames, m.unread, m.checkpoint, m.readCursor, m.cpErrors, m.fatal, m.backoffLevel, m.cost, m.batches} {
		ch <- d
	}
}

func (m *agentMetrics) Collect(ch chan<- prometheus.Metric) {
	m.apiLatency.Collect(ch)
	m.e2eLatency.Collect(ch)
	m.rateWait.Collect(ch)
	m.ttft.Collect(ch)
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
	c(m.prompts, float64(s.Refused), "refused")
	c(m.read, float64(s.Read))
	c(m.recovered, float64(s.Recovered))
	c(m.records, float64(s.Records))
	c(m.requests, float64(s.Requests))
	c(m.retries, float64(s.Retries))
	c(m.tokens, float64(s.InputTokens), "input")
	c(m.tokens, float64(s.OutputTokens), "output")
	c(m.tokens, float64(s.CacheWriteTokens), "cache_write")
	c(m.tokens, float64(s.CacheReadTokens), "cache_read")
	c(m.cost, s.CostUSD)
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
	g(m.backoffLevel, float64(s.BackoffLevel))
	g(m.batches, float64(s.BatchesInFlight))
	fatal := 0.0
	if s.Fatal != "" {
		fatal = 1
	}
	ch <- prometheus.MustNewConstMetric(m.fatal, prometheus.GaugeValue, fatal, s.Fatal)
}
