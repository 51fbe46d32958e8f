package agent

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// runAgent starts an agent over the logs and returns a stop function that waits for Run.
func runAgent(b testing.TB, cfg Config) (*Agent, func()) {
	b.Helper()
	a, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// BenchmarkAgentDispatchLatency measures, with the fake API answering at once through the real
// SDK client over loopback TCP, the time from a prompt's commit to its request arriving at the
// server, at 1,000 prompts/s with MaxInFlight 16 (3 s per run). Run with -benchtime=1x.
func BenchmarkAgentDispatchLatency(b *testing.B) {
	for range b.N {
		api := newFakeAPI(testKey)
		rec := &latencyRecorder{}
		api.OnRequest = rec.observe
		srv := httptest.NewServer(api)
		client, err := NewAnthropicClient(AnthropicConfig{APIKey: testKey, BaseURL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		dispatchLatency(b, client, rec)
		srv.Close()
	}
}

// BenchmarkAgentDispatchLatencyInProcess is the same with an in-process client that notes when
// SendPrompt is called: the agent's own share of the latency, without the SDK and HTTP.
func BenchmarkAgentDispatchLatencyInProcess(b *testing.B) {
	for range b.N {
		rec := &latencyRecorder{}
		dispatchLatency(b, clientFunc(func(ctx context.Context, req Request) (Response, error) {
			rec.observe(req.Prompt, time.Now())
			return Response{Text: "ok"}, nil
		}), rec)
	}
}

type clientFunc func(ctx context.Context, req Request) (Response, error)

func (f clientFunc) SendPrompt(ctx context.Context, req Request) (Response, error) {
	return f(ctx, req)
}

// latencyRecorder takes the commit time a prompt carries ("t=<unix ns> ...") and its arrival.
type latencyRecorder struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (r *latencyRecorder) observe(prompt string, at time.Time) {
	ts, _, _ := strings.Cut(strings.TrimPrefix(prompt, "t="), " ")
	ns, _ := strconv.ParseInt(ts, 10, 64)
	r.mu.Lock()
	r.lat = append(r.lat, at.Sub(time.Unix(0, ns)))
	r.mu.Unlock()
}

func dispatchLatency(b *testing.B, client Client, rec *latencyRecorder) {
	l := openLogs(b, shmDir(b), 16<<20)
	cfg := l.config(b)
	cfg.Client, cfg.MaxInFlight = client, 16
	_, stop := runAgent(b, cfg)
	const warm, n = 200, 3000
	start := time.Now()
	for i := range warm + n {
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		if err := l.prod.Append(fmt.Appendf(nil, `{"prompt":"t=%d #%d"}`, time.Now().UnixNano(), i)); err != nil {
			b.Fatal(err)
		}
		if err := l.prod.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(warm+n) / time.Since(start).Seconds()
	waitRecords(b, l.out, warm+n, 30*time.Second)
	stop()
	rec.mu.Lock()
	got := slices.Clone(rec.lat[warm:])
	rec.mu.Unlock()
	slices.Sort(got)
	b.ReportMetric(float64(percentile(got, 0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(got, 0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(got[len(got)-1].Microseconds()), "max-µs")
	b.ReportMetric(rate, "prompts/s")
}

// BenchmarkAgentThroughputEcho measures how many prompts a second the agent turns into outcome
// records with the echo client: 200,000 prompts committed up front, timed until the last
// outcome is committed.
func BenchmarkAgentThroughputEcho(b *testing.B) {
	benchThroughput(b, 200_000, func() Client { return EchoClient{} }, 16)
}

// BenchmarkAgentThroughputHTTP is the same through the real SDK client and the fake API over
// loopback TCP (20,000 prompts, MaxInFlight 64): the HTTP round trip, not the agent, bounds it.
func BenchmarkAgentThroughputHTTP(b *testing.B) {
	api := newFakeAPI(testKey)
	srv := httptest.NewServer(api)
	defer srv.Close()
	benchThroughput(b, 20_000, func() Client {
		c, err := NewAnthropicClient(AnthropicConfig{APIKey: testKey, BaseURL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}, 64)
}

func benchThroughput(b *testing.B, n int, client func() Client, inFlight int) {
	for range b.N {
		b.StopTimer()
		l := openLogs(b, shmDir(b), 64<<20)
		for i := range n {
			if err := l.prod.Append(fmt.Appendf(nil, `{"id":"p%d","prompt":"prompt number %d"}`, i, i)); err != nil {
				b.Fatal(err)
			}
			if i%256 == 255 {
				l.prod.Commit()
			}
		}
		l.prod.Commit()
		cfg := l.config(b)
		cfg.Client, cfg.MaxInFlight = client(), inFlight
		b.StartTimer()
		start := time.Now()
		a, stop := runAgent(b, cfg)
		waitRecords(b, l.out, n, 5*time.Minute)
		el := time.Since(start)
		b.StopTimer()
		stop()
		if s := a.Stats(); s.Answered != uint64(n) {
			b.Fatalf("stats %+v", s)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "prompts/s")
	}
}
