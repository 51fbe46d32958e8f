package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Prompt is one decoded prompt frame. Its JSON encoding is the default wire format of a prompt
// frame; [EncodePrompt] produces it.
type Prompt struct {
	// ID is the producer's identifier, copied into the outcome record; it may be empty (the
	// input cursor always identifies the prompt).
	ID     string `json:"id,omitempty"`
	Prompt string `json:"prompt"`
	System string `json:"system,omitempty"`
	// Model overrides the agent's model for this prompt.
	Model string `json:"model,omitempty"`
	// MaxTokens caps the answer; 0 means the agent's default.
	MaxTokens int `json:"max_tokens,omitempty"`
	// TS is when the prompt was written, in Unix milliseconds; 0 means unknown, and the TTL and
	// the end-to-end latency then count from when the agent read the frame.
	TS int64 `json:"ts,omitempty"`
	// TTLMS is the prompt's time to live in milliseconds; 0 means the agent's default TTL.
	TTLMS int64 `json:"ttl_ms,omitempty"`
	// Metadata is opaque JSON echoed into the outcome record. A string field "user_id" in it is
	// also sent as the request's metadata.user_id.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Decoder turns a prompt frame into a Prompt. The frame aliases the shared mapping: a Decoder
// must copy what it keeps (string conversions do). A returned error makes the frame a rejected
// outcome.
type Decoder func(frame []byte) (Prompt, error)

// ErrEmptyPrompt is returned by [DecodePrompt] for a frame without prompt text.
var ErrEmptyPrompt = errors.New("empty prompt")

// DecodePrompt is the default [Decoder]. A frame whose first non-space byte is '{' must be a JSON
// object with the fields of [Prompt]; any other frame must be UTF-8 text and is the prompt itself.
func DecodePrompt(frame []byte) (Prompt, error) {
	t := bytes.TrimLeft(frame, " \t\r\n")
	if len(t) > 0 && t[0] == '{' {
		var p Prompt
		if err := json.Unmarshal(t, &p); err != nil {
			return Prompt{}, fmt.Errorf("decode JSON prompt: %w", err)
		}
		if strings.TrimSpace(p.Prompt) == "" {
			return Prompt{}, ErrEmptyPrompt
		}
		if p.MaxTokens < 0 {
			return Prompt{}, fmt.Errorf("decode JSON prompt: negative max_tokens %d", p.MaxTokens)
		}
		if p.TTLMS < 0 {
			return Prompt{}, fmt.Errorf("decode JSON prompt: negative ttl_ms %d", p.TTLMS)
		}
		if len(p.Metadata) > 0 {
			// json.RawMessage already holds a copy, but compact it so records stay small.
			var b bytes.Buffer
			if err := json.Compact(&b, p.Metadata); err == nil {
				p.Metadata = b.Bytes()
			}
		}
		return p, nil
	}
	if !utf8.Valid(frame) {
		return Prompt{}, errors.New("decode text prompt: not valid UTF-8")
	}
	if len(bytes.TrimSpace(frame)) == 0 {
		return Prompt{}, ErrEmptyPrompt
	}
	return Prompt{Prompt: string(frame)}, nil
}

// EncodePrompt returns the JSON frame for p, for producers.
func EncodePrompt(p Prompt) ([]byte, error) { return json.Marshal(p) }

// userID returns metadata.user_id when the metadata is an object with a string user_id.
func (p *Prompt) userID() string {
	if len(p.Metadata) == 0 || p.Metadata[0] != '{' {
		return ""
	}
	var m struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(p.Metadata, &m) != nil {
		return ""
	}
	return m.UserID
}

// Status is the final state of a prompt.
type Status string

const (
	// StatusAnswered: the API answered; Text holds the answer.
	StatusAnswered Status = "answered"
	// StatusFailed: a non-retryable error, or retries exhausted; Error says why.
	StatusFailed Status = "failed"
	// StatusExpired: the prompt's TTL ran out before it could be sent (or sent again).
	StatusExpired Status = "expired"
	// StatusRejected: the frame could not be decoded.
	StatusRejected Status = "rejected"
)

// Outcome is the record the agent writes to the response log, one JSON frame per prompt (or per
// coalesced group of prompts).
type Outcome struct {
	ID string `json:"id,omitempty"`
	// Cursor is the prompt frame's cursor in the input log; readers drop duplicates by it.
	Cursor     int64  `json:"cursor"`
	Status     Status `json:"status"`
	Model      string `json:"model,omitempty"`
	Text       string `json:"text,omitempty"`
	StopReason string `json:"stop_reason,omitempty"`
	// Truncated is set when Text was shortened to fit the response log's frame size.
	Truncated    bool  `json:"truncated,omitempty"`
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	Attempts     int   `json:"attempts"`
	// APIMS is the latency of the last API attempt; E2EMS runs from the prompt's ts (or from
	// when the agent read it) to when the outcome was written.
	APIMS      float64 `json:"api_ms"`
	E2EMS      float64 `json:"e2e_ms"`
	Error      string  `json:"error,omitempty"`
	HTTPStatus int     `json:"http_status,omitempty"`
	// IDs and Cursors list every prompt of a coalesced request (Cursor is then Cursors[0]).
	IDs      []string        `json:"ids,omitempty"`
	Cursors  []int64         `json:"cursors,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// TS is when the outcome was written, in Unix milliseconds.
	TS int64 `json:"ts"`
}

// ParseOutcome decodes an outcome record.
func ParseOutcome(frame []byte) (Outcome, error) {
	var o Outcome
	if err := json.Unmarshal(frame, &o); err != nil {
		return Outcome{}, fmt.Errorf("decode outcome: %w", err)
	}
	return o, nil
}

// Covers reports whether the outcome is for the prompt with the given input cursor.
func (o *Outcome) Covers(cursor int64) bool {
	if len(o.Cursors) == 0 {
		return o.Cursor == cursor
	}
	for _, c := range o.Cursors {
		if c == cursor {
			return true
		}
	}
	return false
}

// Matches reports whether the outcome is for the prompt with the given id.
func (o *Outcome) Matches(id string) bool {
	if id == "" {
		return false
	}
	if o.ID == id {
		return true
	}
	for _, x := range o.IDs {
		if x == id {
			return true
		}
	}
	return false
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
