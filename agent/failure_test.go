package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shmio/shmio/agent/fakeapi"
)

// syncBuffer is a log destination safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pipeClient is an SDK client with key over an in-memory network to api (for synctest bubbles).
func pipeClient(t testing.TB, api *fakeapi.Server, key string) *AnthropicClient {
	t.Helper()
	hc, stop := servePipe(api)
	t.Cleanup(stop)
	c, err := NewAnthropicClient(AnthropicConfig{APIKey: key, BaseURL: "http://api.fake", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runUntilDone runs the harness's agent until Run returns by itself and returns its error.
func runUntilDone(t testing.TB, h *harness, limit time.Duration) error {
	t.Helper()
	h.start(t)
	select {
	case err := <-h.done:
		return err
	case <-time.After(limit):
		t.Fatalf("Run still running after %v; stats %+v", limit, h.a.Stats())
		return nil
	}
}

// TestAgentFatalRestart covers the configuration errors that stop the whole agent: a wrong key
// (401), a wrong --model (404) and a configured max_tokens the model refuses (400 naming
// max_tokens). Each time nothing is answered or failed, the requests stop at the first wave, the
// checkpoint stays before the first prompt, stderr and Stats say why, and Run returns a
// *FatalError; a restart with the configuration fixed answers every prompt exactly once.
func TestAgentFatalRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		key       string
		cfg       Config
		reason    string
		httpCode  int
		fixed     Config
		fixedKey  string
		messageIn string
	}{
		{"wrong key", "sk-wrong", Config{Model: "claude-test"}, "authentication_error", 401, Config{Model: "claude-test"}, testKey, "invalid x-api-key"},
		{"unknown model", testKey, Config{Model: "claude-nope"}, "model_not_found", 404, Config{Model: "claude-test"}, testKey, "claude-nope"},
		{"max_tokens over the model's limit", testKey, Config{Model: "claude-test", MaxTokens: 100000}, "invalid_config", 400, Config{Model: "claude-test"}, testKey, "max_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := newFakeAPI(testKey)
				var logBuf syncBuffer
				cp := filepath.Join(t.TempDir(), "cp")
				cfg := tc.cfg
				cfg.Client, cfg.MaxInFlight, cfg.CheckpointPath = pipeClient(t, api, tc.key), 4, cp
				cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
				h := newHarness(t, cfg)
				var cursors []int64
				for i := range 50 {
					cursors = append(cursors, h.in.append(fmt.Appendf(nil, "prompt %d", i)))
				}
				err := runUntilDone(t, h, time.Minute)
				var fe *FatalError
				var ae *APIError
				if !errors.Is(err, ErrFatal) || !errors.As(err, &fe) || fe.Reason != tc.reason || !errors.As(err, &ae) || ae.StatusCode != tc.httpCode {
					t.Fatalf("Run: %v", err)
				}
				if n := len(outcomesOf(t, h.out)); n != 0 {
					t.Fatalf("%d outcome records after a fatal error, want none", n)
				}
				if n := len(api.Requests()); n > cfg.MaxInFlight {
					t.Fatalf("%d requests, want at most the first wave of %d", n, cfg.MaxInFlight)
				}
				if c, err := ReadCheckpoint(cp); err != nil || c.Cursor != cursors[0] {
					t.Fatalf("checkpoint %+v %v, want cursor %d", c, err, cursors[0])
				}
				if s := h.a.Stats(); s.Fatal != tc.reason || s.Failed != 0 || s.Answered != 0 {
					t.Fatalf("stats %+v", s)
				}
				if l := logBuf.String(); !strings.Contains(l, "fatal API error") || !strings.Contains(l, tc.reason) || !strings.Contains(l, tc.messageIn) {
					t.Fatalf("log does not say why: %s", l)
				}

				// The restart with the configuration fixed answers everything, once.
				fixed := tc.fixed
				fixed.Client, fixed.MaxInFlight, fixed.CheckpointPath = pipeClient(t, api, tc.fixedKey), 4, cp
				fixed.Input, fixed.Output, fixed.Outcomes = h.in.iter(), &memWriter{l: h.out}, h.out.iter()
				h2 := &harness{in: h.in, out: h.out, cfg: fixed}
				h2.start(t)
				outs := h2.waitOutcomes(t, 50, time.Minute)
				h2.stop(t)
				m := byCursor(outs)
				for i, c := range cursors {
					if o := m[c]; len(o) != 1 || o[0].Status != StatusAnswered || o[0].Text != fmt.Sprintf("answer: prompt %d", i) {
						t.Fatalf("prompt %d after the restart: %+v", i, o)
					}
				}
			})
		})
	}
}

// TestAgentPauseOnFatal: with PauseOnFatal, Run stays until its context ends, dispatching nothing.
func TestAgentPauseOnFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		h := newHarness(t, Config{Client: pipeClient(t, api, "sk-wrong"), Model: "claude-test", MaxInFlight: 1, PauseOnFatal: true})
		for i := range 5 {
			h.in.append(fmt.Appendf(nil, "p%d", i))
		}
		h.start(t)
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case err := <-h.done:
			t.Fatalf("Run returned while paused: %v", err)
		default:
		}
		if s := h.a.Stats(); s.Fatal != "authentication_error" || s.Requests != 1 {
			t.Fatalf("stats %+v", s)
		}
		h.cancel()
		if err := <-h.done; !errors.Is(err, ErrFatal) {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestAgentPerPromptErrors: errors caused by one prompt's own fields fail that prompt only.
func TestAgentPerPromptErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", MaxInFlight: 4})
		cModel := h.in.append(jsonPrompt(t, Prompt{ID: "m", Prompt: "own model", Model: "claude-nope"}))
		cTok := h.in.append(jsonPrompt(t, Prompt{ID: "t", Prompt: "own max_tokens", MaxTokens: 100000}))
		cLong := h.in.append([]byte("!400 too long"))
		var ok []int64
		for i := range 10 {
			ok = append(ok, h.in.append(fmt.Appendf(nil, "fine %d", i)))
		}
		h.start(t)
		outs := h.waitOutcomes(t, 13, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		for c, want := range map[int64]string{cModel: "not_found_error", cTok: "max_tokens", cLong: "prompt is too long"} {
			if o := m[c]; len(o) != 1 || o[0].Status != StatusFailed || o[0].Attempts != 1 || !strings.Contains(o[0].Error, want) {
				t.Errorf("cursor %d: %+v, want failed with %q", c, o, want)
			}
		}
		for _, c := range ok {
			if o := m[c]; len(o) != 1 || o[0].Status != StatusAnswered {
				t.Errorf("cursor %d: %+v", c, o)
			}
		}
		if s := h.a.Stats(); s.Fatal != "" || s.Failed != 3 || s.Answered != 10 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestAgentOverloadStorm plays 30 s of overload (529s, 429s with retry-after, dropped
// connections) in fake time, then recovery. During the storm the agent holds one shared back-off:
// after the first wave, requests go one at a time, each at least one back-off interval after the
// previous one failed (the server's retry-after when it gave one). After recovery every prompt is
// answered exactly once, none failed.
func TestAgentOverloadStorm(t *testing.T) {
	for _, tc := range []struct {
		step   string
		minGap time.Duration
	}{
		{"529", 250 * time.Millisecond}, // BackoffBase 500ms jittered into [250ms, 500ms] at least
		{"429", time.Second},            // retry-after: 1
		{"drop", 250 * time.Millisecond},
	} {
		t.Run(tc.step, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := newFakeAPI(testKey)
				stormEnd := time.Now().Add(30 * time.Second)
				api.Script = func(at time.Time) string {
					if at.Before(stormEnd) {
						return tc.step
					}
					return ""
				}
				h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", MaxInFlight: 16,
					BackoffBase: 500 * time.Millisecond, BackoffMax: 4 * time.Second})
				var cursors []int64
				for i := range 50 {
					cursors = append(cursors, h.in.append(fmt.Appendf(nil, "prompt %d", i)))
				}
				h.start(t)
				outs := h.waitOutcomes(t, 50, 5*time.Minute)
				h.stop(t)
				m := byCursor(outs)
				for _, c := range cursors {
					if o := m[c]; len(o) != 1 || o[0].Status != StatusAnswered {
						t.Fatalf("cursor %d: %+v", c, o)
					}
				}
				var storm []time.Time
				for _, r := range api.Requests() {
					if r.At.Before(stormEnd) {
						storm = append(storm, r.At)
					}
				}
				sort.Slice(storm, func(i, j int) bool { return storm[i].Before(storm[j]) })
				// The first wave goes before any failure is known; everything after it is a probe.
				wave := 0
				for wave < len(storm) && storm[wave].Equal(storm[0]) {
					wave++
				}
				if wave > 16 {
					t.Fatalf("first wave of %d requests", wave)
				}
				probes := storm[wave-1:]
				for i := 1; i < len(probes); i++ {
					if gap := probes[i].Sub(probes[i-1]); gap < tc.minGap {
						t.Fatalf("storm requests %d and %d only %v apart (want >= %v); %d storm requests", i-1, i, gap, tc.minGap, len(storm))
					}
				}
				if len(probes) < 5 || len(probes) > 1+int(30*time.Second/tc.minGap) {
					t.Fatalf("%d probes during the storm", len(probes))
				}
				t.Logf("%s: first wave %d, %d probes during the storm, %d requests in all", tc.step, wave, len(probes), len(api.Requests()))
				if s := h.a.Stats(); s.Answered != 50 || s.Failed != 0 || s.BackoffLevel != 0 {
					t.Fatalf("stats %+v", s)
				}
			})
		})
	}
}

// TestGateGenerations: answers to requests sent before the gate closed neither open it nor
// deepen it; the probe decides.
func TestGateGenerations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(time.Second, 8*time.Second)
		var none [3]<-chan struct{}
		a, _ := g.acquire(time.Time{}, none)
		b, _ := g.acquire(time.Time{}, none)
		until := g.release(a, true, 0) // a fails: the gate closes
		if lvl, _ := g.state(); lvl != 1 || until.Sub(time.Now()) < 500*time.Millisecond {
			t.Fatalf("level %d until %v", lvl, until)
		}
		g.release(b, false, 0) // b was sent before: its success does not open the gate
		if lvl, _ := g.state(); lvl != 1 {
			t.Fatalf("stale success opened the gate")
		}
		g.release(b, true, 0) // nor does its failure deepen it
		if lvl, _ := g.state(); lvl != 1 {
			t.Fatalf("stale failure deepened the gate")
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan ticket, 2)
		for range 2 {
			go func() {
				tk, err := g.acquire(time.Time{}, [3]<-chan struct{}{ctx.Done()})
				if err == nil {
					got <- tk
				}
			}()
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if len(got) != 1 {
			t.Fatalf("%d requests passed a closed gate, want the one probe", len(got))
		}
		p := <-got
		if !p.probe {
			t.Fatal("not a probe")
		}
		g.release(p, false, 0)
		synctest.Wait()
		if len(got) != 1 {
			t.Fatal("the probe's success did not open the gate")
		}
		if tk := <-got; tk.probe {
			t.Fatal("a probe while open")
		}
	})
}

// TestAgentRPMHoldsAtServer: at --rpm 600 against a server enforcing 10 requests in any sliding
// second, no request is refused (the requests are evenly spaced, not sent in per-second bursts).
func TestAgentRPMHoldsAtServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		api.RPS = 10
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", MaxInFlight: 16,
			RequestsPerMinute: 600})
		for i := range 200 {
			h.in.append(fmt.Appendf(nil, "prompt %d", i))
		}
		h.start(t)
		h.waitOutcomes(t, 200, 5*time.Minute)
		h.stop(t)
		if n := api.RateLimited(); n != 0 {
			t.Fatalf("%d requests got 429 at the server", n)
		}
		if s := h.a.Stats(); s.Answered != 200 || s.Requests != 200 {
			t.Fatalf("stats %+v", s)
		}
	})
}
