package agent

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestAgentStream: with Stream, each answer's text deltas are written as Delta records before
// its outcome, numbered per attempt; a stream cut by an overloaded_error event is retried; the
// outcome carries the time to first token.
func TestAgentStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		api.Delay = func(string) time.Duration { return 40 * time.Millisecond }
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", Stream: true, MaxInFlight: 4,
			BackoffBase: 100 * time.Millisecond})
		prompts := []string{"hello streaming world", "!streamcut,200 cut then whole", "short"}
		cursors := map[int64]string{}
		for _, p := range prompts {
			cursors[h.in.append([]byte(p))] = p
		}
		h.start(t)
		var recs []Outcome
		for {
			recs = h.waitOutcomes(t, len(recs)+1, time.Minute)
			final := 0
			for _, r := range recs {
				if r.IsFinal() {
					final++
				}
			}
			if final == len(prompts) {
				break
			}
		}
		h.stop(t)
		type acc struct {
			text    map[int]string // attempt -> text
			nextSeq map[int]int
			final   *Outcome
		}
		got := map[int64]*acc{}
		for i := range recs {
			r := &recs[i]
			a := got[r.Cursor]
			if a == nil {
				a = &acc{text: map[int]string{}, nextSeq: map[int]int{}}
				got[r.Cursor] = a
			}
			if a.final != nil {
				t.Fatalf("record after the outcome of cursor %d: %+v", r.Cursor, r)
			}
			if !r.IsFinal() {
				if r.Seq != a.nextSeq[r.Attempts]+1 {
					t.Fatalf("cursor %d attempt %d: seq %d after %d", r.Cursor, r.Attempts, r.Seq, a.nextSeq[r.Attempts])
				}
				a.nextSeq[r.Attempts] = r.Seq
				a.text[r.Attempts] += r.Text
				continue
			}
			a.final = r
		}
		for c, p := range cursors {
			a := got[c]
			if a == nil || a.final == nil || a.final.Status != StatusAnswered || a.final.Text != "answer: "+p {
				t.Fatalf("%q: %+v", p, a)
			}
			if a.text[a.final.Attempts] != a.final.Text || a.nextSeq[a.final.Attempts] < 2 {
				t.Fatalf("%q: deltas %q, outcome %q", p, a.text[a.final.Attempts], a.final.Text)
			}
			if a.final.TTFTMS < 40 {
				t.Fatalf("%q: ttft %v ms", p, a.final.TTFTMS)
			}
			if strings.HasPrefix(p, "!streamcut") && (a.final.Attempts != 2 || a.text[1] == "" || len(a.text[1]) >= len(a.final.Text)) {
				t.Fatalf("cut stream: attempts %d, first attempt's deltas %q", a.final.Attempts, a.text[1])
			}
		}
		for _, r := range api.Requests() {
			if !r.Stream {
				t.Fatalf("request without stream: %+v", r)
			}
		}
		if s := h.a.Stats(); s.Deltas == 0 || s.Answered != 3 || s.Records != 3 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// TestAgentPromptCache: with CacheSystem the configured system prompt goes with cache_control;
// the first answer writes the cache, the next ones read it, and outcomes and Stats show it.
func TestAgentPromptCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		sys := strings.Repeat("You summarise log lines. ", 40)
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", System: sys, CacheSystem: true,
			MaxInFlight: 1})
		for i := range 5 {
			h.in.append(fmt.Appendf(nil, "line %d", i))
		}
		own := h.in.append(jsonPrompt(t, Prompt{Prompt: "own system", System: "something else"}))
		h.start(t)
		outs := h.waitOutcomes(t, 6, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		writes, reads := 0, 0
		for c, o := range m {
			switch {
			case c == own:
				if o[0].CacheCreationInputTokens != 0 || o[0].CacheReadInputTokens != 0 {
					t.Errorf("a prompt's own system prompt was cached: %+v", o[0])
				}
			case o[0].CacheCreationInputTokens > 0:
				writes++
			case o[0].CacheReadInputTokens > 0:
				reads++
			}
		}
		if writes != 1 || reads != 4 {
			t.Fatalf("cache writes %d reads %d, want 1 and 4", writes, reads)
		}
		for _, r := range api.Requests() {
			if r.CacheControl != (r.Prompt != "own system") {
				t.Errorf("cache_control on %q: %v", r.Prompt, r.CacheControl)
			}
		}
		if s := h.a.Stats(); s.CacheReadTokens == 0 || s.CacheWriteTokens == 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// TestAgentBatchAPI: prompts go out in message batches of BatchSize (or after BatchAge), with
// their cursors as custom_id; results become ordinary outcomes (a per-item error fails only its
// prompt), billed at the batch discount; the checkpoint and the state file end clean.
func TestAgentBatchAPI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		api.BatchDelay = 5 * time.Second
		cp := filepath.Join(t.TempDir(), "cp")
		prices := map[string]Price{"claude-test": {Input: 1, Output: 5}}
		h := newHarness(t, Config{Client: pipeClient(t, api, testKey), Model: "claude-test", Batch: true, BatchSize: 10,
			BatchAge: time.Second, BatchPoll: time.Second, CheckpointPath: cp, Prices: prices})
		cursors := map[int64]string{}
		for i := range 25 {
			p := fmt.Sprintf("prompt %d", i)
			cursors[h.in.append([]byte(p))] = p
		}
		bad := h.in.append([]byte("!400 too long"))
		h.start(t)
		outs := h.waitOutcomes(t, 26, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		for c, p := range cursors {
			o := m[c]
			want := (float64(o[0].InputTokens) + 5*float64(o[0].OutputTokens)) / 1e6 / 2
			if len(o) != 1 || o[0].Status != StatusAnswered || o[0].Text != "answer: "+p || !strings.HasPrefix(o[0].BatchID, "msgbatch_") ||
				o[0].CostUSD != want {
				t.Fatalf("%q: %+v", p, o)
			}
		}
		if o := m[bad]; len(o) != 1 || o[0].Status != StatusFailed || !strings.Contains(o[0].Error, "prompt is too long") {
			t.Fatalf("bad: %+v", o)
		}
		batches := map[string]int{}
		for _, r := range api.Requests() {
			if r.Batch == "" || r.CustomID != fmt.Sprint(keyOf(cursors, r.Prompt, bad)) {
				t.Fatalf("request %+v", r)
			}
			batches[r.Batch]++
		}
		if len(batches) != 3 {
			t.Fatalf("batches %v", batches)
		}
		if c, err := ReadCheckpoint(cp); err != nil || c.Cursor != h.in.iter().End() {
			t.Fatalf("checkpoint %+v %v", c, err)
		}
		if recs, err := ReadBatchState(BatchStatePath(cp)); err != nil || len(recs) != 0 {
			t.Fatalf("batch state %+v %v", recs, err)
		}
	})
}

func keyOf(m map[int64]string, p string, other int64) int64 {
	for c, v := range m {
		if v == p {
			return c
		}
	}
	return other
}

// TestAgentBatchResume stops the agent while its batch is in flight: no outcome is written, the
// checkpoint stays before the batch, and the restarted agent polls the same batch (no prompt is
// submitted twice) and writes every outcome once.
func TestAgentBatchResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeAPI(testKey)
		api.BatchDelay = time.Minute
		cp := filepath.Join(t.TempDir(), "cp")
		cfg := Config{Client: pipeClient(t, api, testKey), Model: "claude-test", Batch: true, BatchSize: 20,
			BatchAge: time.Second, BatchPoll: time.Second, CheckpointPath: cp}
		h := newHarness(t, cfg)
		for i := range 20 {
			h.in.append(fmt.Appendf(nil, "prompt %d", i))
		}
		h.start(t)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		h.stop(t)
		if n := len(outcomesOf(t, h.out)); n != 0 {
			t.Fatalf("%d outcomes before the batch ended", n)
		}
		recs, err := ReadBatchState(BatchStatePath(cp))
		if err != nil || len(recs) != 1 || len(recs[0].Cursors) != 20 {
			t.Fatalf("batch state %+v %v", recs, err)
		}
		if c, _ := ReadCheckpoint(cp); c.Cursor != 0 {
			t.Fatalf("checkpoint %+v", c)
		}
		cfg.Input, cfg.Output, cfg.Outcomes = h.in.iter(), &memWriter{l: h.out}, h.out.iter()
		h2 := &harness{in: h.in, out: h.out, cfg: cfg}
		h2.start(t)
		outs := h2.waitOutcomes(t, 20, 5*time.Minute)
		h2.stop(t)
		seen := map[int64]bool{}
		for _, o := range outs {
			if o.Status != StatusAnswered || o.BatchID != recs[0].ID || seen[o.Cursor] {
				t.Fatalf("outcome %+v", o)
			}
			seen[o.Cursor] = true
		}
		for _, r := range api.Requests() {
			if n := api.Attempts(r.Prompt); n != 1 {
				t.Fatalf("%q submitted %d times", r.Prompt, n)
			}
		}
		if recs, _ := ReadBatchState(BatchStatePath(cp)); len(recs) != 0 {
			t.Fatalf("batch state after the restart %+v", recs)
		}
	})
}
