package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// fakeAPI speaks the Messages API wire format (POST /v1/messages, JSON bodies, error envelopes,
// retry-after headers) for the real SDK client. What it answers is scripted by a directive at the
// start of the prompt, one step per attempt ("!429,200 text": first 429, then an answer; the
// last step repeats):
//
//	200        answer "answer: <prompt>"
//	429        rate_limit_error with retry-after: 1 (seconds)
//	429ms      rate_limit_error with retry-after-ms: 50
//	529 / 500  overloaded_error / api_error
//	400 / 403  invalid_request_error / permission_error
//	slow       answer after 5 s (past the agent's timeout in these tests)
//	drop       close the connection without an answer
//	cut        send the headers and half the body, then close
//	malformed  200 with a body that is not JSON
type fakeAPI struct {
	key string

	mu       sync.Mutex
	attempts map[string]int
	log      []fakeAPIRequest
	// onRequest, if set, runs as each request arrives (benchmarks take arrival times here).
	onRequest func(prompt string, at time.Time)
	// delay, if set, is applied before each 200 answer.
	delay func(prompt string) time.Duration
}

type fakeAPIRequest struct {
	At        time.Time
	Prompt    string
	System    string
	Model     string
	MaxTokens int
	UserID    string
	Auth      string // "x-api-key" or "bearer"
	Step      string
	Child     string // X-Child header (crash test)
}

func newFakeAPI(key string) *fakeAPI { return &fakeAPI{key: key, attempts: map[string]int{}} }

func (f *fakeAPI) requests() []fakeAPIRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeAPIRequest(nil), f.log...)
}

func (f *fakeAPI) attemptsFor(prompt string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[prompt]
}

func writeAPIError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", "req_fake_err")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q},"request_id":"req_fake_err"}`, typ, msg)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		writeAPIError(w, 404, "not_found_error", "no route "+r.Method+" "+r.URL.Path)
		return
	}
	auth, key := "x-api-key", r.Header.Get("X-Api-Key")
	if key == "" {
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			auth, key = "bearer", b
		}
	}
	if key != f.key {
		writeAPIError(w, 401, "authentication_error", "invalid x-api-key")
		return
	}
	if r.Header.Get("Anthropic-Version") == "" {
		writeAPIError(w, 400, "invalid_request_error", "anthropic-version header is required")
		return
	}
	var body struct {
		Model     string          `json:"model"`
		MaxTokens int             `json:"max_tokens"`
		System    json.RawMessage `json:"system"`
		Metadata  struct {
			UserID string `json:"user_id"`
		} `json:"metadata"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeAPIError(w, 400, "invalid_request_error", "body: "+err.Error())
		return
	}
	if body.Model == "" || body.MaxTokens <= 0 || len(body.Messages) == 0 || body.Messages[0].Role != "user" {
		writeAPIError(w, 400, "invalid_request_error", "model, max_tokens and a user message are required")
		return
	}
	prompt := blocksText(body.Messages[0].Content)
	system := blocksText(body.System)

	f.mu.Lock()
	f.attempts[prompt]++
	n := f.attempts[prompt]
	step := "200"
	if d, ok := strings.CutPrefix(prompt, "!"); ok {
		steps := strings.Split(strings.Fields(d)[0], ",")
		step = steps[min(n, len(steps))-1]
	}
	f.log = append(f.log, fakeAPIRequest{At: arrived, Prompt: prompt, System: system, Model: body.Model,
		MaxTokens: body.MaxTokens, UserID: body.Metadata.UserID, Auth: auth, Step: step, Child: r.Header.Get("X-Child")})
	hook, delay := f.onRequest, f.delay
	f.mu.Unlock()
	if hook != nil {
		hook(prompt, arrived)
	}

	switch step {
	case "429":
		w.Header().Set("retry-after", "1")
		writeAPIError(w, 429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
	case "429ms":
		w.Header().Set("retry-after-ms", "50")
		writeAPIError(w, 429, "rate_limit_error", "rate limited")
	case "529":
		writeAPIError(w, 529, "overloaded_error", "Overloaded")
	case "500":
		writeAPIError(w, 500, "api_error", "Internal server error")
	case "400":
		writeAPIError(w, 400, "invalid_request_error", "prompt is too long")
	case "403":
		writeAPIError(w, 403, "permission_error", "not allowed")
	case "drop":
		hijackClose(w, "")
	case "cut":
		msg := messageJSON(body.Model, "answer: "+prompt, len(prompt))
		hijackClose(w, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg[:len(msg)/2]))
	case "malformed":
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"msg_x","type":"message","content":[{"type":"text","text":"unterminated`))
	case "slow":
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
		fallthrough
	default:
		if delay != nil {
			if d := delay(prompt); d > 0 {
				time.Sleep(d)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("request-id", "req_fake_ok")
		w.Write([]byte(messageJSON(body.Model, "answer: "+prompt, len(prompt))))
	}
}

func messageJSON(model, text string, promptLen int) string {
	t, _ := json.Marshal(text)
	return fmt.Sprintf(`{"id":"msg_fake","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":%s}],`+
		`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d,`+
		`"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"service_tier":"standard"}}`,
		model, t, promptLen/4+1, len(text)/4+1)
}

// blocksText reads a content field that is either a string or a list of text blocks.
func blocksText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Type, Text string
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var b strings.Builder
	for _, x := range blocks {
		if x.Type == "text" {
			b.WriteString(x.Text)
		}
	}
	return b.String()
}

func hijackClose(w http.ResponseWriter, raw string) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fakeAPI: no hijacker")
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

// pipeNet is an in-memory network (net.Pipe connections) for running the HTTP server and the SDK
// client inside a synctest bubble, where real sockets would not let fake time advance.
type pipeNet struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeNet() *pipeNet { return &pipeNet{conns: make(chan net.Conn), closed: make(chan struct{})} }

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return pipeAddr{} }

func (p *pipeNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case p.conns <- s:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// servePipe serves h over a pipeNet; the returned client dials it. stop shuts both down.
func servePipe(h http.Handler) (client *http.Client, stop func()) {
	pn := newPipeNet()
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { srv.Serve(pn); close(done) }()
	tr := &http.Transport{DialContext: pn.DialContext, MaxIdleConnsPerHost: 64}
	return &http.Client{Transport: tr}, func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-done
	}
}
