package agent

import (
	"fmt"
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
