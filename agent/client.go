package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Client sends one request to a model. Implementations must be safe for concurrent use and must
// not retry on their own: the agent owns the retry policy. Return an *[APIError] for HTTP-level
// failures so the agent can tell transient from permanent ones.
type Client interface {
	SendPrompt(ctx context.Context, req Request) (Response, error)
}

// Request is what the agent asks of a Client.
type Request struct {
	Model     string
	System    string
	Prompt    string
	MaxTokens int
	// UserID is sent as metadata.user_id when not empty.
	UserID string
}

// Response is a Client's answer.
type Response struct {
	Text         string
	Model        string
	StopReason   string
	InputTokens  int64
	OutputTokens int64
	RequestID    string
}

// APIError is an HTTP error answer from the API.
type APIError struct {
	StatusCode int
	Type       string // e.g. "rate_limit_error", "overloaded_error"
	Message    string
	RequestID  string
	// RetryAfter is what the retry-after-ms or retry-after header asked for; 0 if absent.
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

// retryable reports whether err is worth another attempt.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
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
	in := estimateTokens(req.System, req.Prompt)
	return Response{Text: req.Prompt, Model: "echo", StopReason: "end_turn", InputTokens: in, OutputTokens: estimateTokens("", req.Prompt)}, nil
}

// estimateTokens is a conservative input-token estimate (about 3 bytes a token plus framing),
// used for the client-side budget before the API reports the real count.
func estimateTokens(system, prompt string) int64 {
	return int64((len(system)+len(prompt))/3 + 8)
}
