package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// DefaultModel is the model used when Config.Model is empty: a current, non-deprecated Sonnet.
const DefaultModel = anthropic.ModelClaudeSonnet5_5

// ErrNoAPIKey is returned by [NewAnthropicClient] when no API key is configured.
var ErrNoAPIKey = errors.New("no Anthropic API key: set ANTHROPIC_API_KEY (or use the echo client)")

// AnthropicConfig configures [NewAnthropicClient].
type AnthropicConfig struct {
	// APIKey defaults to the ANTHROPIC_API_KEY environment variable.
	APIKey string
	// BaseURL overrides the API address; empty keeps the SDK's behaviour (ANTHROPIC_BASE_URL,
	// else the production API), so a gateway or a test server can stand in.
	BaseURL string
	// HTTPClient replaces the HTTP client. nil means a clone of http.DefaultTransport that keeps
	// up to MaxIdleConns connections per host (the default 2 would make concurrent requests over
	// HTTP/1.1, e.g. to a gateway, open and close connections all the time).
	HTTPClient *http.Client
	// MaxIdleConns is the idle connections kept per host by the default HTTP client; default 64.
	MaxIdleConns int
	// Options are appended to the SDK client options.
	Options []option.RequestOption
}

// AnthropicClient is the [Client] over the Anthropic Messages API (Messages.New).
type AnthropicClient struct {
	c anthropic.Client
}

// NewAnthropicClient builds the SDK client. The SDK's own retries are disabled: the agent retries.
func NewAnthropicClient(cfg AnthropicConfig) (*AnthropicClient, error) {
	key := cfg.APIKey
	if key == "" {
		key = os.Getenv("ANTHROPIC_API_KEY")
	}
	if strings.TrimSpace(key) == "" {
		return nil, ErrNoAPIKey
	}
	opts := []option.RequestOption{option.WithAPIKey(key), option.WithMaxRetries(0)}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.MaxIdleConns
		if tr.MaxIdleConnsPerHost <= 0 {
			tr.MaxIdleConnsPerHost = 64
		}
		tr.MaxIdleConns = max(tr.MaxIdleConns, tr.MaxIdleConnsPerHost)
		hc = &http.Client{Transport: tr}
	}
	opts = append(opts, option.WithHTTPClient(hc))
	opts = append(opts, cfg.Options...)
	return &AnthropicClient{c: anthropic.NewClient(opts...)}, nil
}

// SendPrompt implements Client with one Messages.New call.
func (c *AnthropicClient) SendPrompt(ctx context.Context, req Request) (Response, error) {
	params := c.params(req)
	// The context carries the agent's per-attempt deadline. An explicit request timeout also keeps
	// the SDK from refusing large max_tokens as "streaming required" (the context still governs).
	var hr *http.Response
	msg, err := c.c.Messages.New(ctx, params, option.WithRequestTimeout(time.Hour), option.WithResponseInto(&hr))
	if err != nil {
		return Response{}, convertSDKError(err)
	}
	r := messageResponse(msg)
	if hr != nil {
		r.RequestID = hr.Header.Get("request-id")
	}
	return r, nil
}

// StreamPrompt implements StreamClient with Messages.NewStreaming: text deltas go to onText as
// they arrive; the accumulated message is the Response.
func (c *AnthropicClient) StreamPrompt(ctx context.Context, req Request, onText func(string)) (Response, error) {
	var hr *http.Response
	stream := c.c.Messages.NewStreaming(ctx, c.params(req), option.WithResponseInto(&hr))
	defer stream.Close()
	var msg anthropic.Message
	for stream.Next() {
		ev := stream.Current()
		if err := msg.Accumulate(ev); err != nil {
			return Response{}, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
		}
		if ev.Type == "content_block_delta" && ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
			onText(ev.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		return Response{}, convertSDKError(err)
	}
	if msg.ID == "" {
		return Response{}, fmt.Errorf("%w: the stream ended before message_start", ErrMalformedResponse)
	}
	r := messageResponse(&msg)
	if hr != nil {
		r.RequestID = hr.Header.Get("request-id")
	}
	return r, nil
}

// messageResponse is the Response of a complete message.
func messageResponse(msg *anthropic.Message) Response {
	var text strings.Builder
	for _, b := range msg.Content {
		if b.Type == "text" {
			text.WriteString(b.Text)
		}
	}
	u := &msg.Usage
	return Response{Text: text.String(), Model: msg.Model, StopReason: string(msg.StopReason),
		InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CacheCreationInputTokens: u.CacheCreationInputTokens,
		CacheReadInputTokens: u.CacheReadInputTokens, ServiceTier: string(u.ServiceTier), MessageID: msg.ID}
}

// params builds the Messages API parameters of a request.
func (c *AnthropicClient) params(req Request) anthropic.MessageNewParams {
	params := anthropic.MessageNewParams{Model: req.Model, MaxTokens: int64(req.MaxTokens)}
	if len(req.Messages) > 0 {
		for _, t := range req.Messages {
			b := anthropic.NewTextBlock(t.Content)
			if t.Role == "assistant" {
				params.Messages = append(params.Messages, anthropic.NewAssistantMessage(b))
			} else {
				params.Messages = append(params.Messages, anthropic.NewUserMessage(b))
			}
		}
	} else {
		params.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(req.Prompt))}
	}
	if req.System != "" {
		params.System = []anthropic.TextBlockParam{{Text: req.System}}
		if req.CacheSystem {
			params.System[0].CacheControl = anthropic.NewCacheControlEphemeralParam()
		}
	}
	if req.UserID != "" {
		params.Metadata = anthropic.MetadataParam{UserID: anthropic.String(req.UserID)}
	}
	if len(req.StopSequences) > 0 {
		params.StopSequences = req.StopSequences
	}
	if req.Effort != "" {
		params.OutputConfig = anthropic.OutputConfigParam{Effort: anthropic.OutputConfigEffort(req.Effort)}
	}
	return params
}

// convertSDKError maps SDK errors onto the agent's error values.
func convertSDKError(err error) error {
	var ae *anthropic.Error
	if errors.As(err, &ae) {
		out := &APIError{StatusCode: ae.StatusCode, Type: string(ae.Type()), Message: ae.Message, RequestID: ae.RequestID,
			ErrorCode: string(ae.ErrorCode())}
		if ae.Response != nil {
			now := time.Now()
			out.RetryAfter = parseRetryAfter(ae.Response.Header, now)
			if out.RetryAfter == 0 && ae.StatusCode == 429 {
				out.RetryAfter = parseRateLimitReset(ae.Response.Header, now)
			}
		}
		return out
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) || strings.Contains(err.Error(), "error parsing response json") ||
		strings.Contains(err.Error(), "expected destination type") {
		return fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	return err
}

// parseRetryAfter reads retry-after-ms (milliseconds) or retry-after (seconds or an HTTP date).
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			return time.Duration(f * float64(time.Millisecond))
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			return time.Duration(f * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	return 0
}

// rateLimitKinds are the budgets the API reports in anthropic-ratelimit-<kind>-remaining and
// anthropic-ratelimit-<kind>-reset (an RFC 3339 time) headers.
var rateLimitKinds = []string{"requests", "tokens", "input-tokens", "output-tokens"}

// parseRateLimitReset is how long until the exhausted budget resets: the latest reset among the
// budgets whose remaining count is 0, else the earliest reset still ahead; 0 if none is given.
func parseRateLimitReset(h http.Header, now time.Time) time.Duration {
	var exhausted, earliest time.Duration
	for _, k := range rateLimitKinds {
		v := h.Get("Anthropic-Ratelimit-" + k + "-Reset")
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || !t.After(now) {
			continue
		}
		d := t.Sub(now)
		if h.Get("Anthropic-Ratelimit-"+k+"-Remaining") == "0" {
			exhausted = max(exhausted, d)
		}
		if earliest == 0 || d < earliest {
			earliest = d
		}
	}
	if exhausted > 0 {
		return exhausted
	}
	return earliest
}
