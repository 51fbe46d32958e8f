package fakeapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"
)

// batch is one message batch: its items are answered when it ends.
type batch struct {
	id      string
	created time.Time
	ends    time.Time
	items   []batchItem
}

type batchItem struct {
	CustomID string          `json:"custom_id"`
	Params   json.RawMessage `json:"params"`
}

var customIDRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, reqID, auth string) {
	body, err := readBody(r)
	if err != nil {
		WriteError(w, 400, "invalid_request_error", "body: "+err.Error(), reqID)
		return
	}
	var req struct {
		Requests []batchItem `json:"requests"`
	}
	if err := decodeStrict(body, &req); err != nil {
		WriteError(w, 400, "invalid_request_error", "body: "+err.Error(), reqID)
		return
	}
	if len(req.Requests) == 0 || len(req.Requests) > 100000 {
		WriteError(w, 400, "invalid_request_error", "requests: between 1 and 100000 requests are required", reqID)
		return
	}
	seen := map[string]bool{}
	for i, it := range req.Requests {
		if !customIDRe.MatchString(it.CustomID) {
			WriteError(w, 400, "invalid_request_error", fmt.Sprintf("requests.%d.custom_id: must match ^[a-zA-Z0-9_-]{1,64}$", i), reqID)
			return
		}
		if seen[it.CustomID] {
			WriteError(w, 400, "invalid_request_error", fmt.Sprintf("requests.%d.custom_id: duplicate custom_id %q", i, it.CustomID), reqID)
			return
		}
		seen[it.CustomID] = true
		var p params
		if err := decodeStrict(it.Params, &p); err != nil {
			WriteError(w, 400, "invalid_request_error", fmt.Sprintf("requests.%d.params: %v", i, err), reqID)
			return
		}
		if p.Stream {
			WriteError(w, 400, "invalid_request_error", fmt.Sprintf("requests.%d.params.stream: streaming is not supported in batches", i), reqID)
			return
		}
	}
	now := time.Now()
	s.mu.Lock()
	b := &batch{id: s.nextID("msgbatch_fake"), created: now, ends: now.Add(s.BatchDelay), items: req.Requests}
	s.batches[b.id] = b
	for _, it := range req.Requests {
		var p params
		_ = json.Unmarshal(it.Params, &p)
		rec, _, _, _ := s.validate(&p)
		rec.At, rec.Auth, rec.Batch, rec.CustomID, rec.Child = now, auth, b.id, it.CustomID, r.Header.Get("X-Child")
		s.attempts[rec.Prompt]++
		rec.Step = step(rec.Prompt, s.attempts[rec.Prompt])
		s.log = append(s.log, rec)
	}
	s.mu.Unlock()
	s.writeBatch(w, b, reqID, now)
}

func (s *Server) writeBatch(w http.ResponseWriter, b *batch, reqID string, now time.Time) {
	status, n := "in_progress", int64(len(b.items))
	counts := map[string]int64{"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
	var ended, results any
	if !now.Before(b.ends) {
		status = "ended"
		counts["processing"] = 0
		counts["succeeded"] = n // an approximation: per-item failures show in the results
		ended = b.ends.UTC().Format(time.RFC3339Nano)
		results = "https://api.fake/v1/messages/batches/" + b.id + "/results"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", reqID)
	json.NewEncoder(w).Encode(map[string]any{
		"id": b.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
		"ended_at": ended, "created_at": b.created.UTC().Format(time.RFC3339Nano),
		"expires_at": b.created.Add(24 * time.Hour).UTC().Format(time.RFC3339Nano), "archived_at": nil,
		"cancel_initiated_at": nil, "results_url": results,
	})
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request, id, reqID string) {
	s.mu.Lock()
	b := s.batches[id]
	s.mu.Unlock()
	if b == nil {
		WriteError(w, 404, "not_found_error", "Not found: message batch "+id, reqID)
		return
	}
	s.writeBatch(w, b, reqID, time.Now())
}

// batchResults streams one JSON line per item, in an order other than the request order, as the
// API may.
func (s *Server) batchResults(w http.ResponseWriter, r *http.Request, id, reqID string) {
	s.mu.Lock()
	b := s.batches[id]
	s.mu.Unlock()
	if b == nil {
		WriteError(w, 404, "not_found_error", "Not found: message batch "+id, reqID)
		return
	}
	if time.Now().Before(b.ends) {
		WriteError(w, 400, "invalid_request_error", "Message batch "+id+" is still in progress", reqID)
		return
	}
	w.Header().Set("Content-Type", "application/x-jsonl")
	w.Header().Set("request-id", reqID)
	enc := json.NewEncoder(w)
	for i := len(b.items) - 1; i >= 0; i-- {
		it := b.items[i]
		var p params
		_ = json.Unmarshal(it.Params, &p)
		rec, status, typ, msg := s.validate(&p)
		if status == 0 && (rec.Step == "400" || step(rec.Prompt, 1) == "400") {
			status, typ, msg = 400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"
		}
		if status != 0 {
			enc.Encode(map[string]any{"custom_id": it.CustomID, "result": map[string]any{"type": "errored",
				"error": map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}, "request_id": reqID}}})
			continue
		}
		rec.Step = step(rec.Prompt, 1)
		enc.Encode(map[string]any{"custom_id": it.CustomID, "result": map[string]any{"type": "succeeded", "message": s.answer(&p, rec)}})
	}
}
