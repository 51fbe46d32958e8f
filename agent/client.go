package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// Client sends one request to a model. Implementations must be safe for concurrent use and must
// not retry on their own: the agent owns the retry policy. Return an *[APIError] for HTTP-level
// failures so the agent can tell transient from permanent ones.
type Client interface {
	SendPrompt(ctx context.Context, req Request) (Response, error)
}

// StreamClient is a Client that can also stream an answer: onText gets each text delta as it
// arrives (from the calling goroutine), and the returned Response is the complete answer.
type StreamClient interface {
	Client
	StreamPrompt(ctx context.Context, req Request, onText func(delta string)) (Response, error)
}

// Request is what the agent asks of a Client.
type Request struct {
	Model  string
	System string
	// Prompt is the user's text; with Messages, the last user turn (Messages is then sent).
	Prompt    string
	Messages  []Turn
	MaxTokens int
	// CacheSystem marks the system prompt for prompt caching (cache_control ephemeral).
	CacheSystem bool
	// UserID is sent as metadata.user_id when not empty.
	UserID        string
	StopSequences []string
	Effort        string // output_config.effort; "" = the model's default
}

// Response is a Client's answer.
type Response struct {
	Text         string
	Model        string
	StopReason   string
	InputTokens  int64
	OutputTokens int64
	// CacheCreationInputTokens and CacheReadInputTokens are the prompt-cache writes and hits.
	CacheCreationInputTokens int64
	CacheReadInputTokens     int64
	ServiceTier              string
	MessageID                string // the message's id (msg_...)
	RequestID                string // the request-id response header
}

// APIError is an HTTP error answer from the API.
type APIError struct {
	StatusCode int
	Type       string // e.g. "rate_limit_error", "overloaded_error"
	Message    string
	// ErrorCode is error.details.error_code, when the API gave one.
	ErrorCode string
	RequestID string
	// RetryAfter is what the retry-after-ms or retry-after header asked for, else, for a 429,
	// when the exhausted anthropic-ratelimit-* budget resets; 0 if the server did not say.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("API error %d", e.StatusCode)
	if e.Type != "" {
		s += " " + e.Type
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request-id " + e.RequestID + ")"
	}
	return s
}

// ErrMalformedResponse marks an answer that arrived complete but could not be decoded. It is not
// retried: the API may have processed (and billed) the request.
var ErrMalformedResponse = errors.New("malformed API response")

// errAttemptTimeout marks an attempt cut off by Config.RequestTimeout.
var errAttemptTimeout = errors.New("request timed out")

// errClass sorts API failures by whom they concern.
type errClass int

const (
	// classTransient: overload, rate limits, server and connection errors. The shared back-off
	// handles them; the prompt is tried again.
	classTransient errClass = iota + 1
	// classPrompt: the request of this prompt was refused (a 400 caused by the prompt, a malformed
	// answer): that prompt fails, the others go on.
	classPrompt
	// classFatal: the agent's own configuration was refused (key, permission, billing, model,
	// parameters): every further request would fail the same way, so the agent stops.
	classFatal
)

// accountCodes are error_code values that concern the account, not a prompt.
var accountCodes = map[string]bool{
	"organization_on_hold": true, "claude_code_key_creator_not_member": true, "cmek_key_disabled": true,
	"cmek_key_network_blocked": true, "key_profile_mismatch": true,
}

// classify sorts err. fromConfig reports whether a request field (such as "model") came from the
// agent's configuration rather than from the prompt. For fatal errors, reason is a short label.
func classify(err error, fromConfig func(field string) bool) (class errClass, reason string) {
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.StatusCode == 401 || ae.Type == "authentication_error":
			return classFatal, "authentication_error"
		case ae.StatusCode == 403 || ae.Type == "permission_error":
			return classFatal, "permission_error"
		case ae.StatusCode == 402 || ae.Type == "billing_error":
			return classFatal, "billing_error"
		case accountCodes[ae.ErrorCode]:
			return classFatal, ae.ErrorCode
		case ae.StatusCode == 404 || ae.Type == "not_found_error":
			if fromConfig("model") {
				return classFatal, "model_not_found"
			}
			return classPrompt, ""
		case ae.StatusCode == 400 || ae.Type == "invalid_request_error":
			// The API names the offending field first ("max_tokens: 200000 > 64000, ...").
			if f := messageField(ae.Message); f != "" && fromConfig(f) {
				return classFatal, "invalid_config"
			}
			return classPrompt, ""
		}
	}
	if retryable(err) {
		return classTransient, ""
	}
	return classPrompt, ""
}

// messageField is the request field an invalid_request_error message starts with, if any.
func messageField(msg string) string {
	i := strings.IndexAny(msg, ":. ")
	if i <= 0 || msg[i] == ' ' {
		return ""
	}
	f := msg[:i]
	for _, c := range f {
		if !(c == '_' || c >= 'a' && c <= 'z') {
			return ""
		}
	}
	return f
}

// retryable reports whether err is worth another attempt.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Type {
		case "overloaded_error", "rate_limit_error", "api_error", "timeout_error":
			return true // also as an error event inside a 200 stream
		}
		switch {
		case ae.StatusCode == 408, ae.StatusCode == 409, ae.StatusCode == 425, ae.StatusCode == 429:
			return true
		case ae.StatusCode >= 500: // includes 529 overloaded
			return true
		}
		return false
	}
	if errors.Is(err, ErrMalformedResponse) {
		return false
	}
	if errors.Is(err, errAttemptTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// EchoClient answers every prompt with its own text, without any network: for trying a pipeline
// without spending tokens.
type EchoClient struct{}

// SendPrompt implements Client.
func (EchoClient) SendPrompt(ctx context.Context, req Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, err
	}
	in := req.estimateTokens()
	return Response{Text: req.Prompt, Model: "echo", StopReason: "end_turn", InputTokens: in, OutputTokens: estimateTokens("", req.Prompt)}, nil
}

// StreamPrompt implements StreamClient: the prompt's words, one delta each.
func (e EchoClient) StreamPrompt(ctx context.Context, req Request, onText func(string)) (Response, error) {
	r, err := e.SendPrompt(ctx, req)
	if err != nil {
		return r, err
	}
	for rest := r.Text; rest != ""; {
		i := strings.IndexByte(rest[1:], ' ') + 1
		if i == 0 {
			i = len(rest)
		}
		onText(rest[:i])
		rest = rest[i:]
	}
	return r, nil
}

// estimateTokens is estimateTokens of the whole request.
func (r *Request) estimateTokens() int64 {
	n := len(r.Prompt)
	if len(r.Messages) > 0 {
		n = 0
		for _, t := range r.Messages {
			n += len(t.Content)
		}
	}
	return int64((len(r.System)+n)/3 + 8)
}

// estimateTokens is a conservative input-token estimate (about 3 bytes a token plus framing),
// used for the client-side budget before the API reports the real count.
func estimateTokens(system, prompt string) int64 {
	return int64((len(system)+len(prompt))/3 + 8)
}
