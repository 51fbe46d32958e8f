package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Prompt is one decoded prompt frame. Its JSON encoding is the JSON wire format of a prompt frame
// ([EncodePrompt] produces it); every field but prompt/messages is optional, and a field not
// listed here makes the frame a rejected outcome rather than being ignored.
type Prompt struct {
	// ID is the producer's identifier, copied into the outcome record; it may be empty (the
	// input cursor always identifies the prompt).
	ID string `json:"id,omitempty"`
	// Prompt is the user's text. Give either Prompt or Messages.
	Prompt string `json:"prompt,omitempty"`
	// Messages is a multi-turn conversation: turns alternate user/assistant, starting and ending
	// with the user.
	Messages []Turn `json:"messages,omitempty"`
	System   string `json:"system,omitempty"`
	// Model overrides the agent's model for this prompt.
	Model string `json:"model,omitempty"`
	// MaxTokens caps the answer; 0 means the agent's default.
	MaxTokens     int      `json:"max_tokens,omitempty"`
	StopSequences []string `json:"stop_sequences,omitempty"`
	// Effort is output_config.effort: "low", "medium", "high", "xhigh" or "max".
	Effort string `json:"effort,omitempty"`
	// Temperature, TopP and TopK are recognised only to be refused with a reason: the Messages
	// API as the SDK (anthropic-sdk-go v2) speaks it takes no sampling parameters.
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	TopK        *int     `json:"top_k,omitempty"`
	// TS is when the prompt was written, in Unix milliseconds; 0 means unknown, and the TTL and
	// the end-to-end latency then count from when the agent read the frame.
	TS int64 `json:"ts,omitempty"`
	// TTLMS is the prompt's time to live in milliseconds; 0 means the agent's default TTL.
	TTLMS int64 `json:"ttl_ms,omitempty"`
	// Metadata is opaque JSON echoed into the outcome record. A string field "user_id" in it is
	// also sent as the request's metadata.user_id.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Turn is one message of a multi-turn prompt.
type Turn struct {
	Role    string `json:"role"` // "user" or "assistant"
	Content string `json:"content"`
}

// Decoder turns a prompt frame into a Prompt. The frame aliases the shared mapping: a Decoder
// must copy what it keeps (string conversions do). A returned error makes the frame a rejected
// outcome, which carries the returned Prompt's ID and Metadata when the decoder could read them.
type Decoder func(frame []byte) (Prompt, error)

// ErrEmptyPrompt is returned for a frame without prompt text.
var ErrEmptyPrompt = errors.New("empty prompt")

// Format says how prompt frames are to be read.
type Format int

const (
	// FormatAuto: a frame that is a JSON object with a "prompt" or "messages" field is a JSON
	// prompt; any other frame (Go code, JSON log lines, prose) is UTF-8 text taken as the prompt.
	FormatAuto Format = iota
	// FormatJSON: every frame must be a JSON prompt object.
	FormatJSON
	// FormatText: every frame is text.
	FormatText
)

// NewDecoder returns the Decoder for a format.
func NewDecoder(f Format) Decoder {
	switch f {
	case FormatJSON:
		return decodeJSONOnly
	case FormatText:
		return decodeText
	}
	return DecodePrompt
}

// DecodePrompt is the default [Decoder] ([FormatAuto]).
func DecodePrompt(frame []byte) (Prompt, error) {
	if isPromptObject(frame) {
		return decodeJSON(frame)
	}
	return decodeText(frame)
}

func decodeJSONOnly(frame []byte) (Prompt, error) {
	t := bytes.TrimLeft(frame, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return Prompt{}, errors.New("decode JSON prompt: not a JSON object (the agent reads JSON input)")
	}
	return decodeJSON(frame)
}

// isPromptObject reports whether frame is a JSON object with a "prompt" or "messages" key.
func isPromptObject(frame []byte) bool {
	t := bytes.TrimLeft(frame, " \t\r\n")
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return false
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(t, &keys) != nil {
		return false
	}
	_, p := keys["prompt"]
	_, m := keys["messages"]
	return p || m
}

func decodeText(frame []byte) (Prompt, error) {
	if !utf8.Valid(frame) {
		return Prompt{}, errors.New("decode text prompt: not valid UTF-8")
	}
	if len(bytes.TrimSpace(frame)) == 0 {
		return Prompt{}, ErrEmptyPrompt
	}
	return Prompt{Prompt: string(frame)}, nil
}

// decodeJSON reads a JSON prompt strictly; on error it still returns the id and metadata when
// they could be read, so the rejected outcome keeps them.
func decodeJSON(frame []byte) (Prompt, error) {
	var p Prompt
	d := json.NewDecoder(bytes.NewReader(frame))
	d.DisallowUnknownFields()
	err := d.Decode(&p)
	if err == nil && d.More() {
		err = errors.New("data after the JSON object")
	}
	if err != nil {
		var ident struct {
			ID       json.RawMessage `json:"id"`
			Metadata json.RawMessage `json:"metadata"`
		}
		var keep Prompt
		if json.Unmarshal(frame, &ident) == nil {
			_ = json.Unmarshal(ident.ID, &keep.ID)
			keep.Metadata = compactJSON(ident.Metadata)
		}
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if strings.HasPrefix(msg, "unknown field") {
			msg += " (prompt fields: id, prompt, messages, system, model, max_tokens, stop_sequences, effort, ts, ttl_ms, metadata)"
		}
		return keep, fmt.Errorf("decode JSON prompt: %s", msg)
	}
	p.Metadata = compactJSON(p.Metadata)
	keep := Prompt{ID: p.ID, Metadata: p.Metadata}
	if err := p.validate(); err != nil {
		return keep, fmt.Errorf("decode JSON prompt: %w", err)
	}
	return p, nil
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return nil
	}
	return b.Bytes()
}

// validate checks what the API would refuse, so the reason is the prompt's own.
func (p *Prompt) validate() error {
	switch {
	case p.Prompt != "" && len(p.Messages) > 0:
		return errors.New("give either prompt or messages, not both")
	case len(p.Messages) == 0 && strings.TrimSpace(p.Prompt) == "":
		return ErrEmptyPrompt
	case p.MaxTokens < 0:
		return fmt.Errorf("negative max_tokens %d", p.MaxTokens)
	case p.TTLMS < 0:
		return fmt.Errorf("negative ttl_ms %d", p.TTLMS)
	case p.Temperature != nil || p.TopP != nil || p.TopK != nil:
		return errors.New("temperature, top_p and top_k are not supported: the Messages API of anthropic-sdk-go v2 " +
			"takes no sampling parameters (effort is the supported control)")
	case p.Effort != "" && !efforts[p.Effort]:
		return fmt.Errorf("effort %q is not one of low, medium, high, xhigh, max", p.Effort)
	case p.Metadata != nil && p.Metadata[0] != '{':
		return errors.New("metadata must be a JSON object")
	}
	for i, s := range p.StopSequences {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("stop_sequences[%d] is empty or whitespace", i)
		}
	}
	for i, t := range p.Messages {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		if t.Role != want {
			return fmt.Errorf("messages[%d].role is %q, want %q (turns alternate, starting with the user)", i, t.Role, want)
		}
		if strings.TrimSpace(t.Content) == "" {
			return fmt.Errorf("messages[%d].content is empty", i)
		}
	}
	if n := len(p.Messages); n > 0 && p.Messages[n-1].Role != "user" {
		return errors.New("messages: the last turn must be the user's")
	}
	return nil
}

// alone reports whether the prompt must be sent in a request of its own (never coalesced).
func (p *Prompt) alone() bool {
	return len(p.Messages) > 0 || p.Model != "" || len(p.StopSequences) > 0 || p.Effort != ""
}

var efforts = map[string]bool{"low": true, "medium": true, "high": true, "xhigh": true, "max": true}

// text is the prompt's user text: Prompt, or the last user turn.
func (p *Prompt) text() string {
	if n := len(p.Messages); n > 0 {
		return p.Messages[n-1].Content
	}
	return p.Prompt
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
