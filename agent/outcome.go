package agent

import (
	"encoding/json"
	"fmt"
	"time"
)

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
	// StatusRefused: the model declined to answer (stop_reason "refusal"); Text holds what it
	// said before stopping, if anything.
	StatusRefused Status = "refused"
	// StatusDelta marks a Delta record: a piece of a streamed answer, not an outcome.
	StatusDelta Status = "delta"
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
	// CacheCreationInputTokens and CacheReadInputTokens are prompt-cache writes and hits.
	CacheCreationInputTokens int64  `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     int64  `json:"cache_read_input_tokens,omitempty"`
	ServiceTier              string `json:"service_tier,omitempty"`
	// CostUSD estimates what the request cost, from the price table (0: no price known).
	CostUSD float64 `json:"cost_usd,omitempty"`
	// MessageID is the API's message id; RequestID its request-id header (also for failures).
	MessageID string `json:"message_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// BatchID is the message batch that answered the prompt (Config.Batch).
	BatchID  string `json:"batch_id,omitempty"`
	Attempts int    `json:"attempts"`
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
	// TTFTMS is, for a streamed answer, the time from sending to the first text delta.
	TTFTMS float64 `json:"ttft_ms,omitempty"`
	// Seq numbers a Delta record parsed as an Outcome (Status StatusDelta).
	Seq int `json:"seq,omitempty"`
}

// Delta is a record of a streamed answer (Config.Stream): the text that arrived, tagged with the
// prompt's id and cursor, the attempt, and a sequence number from 1 per attempt. The outcome
// record follows the last delta and holds the whole text.
type Delta struct {
	ID       string `json:"id,omitempty"`
	Cursor   int64  `json:"cursor"`
	Status   Status `json:"status"` // StatusDelta
	Attempts int    `json:"attempts"`
	Seq      int    `json:"seq"`
	Text     string `json:"text"`
}

// IsFinal reports whether a parsed record is an outcome (not a Delta).
func (o *Outcome) IsFinal() bool { return o.Status != StatusDelta }

// ParseOutcome decodes an outcome record (or a Delta record, with Status StatusDelta).
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
