package fakeapi

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// stream sends m as the API's server-sent events: message_start, content_block_start, ping,
// content_block_delta (text_delta) per chunk, content_block_stop, message_delta, message_stop.
// With cut, it stops halfway with an overloaded_error event, as the API does when it sheds load
// mid-stream.
func (s *Server) stream(w http.ResponseWriter, m Message, cut bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	event := func(name string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		if fl != nil {
			fl.Flush()
		}
	}
	text := ""
	if len(m.Content) > 0 {
		text = m.Content[0].Text
	}
	start := m
	start.Content = []contentBlock{}
	start.StopReason, start.StopSequence = nil, nil
	start.Usage.OutputTokens = 1
	event("message_start", map[string]any{"type": "message_start", "message": start})
	event("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""}})
	event("ping", map[string]any{"type": "ping"})
	chunk := s.StreamChunk
	if chunk <= 0 {
		chunk = 4
	}
	for i := 0; i < len(text); i += chunk {
		if cut && i >= len(text)/2 {
			event("error", map[string]any{"type": "error", "error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}})
			return
		}
		event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": text[i:min(len(text), i+chunk)]}})
	}
	event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": m.StopReason, "stop_sequence": m.StopSequence},
		"usage": map[string]any{"output_tokens": m.Usage.OutputTokens}})
	event("message_stop", map[string]any{"type": "message_stop"})
}
