// Package fakeapi is a strict stand-in for the Anthropic Messages API, for tests and benchmarks
// of the agent: it speaks the real wire format (POST /v1/messages with JSON or SSE answers, the
// Message Batches endpoints, error envelopes with request ids, retry-after and
// anthropic-ratelimit-* headers), checks credentials, the anthropic-version header, the body
// (unknown fields, models, max_tokens, sampling parameters, message order) like the API does,
// and plays scripted failures.
//
// What it answers is scripted by a directive at the start of the last user message, one step per
// attempt ("!429,200 text": first a 429, then an answer; the last step repeats):
//
//	200        answer "answer: <prompt>"
//	429        rate_limit_error with retry-after: 1 (seconds)
//	429ms      rate_limit_error with retry-after-ms: 50
//	429reset   rate_limit_error with anthropic-ratelimit-requests-reset 2 s ahead, no retry-after
//	529 / 500  overloaded_error / api_error
//	400 / 413  invalid_request_error / request_too_large
//	refusal    stop_reason "refusal"
//	slow       answer after 5 s
//	drop       close the connection without an answer
//	cut        send the headers and half the body, then close
//	malformed  200 with a body that is not JSON
//	streamcut  (streaming) send half the events, then an overloaded_error event
package fakeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIVersions are the anthropic-version values the fake accepts.
var APIVersions = map[string]bool{"2023-06-01": true, "2026-10-21": true}

// DefaultModels maps the models the fake knows to their output-token limits.
var DefaultModels = map[string]int64{
	"claude-test": 8192, "claude-sonnet-5-5": 64000, "claude-haiku-5-5": 64000, "claude-opus-5-5": 32000,
	"claude-sonnet-4-6": 64000, "claude-haiku-4-5": 64000, "claude-opus-4-7": 32000,
}

// Server is the fake API; create it with New and serve it with httptest or http.Server.
type Server struct {
	Key    string
	Models map[string]int64
	// Script, if set, decides the step of every messages request before the prompt's own
	// directive ("" = use the directive): storms and outages.
	Script func(at time.Time) string
	// RPS > 0 enforces at most that many messages requests in any sliding second: the rest get a
	// 429 with retry-after and anthropic-ratelimit-* headers, as the API does.
	RPS int
	// Delay, if set, is applied before each answer.
	Delay func(prompt string) time.Duration
	// OnRequest, if set, runs as each messages request arrives.
	OnRequest func(prompt string, at time.Time)
	// BatchDelay is how long a message batch stays in_progress (default 0: it ends at once).
	BatchDelay time.Duration
	// StreamChunk is the size of the text deltas of a streamed answer (default 4 bytes).
	StreamChunk int

	mu       sync.Mutex
	attempts map[string]int
	log      []Request
	seq      int
	window   []time.Time // arrival times within the last second (RPS)
	n429     int
	cached   map[string]bool // system prompts written to the prompt cache
	batches  map[string]*batch
}

// Request is what the fake recorded of one messages request (batch items included).
type Request struct {
	At            time.Time
	Prompt        string // text of the last user message
	Turns         int    // messages in the request
	System        string
	CacheControl  bool // the system prompt carried cache_control
	Model         string
	MaxTokens     int64
	UserID        string
	StopSequences []string
	Temperature   *float64
	TopP          *float64
	TopK          *int64
	Stream        bool
	Effort        string
	Batch         string // batch id for batch items
	CustomID      string
	Auth          string // "x-api-key" or "bearer"
	Step          string
	Child         string // X-Child header (crash tests)
}

// New returns a fake that accepts key.
func New(key string) *Server {
	return &Server{Key: key, Models: DefaultModels, attempts: map[string]int{}, cached: map[string]bool{},
		batches: map[string]*batch{}}
}

// Requests returns what the fake has seen so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Attempts counts the requests for one prompt text.
func (s *Server) Attempts(prompt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[prompt]
}

// RateLimited counts the 429s sent because of RPS.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n429
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s_%06d", prefix, s.seq)
}

// WriteError sends an error envelope as the API does, with a request-id header.
func WriteError(w http.ResponseWriter, status int, typ, msg, reqID string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", reqID)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q},"request_id":%q}`, typ, msg, reqID)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	s.mu.Lock()
	reqID := s.nextID("req_fake")
	s.mu.Unlock()
	auth, key := "x-api-key", r.Header.Get("X-Api-Key")
	if key == "" {
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			auth, key = "bearer", b
		}
	}
	switch {
	case key == "":
		WriteError(w, 401, "authentication_error", "x-api-key header is required", reqID)
		return
	case key != s.Key:
		WriteError(w, 401, "authentication_error", "invalid x-api-key", reqID)
		return
	case r.Header.Get("Anthropic-Version") == "":
		WriteError(w, 400, "invalid_request_error", "anthropic-version: header is required", reqID)
		return
	case !APIVersions[r.Header.Get("Anthropic-Version")]:
		WriteError(w, 400, "invalid_request_error", "anthropic-version: unknown version "+strconv.Quote(r.Header.Get("Anthropic-Version")), reqID)
		return
	}
	path := r.URL.Path
	switch {
	case path == "/v1/messages" && r.Method == http.MethodPost:
		s.serveMessages(w, r, arrived, reqID, auth)
	case path == "/v1/messages/batches" && r.Method == http.MethodPost:
		s.createBatch(w, r, reqID, auth)
	case strings.HasPrefix(path, "/v1/messages/batches/") && r.Method == http.MethodGet:
		id, results := strings.CutSuffix(strings.TrimPrefix(path, "/v1/messages/batches/"), "/results")
		if results {
			s.batchResults(w, r, id, reqID)
		} else {
			s.getBatch(w, r, id, reqID)
		}
	default:
		WriteError(w, 404, "not_found_error", "Not found: "+r.Method+" "+path, reqID)
	}
}

// params is the body of a messages request; unknown fields are refused like the API does.
type params struct {
	Model     string          `json:"model"`
	MaxTokens int64           `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Messages  []message       `json:"messages"`
	Metadata  *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	StopSequences []string `json:"stop_sequences"`
	Temperature   *float64 `json:"temperature"`
	TopP          *float64 `json:"top_p"`
	TopK          *int64   `json:"top_k"`
	Stream        bool     `json:"stream"`
	OutputConfig  *struct {
		Effort string `json:"effort"`
	} `json:"output_config"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type block struct {
	Type         string `json:"type"`
	Text         string `json:"text"`
	CacheControl *struct {
		Type string `json:"type"`
		TTL  string `json:"ttl,omitempty"`
	} `json:"cache_control,omitempty"`
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// blocks reads a content field that is a string or a list of text blocks.
func blocks(raw json.RawMessage, field string) (text string, cached bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str, false, nil
	}
	var bs []block
	if err := decodeStrict(raw, &bs); err != nil {
		return "", false, fmt.Errorf("%s: %v", field, err)
	}
	var b strings.Builder
	for i, x := range bs {
		if x.Type != "text" {
			return "", false, fmt.Errorf("%s.%d.type: unsupported block type %q", field, i, x.Type)
		}
		if x.Text == "" {
			return "", false, fmt.Errorf("%s.%d.text: text content blocks must be non-empty", field, i)
		}
		if x.CacheControl != nil {
			if x.CacheControl.Type != "ephemeral" {
				return "", false, fmt.Errorf("%s.%d.cache_control.type: must be \"ephemeral\"", field, i)
			}
			cached = true
		}
		b.WriteString(x.Text)
	}
	return b.String(), cached, nil
}

// validate checks p as the API does; it returns the HTTP status, error type and message.
func (s *Server) validate(p *params) (rec Request, status int, typ, msg string) {
	rec = Request{Model: p.Model, MaxTokens: p.MaxTokens, StopSequences: p.StopSequences, Temperature: p.Temperature,
		TopP: p.TopP, TopK: p.TopK, Stream: p.Stream, Turns: len(p.Messages)}
	if p.Metadata != nil {
		rec.UserID = p.Metadata.UserID
	}
	if p.OutputConfig != nil {
		rec.Effort = p.OutputConfig.Effort
		switch rec.Effort {
		case "low", "medium", "high", "xhigh", "max":
		default:
			return rec, 400, "invalid_request_error", "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
		}
	}
	bad := func(m string) (Request, int, string, string) { return rec, 400, "invalid_request_error", m }
	if p.Model == "" {
		return bad("model: Field required")
	}
	limit, ok := s.Models[p.Model]
	if !ok {
		return rec, 404, "not_found_error", "model: " + p.Model
	}
	if p.MaxTokens < 1 {
		return bad("max_tokens: Field required (at least 1)")
	}
	if p.MaxTokens > limit {
		return bad(fmt.Sprintf("max_tokens: %d > %d, which is the maximum allowed number of output tokens for %s", p.MaxTokens, limit, p.Model))
	}
	if len(p.Messages) == 0 {
		return bad("messages: at least one message is required")
	}
	for i, m := range p.Messages {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		if m.Role != want {
			return bad(fmt.Sprintf("messages.%d.role: roles must alternate between \"user\" and \"assistant\", starting with \"user\"", i))
		}
		t, _, err := blocks(m.Content, fmt.Sprintf("messages.%d.content", i))
		if err != nil {
			return bad(err.Error())
		}
		if strings.TrimSpace(t) == "" && i < len(p.Messages)-1 {
			return bad(fmt.Sprintf("messages.%d: all messages must have non-empty content except for the optional final assistant message", i))
		}
		if m.Role == "user" {
			rec.Prompt = t
		}
	}
	sys, cached, err := blocks(p.System, "system")
	if err != nil {
		return bad(err.Error())
	}
	rec.System, rec.CacheControl = sys, cached
	if t := p.Temperature; t != nil && (*t < 0 || *t > 1) {
		return bad("temperature: Input should be less than or equal to 1")
	}
	if t := p.TopP; t != nil && (*t < 0 || *t > 1) {
		return bad("top_p: Input should be less than or equal to 1")
	}
	if t := p.TopK; t != nil && *t < 0 {
		return bad("top_k: Input should be greater than or equal to 0")
	}
	if p.Temperature != nil && p.TopP != nil {
		return bad("temperature and top_p cannot both be specified for this model. Please use only one.")
	}
	for i, ss := range p.StopSequences {
		if strings.TrimSpace(ss) == "" {
			return bad(fmt.Sprintf("stop_sequences.%d: each stop sequence must contain non-whitespace", i))
		}
	}
	return rec, 0, "", ""
}

// step picks the scripted step of a request for prompt (its n-th attempt).
func step(prompt string, n int) string {
	if d, ok := strings.CutPrefix(prompt, "!"); ok {
		if f := strings.Fields(d); len(f) > 0 {
			steps := strings.Split(f[0], ",")
			return steps[min(n, len(steps))-1]
		}
	}
	return "200"
}

// admitLocked applies RPS; false means 429.
func (s *Server) admitLocked(now time.Time) bool {
	if s.RPS <= 0 {
		return true
	}
	i := 0
	for i < len(s.window) && !s.window[i].After(now.Add(-time.Second)) {
		i++
	}
	s.window = s.window[i:]
	if len(s.window) >= s.RPS {
		s.n429++
		return false
	}
	s.window = append(s.window, now)
	return true
}

// rateLimitHeaders sets the anthropic-ratelimit-* headers of an RPS limit.
func (s *Server) rateLimitHeaders(h http.Header, now time.Time, remaining int) {
	reset := now.Add(time.Second).UTC().Format(time.RFC3339)
	if len(s.window) > 0 {
		reset = s.window[0].Add(time.Second).UTC().Format(time.RFC3339)
	}
	h.Set("anthropic-ratelimit-requests-limit", strconv.Itoa(s.RPS*60))
	h.Set("anthropic-ratelimit-requests-remaining", strconv.Itoa(remaining))
	h.Set("anthropic-ratelimit-requests-reset", reset)
}

func (s *Server) serveMessages(w http.ResponseWriter, r *http.Request, arrived time.Time, reqID, auth string) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		WriteError(w, 400, "invalid_request_error", "content-type: must be application/json", reqID)
		return
	}
	body, err := readBody(r)
	if err != nil {
		WriteError(w, 400, "invalid_request_error", "body: "+err.Error(), reqID)
		return
	}
	var p params
	if err := decodeStrict(body, &p); err != nil {
		WriteError(w, 400, "invalid_request_error", "body: "+err.Error(), reqID)
		return
	}
	rec, status, typ, msg := s.validate(&p)
	rec.At, rec.Auth, rec.Child = arrived, auth, r.Header.Get("X-Child")

	s.mu.Lock()
	s.attempts[rec.Prompt]++
	rec.Step = step(rec.Prompt, s.attempts[rec.Prompt])
	if s.Script != nil {
		if st := s.Script(arrived); st != "" {
			rec.Step = st
		}
	}
	if status == 0 && !s.admitLocked(arrived) {
		rec.Step = "429rps"
	}
	s.log = append(s.log, rec)
	hook, delay := s.OnRequest, s.Delay
	if s.RPS > 0 {
		s.rateLimitHeaders(w.Header(), arrived, max(0, s.RPS-len(s.window)))
	}
	s.mu.Unlock()
	if hook != nil {
		hook(rec.Prompt, arrived)
	}
	if status != 0 {
		WriteError(w, status, typ, msg, reqID)
		return
	}
	if rec.Step == "slow" {
		t := time.NewTimer(5 * time.Second)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if s.failStep(w, rec, reqID) {
		return
	}
	if delay != nil {
		if d := delay(rec.Prompt); d > 0 {
			time.Sleep(d)
		}
	}
	m := s.answer(&p, rec)
	w.Header().Set("request-id", reqID)
	if p.Stream {
		s.stream(w, m, rec.Step == "streamcut")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(m)
	w.Write(b)
}

// failStep plays the failure steps; false means answer normally.
func (s *Server) failStep(w http.ResponseWriter, rec Request, reqID string) bool {
	now := time.Now()
	switch rec.Step {
	case "429rps":
		w.Header().Set("retry-after", "1")
		WriteError(w, 429, "rate_limit_error", "This request would exceed your organization's rate limit of requests per minute.", reqID)
	case "429":
		w.Header().Set("retry-after", "1")
		w.Header().Set("anthropic-ratelimit-requests-remaining", "0")
		w.Header().Set("anthropic-ratelimit-requests-reset", now.Add(time.Second).UTC().Format(time.RFC3339))
		WriteError(w, 429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", reqID)
	case "429ms":
		w.Header().Set("retry-after-ms", "50")
		WriteError(w, 429, "rate_limit_error", "rate limited", reqID)
	case "429reset":
		w.Header().Set("anthropic-ratelimit-requests-remaining", "0")
		w.Header().Set("anthropic-ratelimit-requests-reset", now.Add(2*time.Second).UTC().Format(time.RFC3339))
		w.Header().Set("anthropic-ratelimit-tokens-remaining", "5000")
		w.Header().Set("anthropic-ratelimit-tokens-reset", now.Add(time.Second).UTC().Format(time.RFC3339))
		WriteError(w, 429, "rate_limit_error", "rate limited", reqID)
	case "529":
		WriteError(w, 529, "overloaded_error", "Overloaded", reqID)
	case "500":
		WriteError(w, 500, "api_error", "Internal server error", reqID)
	case "400":
		WriteError(w, 400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum", reqID)
	case "413":
		WriteError(w, 413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", reqID)
	case "drop":
		hijackClose(w, "")
	case "cut":
		hijackClose(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"id\":\"msg_x\",\"type\":\"message\",")
	case "malformed":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("request-id", reqID)
		w.Write([]byte(`{"id":"msg_x","type":"message","content":[{"type":"text","text":"unterminated`))
	default:
		return false
	}
	return true
}

func readBody(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}

// Message is the API's message object.
type Message struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []contentBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        Usage          `json:"usage"`
}

type contentBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Usage is the API's usage object.
type Usage struct {
	InputTokens              int64  `json:"input_tokens"`
	OutputTokens             int64  `json:"output_tokens"`
	CacheCreationInputTokens int64  `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64  `json:"cache_read_input_tokens"`
	ServiceTier              string `json:"service_tier"`
}

// answer builds the message for a valid request: "answer: <prompt>", cut at a stop sequence.
func (s *Server) answer(p *params, rec Request) Message {
	s.mu.Lock()
	id := s.nextID("msg_fake")
	var created, read int64
	if rec.CacheControl {
		n := int64(len(rec.System)/4 + 1)
		if s.cached[rec.System] {
			read = n
		} else {
			created = n
			s.cached[rec.System] = true
		}
	}
	s.mu.Unlock()
	text, reason := "answer: "+rec.Prompt, "end_turn"
	var stopSeq *string
	for _, ss := range p.StopSequences {
		if i := strings.Index(text, ss); i >= 0 {
			text, reason = text[:i], "stop_sequence"
			stopSeq = &ss
			break
		}
	}
	if rec.Step == "refusal" {
		text, reason = "", "refusal"
	}
	in := int64(len(rec.Prompt)/4 + 1)
	if !rec.CacheControl {
		in += int64(len(rec.System) / 4)
	}
	m := Message{ID: id, Type: "message", Role: "assistant", Model: p.Model, StopReason: &reason, StopSequence: stopSeq,
		Usage: Usage{InputTokens: in, OutputTokens: int64(len(text)/4 + 1), CacheCreationInputTokens: created,
			CacheReadInputTokens: read, ServiceTier: "standard"}}
	m.Content = []contentBlock{}
	if text != "" {
		m.Content = append(m.Content, contentBlock{Type: "text", Text: text})
	}
	return m
}

func hijackClose(w http.ResponseWriter, raw string) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	if raw != "" {
		buf.WriteString(raw)
		buf.Flush()
	}
	conn.Close()
}
