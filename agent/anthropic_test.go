package agent

import (
	"context"
	"errors"
	"github.com/shmio/shmio/agent/fakeapi"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

const testKey = "sk-ant-test-key"

type scenario struct {
	prompt   string
	status   Status
	attempts int
	http     int
	errHas   string
}

// The scenarios the fake API can play, with the outcome the agent must record for each.
var apiScenarios = []scenario{
	{"hello", StatusAnswered, 1, 0, ""},
	{"!429,200 rate limited once", StatusAnswered, 2, 0, ""},
	{"!529,200 overloaded once", StatusAnswered, 2, 0, ""},
	{"!500,500,200 two server errors", StatusAnswered, 3, 0, ""},
	{"!400 bad request", StatusFailed, 1, 400, "prompt is too long"},
	{"!slow,200 slow then fine", StatusAnswered, 2, 0, ""},
	{"!drop,200 dropped connection", StatusAnswered, 2, 0, ""},
	{"!cut,200 body cut short", StatusAnswered, 2, 0, ""},
	{"!malformed garbage body", StatusFailed, 1, 0, "malformed"},
	{"!529 always overloaded", StatusFailed, 4, 529, "giving up after 4 attempts"},
}

func checkScenarios(t *testing.T, h *harness, api *fakeapi.Server, scen []scenario, cursors []int64, model string) {
	t.Helper()
	m := byCursor(outcomesOf(t, h.out))
	for i, sc := range scen {
		os := m[cursors[i]]
		if len(os) != 1 {
			t.Errorf("%q: %d outcomes", sc.prompt, len(os))
			continue
		}
		o := os[0]
		if o.Status != sc.status || o.Attempts != sc.attempts || o.HTTPStatus != sc.http || !strings.Contains(o.Error, sc.errHas) {
			t.Errorf("%q: got status %s attempts %d http %d error %q; want %s %d %d %q", sc.prompt, o.Status, o.Attempts, o.HTTPStatus, o.Error, sc.status, sc.attempts, sc.http, sc.errHas)
		}
		if sc.status == StatusAnswered && (o.Text != "answer: "+sc.prompt || o.Model != model || o.StopReason != "end_turn" ||
			o.InputTokens != int64(len(sc.prompt)/4+1) || o.OutputTokens == 0) {
			t.Errorf("%q: answer fields %+v", sc.prompt, o)
		}
		if got := api.Attempts(sc.prompt); got != sc.attempts {
			t.Errorf("%q: the server saw %d requests, want %d", sc.prompt, got, sc.attempts)
		}
	}
}

// TestAgentAnthropicFakeAPI drives the real SDK client against the fake API over an in-memory
// network inside a synctest bubble, so retry-after (1 s), backoff and the per-attempt timeout
// run in fake time.
func TestAgentAnthropicFakeAPI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		hc, stop := servePipe(api)
		defer stop()
		client, err := NewAnthropicClient(AnthropicConfig{APIKey: testKey, BaseURL: "http://api.fake", HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, Config{Client: client, Model: "claude-test", MaxInFlight: 16, RequestTimeout: 2 * time.Second,
			BackoffBase: 100 * time.Millisecond, MaxAttempts: 4})
		var cursors []int64
		for _, sc := range apiScenarios {
			cursors = append(cursors, h.in.append([]byte(sc.prompt)))
		}
		cj := h.in.append(jsonPrompt(t, Prompt{ID: "j", Prompt: "with options", System: "be terse", MaxTokens: 77,
			Metadata: []byte(`{"user_id":"user-9"}`)}))
		h.start(t)
		h.waitOutcomes(t, len(apiScenarios)+1, time.Minute)
		h.stop(t)
		checkScenarios(t, h, api, apiScenarios, cursors, "claude-test")

		var gap429 time.Duration
		var first time.Time
		for _, r := range api.Requests() {
			if r.Auth != "bearer" {
				t.Errorf("auth %q", r.Auth)
			}
			if strings.HasPrefix(r.Prompt, "!429,") {
				if first.IsZero() {
					first = r.At
				} else {
					gap429 = r.At.Sub(first)
				}
			}
			if r.Prompt == "with options" && (r.System != "be terse" || r.MaxTokens != 77 || r.UserID != "user-9" || r.Model != "claude-test") {
				t.Errorf("request fields %+v", r)
			}
			if r.Prompt == "hello" && r.MaxTokens != 1024 {
				t.Errorf("default max_tokens %d", r.MaxTokens)
			}
		}
		if gap429 < time.Second {
			t.Errorf("retry-after: 1 not honoured, retried after %v", gap429)
		}
		if o := byCursor(outcomesOf(t, h.out))[cj][0]; o.Status != StatusAnswered || o.ID != "j" {
			t.Errorf("json prompt %+v", o)
		}
		s := h.a.Stats()
		// Retries: 1+1+2+1+1+1+3 = 10; requests: the scenarios' attempts + the JSON prompt.
		if s.Answered != 8 || s.Failed != 3 || s.Retries != 10 || s.Requests != 21 || s.InFlight != 0 || s.Pending != 0 ||
			s.InputTokens == 0 || s.OutputTokens == 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestAgentAnthropicHTTPTest runs the transport-level scenarios over real TCP (httptest) in real
// time, with short timeouts.
func TestAgentAnthropicHTTPTest(t *testing.T) {
	api := newFakeAPI(testKey)
	srv := httptest.NewServer(api)
	defer srv.Close()
	t.Setenv("ANTHROPIC_API_KEY", testKey)
	t.Setenv("ANTHROPIC_BASE_URL", srv.URL) // the SDK's own variable points it at the fake
	client, err := NewAnthropicClient(AnthropicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	scen := []scenario{
		{"hello over tcp", StatusAnswered, 1, 0, ""},
		{"!429ms,200 retry-after-ms", StatusAnswered, 2, 0, ""},
		{"!drop,drop,200 dropped twice", StatusAnswered, 3, 0, ""},
		{"!cut,200 cut body", StatusAnswered, 2, 0, ""},
		{"!slow,200 slow", StatusAnswered, 2, 0, ""},
		{"!malformed garbage", StatusFailed, 1, 0, "malformed"},
		{"!400 bad", StatusFailed, 1, 400, "invalid_request_error"},
	}
	h := newHarness(t, Config{Client: client, Model: "claude-test", RequestTimeout: time.Second,
		BackoffBase: 20 * time.Millisecond, MaxAttempts: 4})
	var cursors []int64
	for _, sc := range scen {
		cursors = append(cursors, h.in.append([]byte(sc.prompt)))
	}
	h.start(t)
	h.waitOutcomes(t, len(scen), 30*time.Second)
	h.stop(t)
	checkScenarios(t, h, api, scen, cursors, "claude-test")
}

func TestAgentAnthropicAuth(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "")
	if _, err := NewAnthropicClient(AnthropicConfig{}); !errors.Is(err, ErrNoAPIKey) {
		t.Fatalf("missing key: %v", err)
	}
	api := newFakeAPI(testKey)
	srv := httptest.NewServer(api)
	defer srv.Close()

	// The fake accepts x-api-key as well as Bearer, and is as strict as the API about the rest.
	post := func(body string, hdr ...string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/v1/messages", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	ok := `{"model":"claude-test","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	if code, body, _ := post(ok, "x-api-key", testKey, "anthropic-version", "2023-06-01"); code != 200 || !strings.Contains(body, `"type":"message"`) {
		t.Fatalf("x-api-key: %d %s", code, body)
	}
	for _, tc := range []struct {
		body   string
		hdr    []string
		status int
		has    string
	}{
		{ok, nil, 401, `"type":"authentication_error"`},
		{ok, []string{"x-api-key", testKey}, 400, "anthropic-version"},
		{ok, []string{"x-api-key", testKey, "anthropic-version", "1999-01-01"}, 400, "unknown version"},
		{strings.Replace(ok, "claude-test", "claude-nope", 1), []string{"x-api-key", testKey, "anthropic-version", "2023-06-01"}, 404, `"type":"not_found_error"`},
		{strings.Replace(ok, `"max_tokens":5`, `"max_tokens":5,"colour":1`, 1), []string{"x-api-key", testKey, "anthropic-version", "2023-06-01"}, 400, "unknown field"},
		{strings.Replace(ok, `"max_tokens":5`, `"max_tokens":999999`, 1), []string{"x-api-key", testKey, "anthropic-version", "2023-06-01"}, 400, "max_tokens: 999999 > 8192"},
		{strings.Replace(ok, `"max_tokens":5`, `"max_tokens":5,"temperature":0.5,"top_p":0.9`, 1), []string{"x-api-key", testKey, "anthropic-version", "2023-06-01"}, 400, "cannot both"},
		{strings.Replace(ok, `"role":"user"`, `"role":"assistant"`, 1), []string{"x-api-key", testKey, "anthropic-version", "2023-06-01"}, 400, "alternate"},
	} {
		code, body, h := post(tc.body, tc.hdr...)
		if code != tc.status || !strings.Contains(body, tc.has) || !strings.Contains(body, `"request_id":"req_`) || h.Get("request-id") == "" {
			t.Errorf("%s %v: %d %s, want %d with %q", tc.body, tc.hdr, code, body, tc.status, tc.has)
		}
	}

	// A wrong key is a 401: failed at once, not retried.
	client, err := NewAnthropicClient(AnthropicConfig{APIKey: "wrong", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.SendPrompt(context.Background(), Request{Model: "claude-test", Prompt: "x", MaxTokens: 5})
	var ae *APIError
	if c, _ := classify(err, func(string) bool { return true }); !errors.As(err, &ae) || ae.StatusCode != 401 ||
		ae.Type != "authentication_error" || c != classFatal || !strings.HasPrefix(ae.RequestID, "req_") {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the key leaked into the error: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    map[string]string
		want time.Duration
	}{
		{map[string]string{"Retry-After": "3"}, 3 * time.Second},
		{map[string]string{"Retry-After-Ms": "250", "Retry-After": "3"}, 250 * time.Millisecond},
		{map[string]string{"Retry-After": now.Add(10 * time.Second).Format(http.TimeFormat)}, 10 * time.Second},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{}, 0},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := parseRetryAfter(h, now); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.h, got, tc.want)
		}
	}
}

// TestAgentPromptFields: per-prompt model, stop_sequences, effort and multi-turn messages reach
// the API as the SDK sends them; coalescing leaves such prompts alone.
func TestAgentPromptFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", Coalesce: 4})
		cm := h.in.append(jsonPrompt(t, Prompt{ID: "m", Prompt: "own model", Model: "claude-haiku-4-5", Effort: "low"}))
		cs := h.in.append(jsonPrompt(t, Prompt{ID: "s", Prompt: "cut here STOP and not this", StopSequences: []string{"STOP"}}))
		ct := h.in.append(jsonPrompt(t, Prompt{ID: "t", Messages: []Turn{{"user", "first"}, {"assistant", "reply"}, {"user", "second"}}}))
		h.start(t)
		outs := h.waitOutcomes(t, 3, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		if o := m[cm][0]; o.Status != StatusAnswered || o.Model != "claude-haiku-4-5" {
			t.Errorf("own model: %+v", o)
		}
		if o := m[cs][0]; o.Status != StatusAnswered || o.Text != "answer: cut here " || o.StopReason != "stop_sequence" {
			t.Errorf("stop sequence: %+v", o)
		}
		if o := m[ct][0]; o.Status != StatusAnswered || o.Text != "answer: second" {
			t.Errorf("multi-turn: %+v", o)
		}
		for _, r := range api.Requests() {
			switch r.Prompt {
			case "own model":
				if r.Model != "claude-haiku-4-5" || r.Effort != "low" {
					t.Errorf("request %+v", r)
				}
			case "second":
				if r.Turns != 3 || r.Model != "claude-test" {
					t.Errorf("request %+v", r)
				}
			case "cut here STOP and not this":
				if len(r.StopSequences) != 1 || r.StopSequences[0] != "STOP" {
					t.Errorf("request %+v", r)
				}
			default:
				t.Errorf("unexpected request %+v (coalesced?)", r)
			}
		}
	})
}

// TestAgentOutcomeFields: an outcome carries the message id, the request id (failures too), the
// service tier, cache tokens, the stop reason (a refusal has its own status) and the cost
// estimated from the price table.
func TestAgentOutcomeFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		prices := map[string]Price{"claude-haiku-": {Input: 1, Output: 5, CacheWrite: 1.25, CacheRead: 0.1}}
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-haiku-4-5", Prices: prices, MaxInFlight: 1})
		ca := h.in.append([]byte("hello"))
		cr := h.in.append([]byte("!refusal do something bad"))
		cf := h.in.append([]byte("!400 too long"))
		cu := h.in.append(jsonPrompt(t, Prompt{Prompt: "unpriced", Model: "claude-test"}))
		h.start(t)
		outs := h.waitOutcomes(t, 4, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		a := m[ca][0]
		want := (float64(a.InputTokens)*1 + float64(a.OutputTokens)*5) / 1e6
		if a.Status != StatusAnswered || !strings.HasPrefix(a.MessageID, "msg_fake_") || !strings.HasPrefix(a.RequestID, "req_fake_") ||
			a.ServiceTier != "standard" || a.StopReason != "end_turn" || a.CostUSD != want || a.CostUSD == 0 {
			t.Errorf("answered: %+v (cost want %v)", a, want)
		}
		if o := m[cr][0]; o.Status != StatusRefused || o.StopReason != "refusal" || o.MessageID == "" {
			t.Errorf("refusal: %+v", o)
		}
		if o := m[cf][0]; o.Status != StatusFailed || !strings.HasPrefix(o.RequestID, "req_fake_") || o.MessageID != "" {
			t.Errorf("failed: %+v", o)
		}
		if o := m[cu][0]; o.Status != StatusAnswered || o.CostUSD != 0 || o.Model != "claude-test" {
			t.Errorf("unpriced: %+v", o)
		}
		if s := h.a.Stats(); s.Refused != 1 || s.Answered != 2 || s.Failed != 1 || s.CostUSD <= 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestLoadPrices(t *testing.T) {
	p := filepath.Join(t.TempDir(), "prices.json")
	os.WriteFile(p, []byte(`{"claude-sonnet-5-5": {"input": 2, "output": 10, "cache_write": 2.5, "cache_read": 0.2}}`), 0o644)
	table, err := LoadPrices(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := priceOf(table, "claude-sonnet-5-5"); got.Input != 2 {
		t.Fatalf("override: %+v", got)
	}
	if got, ok := priceOf(table, "claude-opus-4-7"); !ok || got.Output != 25 {
		t.Fatalf("default family: %+v", got)
	}
	if _, ok := priceOf(table, "gpt-x"); ok {
		t.Fatal("a price for an unknown model")
	}
	os.WriteFile(p, []byte(`{"m": {"inptu": 2}}`), 0o644)
	if _, err := LoadPrices(p); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("typo: %v", err)
	}
}

func TestParseRateLimitReset(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct {
		h    map[string]string
		want time.Duration
	}{
		// The exhausted budget decides, even when another resets sooner.
		{map[string]string{"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": at(20 * time.Second),
			"anthropic-ratelimit-tokens-remaining": "900", "anthropic-ratelimit-tokens-reset": at(2 * time.Second)}, 20 * time.Second},
		// None said exhausted: the earliest reset ahead.
		{map[string]string{"anthropic-ratelimit-input-tokens-reset": at(7 * time.Second), "anthropic-ratelimit-output-tokens-reset": at(3 * time.Second)}, 3 * time.Second},
		{map[string]string{"anthropic-ratelimit-requests-reset": at(-time.Second)}, 0},
		{map[string]string{"anthropic-ratelimit-requests-reset": "soon"}, 0},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := parseRateLimitReset(h, now); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.h, got, tc.want)
		}
	}
}

// TestAgentRateLimitResetHeader: a 429 without retry-after is held off until the exhausted
// budget's anthropic-ratelimit reset (2 s in the fake), not the shorter exponential back-off.
func TestAgentRateLimitResetHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", BackoffBase: 10 * time.Millisecond})
		h.in.append([]byte("!429reset,200 limited"))
		h.start(t)
		o := h.waitOutcomes(t, 1, time.Minute)[0]
		h.stop(t)
		reqs := api.Requests()
		if o.Status != StatusAnswered || len(reqs) != 2 || reqs[1].At.Sub(reqs[0].At) < time.Second {
			t.Fatalf("outcome %+v, requests %+v", o, reqs)
		}
	})
}
