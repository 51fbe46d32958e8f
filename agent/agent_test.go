package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestDecodePrompt(t *testing.T) {
	for _, tc := range []struct {
		name, frame string
		want        Prompt
		err         string
	}{
		{"text", "hello there", Prompt{Prompt: "hello there"}, ""},
		{"json", `{"id":"a1","prompt":"hi","system":"be brief","max_tokens":50,"ts":1700000000000,"ttl_ms":2000,"metadata":{"user_id":"u7", "k": 1}}`,
			Prompt{ID: "a1", Prompt: "hi", System: "be brief", MaxTokens: 50, TS: 1700000000000, TTLMS: 2000, Metadata: json.RawMessage(`{"user_id":"u7","k":1}`)}, ""},
		{"json leading space", ` {"prompt":"x"}`, Prompt{Prompt: "x"}, ""},
		{"broken json is text", `{"prompt":`, Prompt{Prompt: `{"prompt":`}, ""},
		{"go code is text", "{\n\tx := 1\n}", Prompt{Prompt: "{\n\tx := 1\n}"}, ""},
		{"json log line is text", `{"level":"info","msg":"disk full"}`, Prompt{Prompt: `{"level":"info","msg":"disk full"}`}, ""},
		{"empty prompt field", `{"id":"x","prompt":""}`, Prompt{}, "empty prompt"},
		{"unknown field", `{"prompt":"x","temprature":0.5}`, Prompt{}, `unknown field "temprature"`},
		{"sampling refused", `{"prompt":"x","temperature":0.5}`, Prompt{}, "temperature, top_p and top_k are not supported"},
		{"bad effort", `{"prompt":"x","effort":"huge"}`, Prompt{}, `effort "huge"`},
		{"prompt and messages", `{"prompt":"x","messages":[{"role":"user","content":"y"}]}`, Prompt{}, "either prompt or messages"},
		{"messages order", `{"messages":[{"role":"assistant","content":"y"}]}`, Prompt{}, `messages[0].role is "assistant"`},
		{"messages end with assistant", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, Prompt{}, "last turn"},
		{"blank stop sequence", `{"prompt":"x","stop_sequences":[" "]}`, Prompt{}, "stop_sequences[0]"},
		{"two objects are text", `{"prompt":"x"} {"prompt":"y"}`, Prompt{Prompt: `{"prompt":"x"} {"prompt":"y"}`}, ""},
		{"multi-turn", `{"id":"c","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}],"model":"claude-haiku-4-5","stop_sequences":["END"],"effort":"low"}`,
			Prompt{ID: "c", Messages: []Turn{{"user", "a"}, {"assistant", "b"}, {"user", "c"}}, Model: "claude-haiku-4-5", StopSequences: []string{"END"}, Effort: "low"}, ""},
		{"negative ttl", `{"prompt":"x","ttl_ms":-1}`, Prompt{}, "negative ttl_ms"},
		{"negative max_tokens", `{"prompt":"x","max_tokens":-5}`, Prompt{}, "negative max_tokens"},
		{"blank text", " \n\t", Prompt{}, "empty prompt"},
		{"invalid utf8", "\xff\xfe", Prompt{}, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePrompt([]byte(tc.frame))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want)
			if string(gj) != string(wj) {
				t.Fatalf("got %s, want %s", gj, wj)
			}
		})
	}
	p := Prompt{Metadata: json.RawMessage(`{"user_id":"u7"}`)}
	if got := p.userID(); got != "u7" {
		t.Fatalf("userID = %q", got)
	}
	// A rejected prompt keeps its id and metadata when they parsed.
	p, err := DecodePrompt([]byte(`{"id":"r1","prompt":"x","colour":"red","metadata":{"k": 2}}`))
	if err == nil || p.ID != "r1" || string(p.Metadata) != `{"k":2}` {
		t.Fatalf("rejected: %+v %v", p, err)
	}
	// Told the input is JSON, text is rejected; told it is text, JSON is the prompt's text.
	if _, err := NewDecoder(FormatJSON)([]byte("plain")); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("json input: %v", err)
	}
	if _, err := NewDecoder(FormatJSON)([]byte(`{"prompt":"x"} {"prompt":"y"}`)); err == nil || !strings.Contains(err.Error(), "data after") {
		t.Fatalf("json input, two objects: %v", err)
	}
	if _, err := NewDecoder(FormatJSON)([]byte(`{"level":"info"}`)); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("json input, log line: %v", err)
	}
	if p, err := NewDecoder(FormatText)([]byte(`{"prompt":"x"}`)); err != nil || p.Prompt != `{"prompt":"x"}` {
		t.Fatalf("text input: %+v %v", p, err)
	}
}

func TestAgentEchoOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{Client: EchoClient{}, Model: "m1"})
		c0 := h.in.append(jsonPrompt(t, Prompt{ID: "j1", Prompt: "hello json", Metadata: json.RawMessage(`{"route":"a"}`)}))
		c1 := h.in.append([]byte("plain text prompt"))
		c2 := h.in.append([]byte(`{"id":"r","prompt":"x","colour":1,"metadata":{"route":"b"}}`))
		h.start(t)
		outs := h.waitOutcomes(t, 3, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		if o := m[c0]; len(o) != 1 || o[0].Status != StatusAnswered || o[0].ID != "j1" || o[0].Text != "hello json" ||
			o[0].Model != "echo" || o[0].Attempts != 1 || string(o[0].Metadata) != `{"route":"a"}` || o[0].StopReason != "end_turn" || o[0].TS == 0 {
			t.Fatalf("json prompt outcome: %+v", o)
		}
		if o := m[c1]; len(o) != 1 || o[0].Status != StatusAnswered || o[0].Text != "plain text prompt" || o[0].ID != "" {
			t.Fatalf("text prompt outcome: %+v", o)
		}
		if o := m[c2]; len(o) != 1 || o[0].Status != StatusRejected || !strings.Contains(o[0].Error, `unknown field "colour"`) ||
			o[0].Attempts != 0 || o[0].ID != "r" || string(o[0].Metadata) != `{"route":"b"}` {
			t.Fatalf("rejected outcome: %+v", o)
		}
		s := h.a.Stats()
		if s.Read != 3 || s.Answered != 2 || s.Rejected != 1 || s.Records != 3 || s.Requests != 2 || s.Pending != 0 ||
			s.InFlight != 0 || s.Watermark != h.in.iter().End() || s.LagBytes != 0 || s.LagFrames != 0 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

func TestAgentTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			return Response{Text: "ok", InputTokens: 1}, nil, 5 * time.Second
		}}
		h := newHarness(t, Config{Client: fc, MaxInFlight: 1, TTL: 8 * time.Second})
		now := time.Now()
		// Already too old by its own ts and the default TTL.
		cOld := h.in.append(jsonPrompt(t, Prompt{ID: "old", Prompt: "old", TS: now.Add(-9 * time.Second).UnixMilli()}))
		// Own ttl_ms overrides the default: 3 s from its ts, but it waits 5 s for the only worker.
		h.in.append(jsonPrompt(t, Prompt{ID: "first", Prompt: "first", TS: now.UnixMilli()}))
		cShort := h.in.append(jsonPrompt(t, Prompt{ID: "short", Prompt: "short", TS: now.UnixMilli(), TTLMS: 3000}))
		// Without ts the TTL counts from reading: 5 s (first) + 5 s wait exceeds 8 s? No: it is sent at 5 s.
		cNoTS := h.in.append([]byte("no ts"))
		h.start(t)
		outs := h.waitOutcomes(t, 4, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		if o := m[cOld][0]; o.Status != StatusExpired || o.Attempts != 0 || !strings.Contains(o.Error, "exceeds TTL 8s") {
			t.Fatalf("old: %+v", o)
		}
		if o := m[cShort][0]; o.Status != StatusExpired || !strings.Contains(o.Error, "TTL 3s") || o.E2EMS != 5000 {
			t.Fatalf("short: %+v", o)
		}
		if o := m[cNoTS][0]; o.Status != StatusAnswered || o.E2EMS != 10000 {
			t.Fatalf("no ts: %+v", o)
		}
		if len(fc.callsFor("old")) != 0 || len(fc.callsFor("short")) != 0 {
			t.Fatal("expired prompts were sent")
		}
		if s := h.a.Stats(); s.Expired != 2 || s.Answered != 2 || s.Requests != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestAgentRetriesAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			switch {
			case strings.HasPrefix(req.Prompt, "flaky") && n <= 3:
				return Response{}, &APIError{StatusCode: 503, Type: "api_error"}, 0
			case strings.HasPrefix(req.Prompt, "limited") && n == 1:
				return Response{}, &APIError{StatusCode: 429, Type: "rate_limit_error", RetryAfter: 7 * time.Second}, 0
			case strings.HasPrefix(req.Prompt, "bad"):
				return Response{}, &APIError{StatusCode: 400, Type: "invalid_request_error", Message: "nope"}, 0
			case strings.HasPrefix(req.Prompt, "down"):
				return Response{}, &APIError{StatusCode: 529, Type: "overloaded_error"}, 0
			case strings.HasPrefix(req.Prompt, "garbled"):
				return Response{}, fmt.Errorf("%w: bad json", ErrMalformedResponse), 0
			}
			return Response{Text: "ok " + req.Prompt, InputTokens: 3, OutputTokens: 2}, nil, 0
		}}
		h := newHarness(t, Config{Client: fc, MaxInFlight: 4, BackoffBase: time.Second, BackoffMax: 3 * time.Second, MaxAttempts: 4})
		cf := h.in.append([]byte("flaky"))
		h.start(t)
		outs := h.waitOutcomes(t, 1, time.Minute)
		o := outs[0]
		if o.Cursor != cf || o.Status != StatusAnswered || o.Attempts != 4 || o.Text != "ok flaky" {
			t.Fatalf("flaky: %+v", o)
		}
		calls := fc.callsFor("flaky")
		// Delays before attempts 2..4: base 1s, 2s, 3s (capped), each jittered into [d/2, d].
		for i, d := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
			gap := calls[i+1].at.Sub(calls[i].at)
			if gap < d/2 || gap > d {
				t.Fatalf("gap before attempt %d = %v, want in [%v, %v]", i+2, gap, d/2, d)
			}
		}

		cl := h.in.append([]byte("limited"))
		outs = h.waitOutcomes(t, 2, time.Minute)
		if o := byCursor(outs)[cl][0]; o.Status != StatusAnswered || o.Attempts != 2 {
			t.Fatalf("limited: %+v", o)
		}
		if c := fc.callsFor("limited"); c[1].at.Sub(c[0].at) < 7*time.Second {
			t.Fatalf("retry-after not honoured: gap %v", c[1].at.Sub(c[0].at))
		}

		cb := h.in.append([]byte("bad"))
		cd := h.in.append([]byte("down"))
		cg := h.in.append([]byte("garbled"))
		outs = h.waitOutcomes(t, 5, time.Minute)
		m := byCursor(outs)
		if o := m[cb][0]; o.Status != StatusFailed || o.Attempts != 1 || o.HTTPStatus != 400 || !strings.Contains(o.Error, "nope") {
			t.Fatalf("bad: %+v", o)
		}
		if o := m[cd][0]; o.Status != StatusFailed || o.Attempts != 4 || o.HTTPStatus != 529 || !strings.Contains(o.Error, "giving up after 4 attempts") {
			t.Fatalf("down: %+v", o)
		}
		if o := m[cg][0]; o.Status != StatusFailed || o.Attempts != 1 || !strings.Contains(o.Error, "malformed") {
			t.Fatalf("garbled: %+v", o)
		}
		h.stop(t)
		if s := h.a.Stats(); s.Retries != 3+1+3 || s.Requests != 4+2+1+4+1 || s.Answered != 2 || s.Failed != 3 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestAgentTTLCutsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			return Response{}, &APIError{StatusCode: 429, RetryAfter: 30 * time.Second}, 0
		}}
		h := newHarness(t, Config{Client: fc, TTL: 10 * time.Second})
		c := h.in.append([]byte("p"))
		h.start(t)
		o := h.waitOutcomes(t, 1, time.Minute)[0]
		h.stop(t)
		if o.Cursor != c || o.Status != StatusExpired || o.Attempts != 1 || o.HTTPStatus != 429 || !strings.Contains(o.Error, "TTL ends before the retry") {
			t.Fatalf("%+v", o)
		}
		if len(fc.allCalls()) != 1 {
			t.Fatalf("calls %d", len(fc.allCalls()))
		}
	})
}

func TestAgentAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			if n == 1 {
				return Response{Text: "late"}, nil, time.Hour
			}
			return Response{Text: "on time"}, nil, time.Second
		}}
		h := newHarness(t, Config{Client: fc, RequestTimeout: 10 * time.Second, BackoffBase: time.Second})
		h.in.append([]byte("p"))
		h.start(t)
		o := h.waitOutcomes(t, 1, time.Minute)[0]
		h.stop(t)
		if o.Status != StatusAnswered || o.Text != "on time" || o.Attempts != 2 || o.APIMS != 1000 {
			t.Fatalf("%+v", o)
		}
		if c := fc.allCalls(); c[1].at.Sub(c[0].at) < 10*time.Second+500*time.Millisecond {
			t.Fatalf("second attempt after %v", c[1].at.Sub(c[0].at))
		}
	})
}

func TestAgentRateLimitRPM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{}
		h := newHarness(t, Config{Client: fc, MaxInFlight: 16, RequestsPerMinute: 600})
		for i := range 200 {
			h.in.append(fmt.Appendf(nil, "p%d", i))
		}
		t0 := time.Now()
		h.start(t)
		h.waitOutcomes(t, 200, 5*time.Minute)
		took := time.Since(t0)
		h.stop(t)
		if took < 19*time.Second || took > 21*time.Second {
			t.Fatalf("200 prompts at 600 RPM took %v, want about 20s", took)
		}
		calls := fc.allCalls()
		if len(calls) != 200 {
			t.Fatalf("%d calls", len(calls))
		}
		// No window [t, t+1s) holds more than 10 requests (calls are in time order).
		for i := range calls {
			j := i
			for j < len(calls) && calls[j].at.Sub(calls[i].at) < time.Second {
				j++
			}
			if j-i > 10 {
				t.Fatalf("%d requests within 1s starting at %v", j-i, calls[i].at.Sub(t0))
			}
		}
		if s := h.a.Stats(); s.RateLimitWaits < 180 || s.RateLimitWaitTime < time.Minute {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestAgentRateLimitITPM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			return Response{Text: "ok", InputTokens: 1000}, nil, 0
		}}
		// 60,000 tokens/min = 1,000/s; each prompt is estimated at, and really costs, 1,000 tokens.
		h := newHarness(t, Config{Client: fc, MaxInFlight: 8, InputTokensPerMinute: 60000})
		for i := range 30 {
			p := fmt.Sprintf("p%02d ", i) + strings.Repeat("x", 2976-4)
			if estimateTokens("", p) != 1000 {
				t.Fatal("estimate")
			}
			h.in.append([]byte(p))
		}
		t0 := time.Now()
		h.start(t)
		h.waitOutcomes(t, 30, 5*time.Minute)
		took := time.Since(t0)
		h.stop(t)
		if took != 29*time.Second {
			t.Fatalf("30 prompts of 1000 tokens at 60k ITPM took %v, want 29s", took)
		}
		calls := fc.allCalls()
		for i := range calls {
			j := i
			for j < len(calls) && calls[j].at.Sub(calls[i].at) < time.Second {
				j++
			}
			if j-i > 1 {
				t.Fatalf("%d requests of 1000 tokens within 1s", j-i)
			}
		}
	})
}

func TestAgentCoalesceLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			return Response{Text: "summary of " + fmt.Sprint(strings.Count(req.Prompt, "\n")+1), InputTokens: 9}, nil, 0
		}}
		h := newHarness(t, Config{Client: fc, Coalesce: 5, Linger: 2 * time.Second, System: "summarise"})
		h.start(t)
		t0 := time.Now()
		var cs []int64
		for i := range 3 {
			cs = append(cs, h.in.append(fmt.Appendf(nil, "line %d", i)))
		}
		outs := h.waitOutcomes(t, 1, time.Minute)
		if took := time.Since(t0); took != 2*time.Second {
			t.Fatalf("group of 3 flushed after %v, want the 2s linger", took)
		}
		o := outs[0]
		if o.Status != StatusAnswered || o.Text != "summary of 3" || len(o.Cursors) != 3 || o.Cursors[0] != cs[0] || o.Cursors[2] != cs[2] || o.Cursor != cs[0] {
			t.Fatalf("group: %+v", o)
		}
		if c := fc.allCalls()[0]; c.req.Prompt != "line 0\nline 1\nline 2" || c.req.System != "summarise" {
			t.Fatalf("request %+v", c.req)
		}
		// 7 at once: a full group of 5 goes at once, the other 2 after the linger.
		t1 := time.Now()
		var batch [][]byte
		for i := range 7 {
			batch = append(batch, fmt.Appendf(nil, "burst %d", i))
		}
		h.in.publish(batch...)
		outs = h.waitOutcomes(t, 2, time.Minute)
		if took := time.Since(t1); took != 0 || len(outs[1].Cursors) != 5 {
			t.Fatalf("full group after %v: %+v", took, outs[1])
		}
		outs = h.waitOutcomes(t, 3, time.Minute)
		if took := time.Since(t1); took != 2*time.Second || len(outs[2].Cursors) != 2 {
			t.Fatalf("rest after %v: %+v", took, outs[2])
		}
		h.stop(t)
		if s := h.a.Stats(); s.Answered != 10 || s.Records != 3 || s.Requests != 3 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestAgentCheckpointOutOfOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			if req.Prompt == "slow" {
				<-release
			}
			return Response{Text: "ok"}, nil, 0
		}}
		cpPath := filepath.Join(t.TempDir(), "cp.json")
		h := newHarness(t, Config{Client: fc, MaxInFlight: 4, CheckpointPath: cpPath, InputID: "in-1"})
		h.in.append([]byte("fast 0"))
		cSlow := h.in.append([]byte("slow"))
		for i := range 5 {
			h.in.append(fmt.Appendf(nil, "fast %d", i+1))
		}
		h.start(t)
		h.waitOutcomes(t, 6, time.Minute)
		time.Sleep(time.Second) // several checkpoint intervals
		cp, err := ReadCheckpoint(cpPath)
		if err != nil {
			t.Fatal(err)
		}
		// out_cursor must not pass the first record of a prompt after the slow one.
		frames, offs := h.out.snapshot()
		firstAfter := int64(-1)
		for i, f := range frames {
			if o, _ := ParseOutcome(f); o.Cursor > cSlow {
				firstAfter = offs[i]
				break
			}
		}
		if cp.Cursor != cSlow || cp.InputID != "in-1" || cp.OutCursor < 0 || cp.OutCursor > firstAfter {
			t.Fatalf("checkpoint %+v, want cursor %d (the slow prompt) and out_cursor <= %d", cp, cSlow, firstAfter)
		}
		if s := h.a.Stats(); s.Watermark != cSlow || s.Checkpoint != cSlow || s.Pending != 1 {
			t.Fatalf("stats %+v", s)
		}
		close(release)
		h.waitOutcomes(t, 7, time.Minute)
		h.stop(t)
		cp, _ = ReadCheckpoint(cpPath)
		if end := h.in.iter().End(); cp.Cursor != end || cp.OutCursor != h.out.iter().End() {
			t.Fatalf("final checkpoint %+v, want cursor %d", cp, end)
		}
	})
}

func mustFrame(t testing.TB, l *memLog, i int) []byte {
	t.Helper()
	frames, _ := l.snapshot()
	return frames[i]
}

func TestAgentResumeSkipsWrittenOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cpPath := filepath.Join(dir, "cp.json")
		in, out := newMemLog(), newMemLog()
		var cs []int64
		for i := range 6 {
			cs = append(cs, in.append(fmt.Appendf(nil, "p%d", i)))
		}
		// A previous run answered p0..p1 and checkpointed after them, then answered p3 and p4 out
		// of order and crashed before the next checkpoint; p2 and p5 were in flight.
		rec := func(c int64) []byte { b, _ := json.Marshal(Outcome{Cursor: c, Status: StatusAnswered}); return b }
		out.append(rec(cs[0]))
		out.append(rec(cs[1]))
		mark := out.iter().End()
		out.append(rec(cs[3]))
		out.append(rec(cs[4]))
		if err := WriteCheckpoint(cpPath, Checkpoint{Cursor: cs[2], OutCursor: mark}); err != nil {
			t.Fatal(err)
		}
		fc := &fakeClient{}
		h := newHarness(t, Config{Client: fc, CheckpointPath: cpPath, Input: in.iter(), Output: &memWriter{l: out}, Outcomes: out.iter()})
		h.in, h.out = in, out
		h.start(t)
		outs := h.waitOutcomes(t, 6, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		for i, c := range cs {
			if len(m[c]) != 1 {
				t.Fatalf("p%d has %d outcomes", i, len(m[c]))
			}
		}
		if calls := fc.allCalls(); len(calls) != 2 || len(fc.callsFor("p2")) != 1 || len(fc.callsFor("p5")) != 1 {
			t.Fatalf("calls %+v", calls)
		}
		if s := h.a.Stats(); s.Recovered != 2 || s.Read != 2 {
			t.Fatalf("stats %+v", s)
		}
		cp, _ := ReadCheckpoint(cpPath)
		if cp.Cursor != in.iter().End() {
			t.Fatalf("checkpoint %+v", cp)
		}
	})
}

func TestAgentShutdownDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			if req.Prompt == "hour" {
				return Response{Text: "late"}, nil, time.Hour
			}
			return Response{Text: "done"}, nil, 3 * time.Second
		}}
		cpPath := filepath.Join(t.TempDir(), "cp.json")
		h := newHarness(t, Config{Client: fc, MaxInFlight: 2, DrainTimeout: 10 * time.Second, CheckpointPath: cpPath})
		cA := h.in.append([]byte("three seconds"))
		cH := h.in.append([]byte("hour"))
		h.in.append([]byte("queued")) // waits for a worker: not started at shutdown
		h.start(t)
		time.Sleep(time.Second)
		t0 := time.Now()
		h.stop(t)
		if took := time.Since(t0); took != 10*time.Second {
			t.Fatalf("shutdown took %v, want the 10s drain timeout", took)
		}
		outs := outcomesOf(t, h.out)
		if len(outs) != 1 || outs[0].Cursor != cA || outs[0].Text != "done" {
			t.Fatalf("outcomes %+v", outs)
		}
		cp, _ := ReadCheckpoint(cpPath)
		if cp.Cursor != cH {
			t.Fatalf("checkpoint %d, want %d (the abandoned request)", cp.Cursor, cH)
		}
		if len(fc.callsFor("queued")) != 0 {
			t.Fatal("queued prompt was sent during shutdown")
		}
	})
}

func TestAgentOutputFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{Client: EchoClient{}})
		h.cfg.Output = &memWriter{l: h.out, failAt: 2}
		for i := range 5 {
			h.in.append(fmt.Appendf(nil, "p%d", i))
		}
		a, err := New(h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = a.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "log full") {
			t.Fatalf("Run = %v, want the output error", err)
		}
	})
}

func TestAgentTruncatesLongAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		long := strings.Repeat("é<ab>", 30000) // 180,000 bytes, escapes and multi-byte runes
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			return Response{Text: long}, nil, 0
		}}
		h := newHarness(t, Config{Client: fc})
		h.in.append([]byte("p"))
		h.start(t)
		o := h.waitOutcomes(t, 1, time.Minute)[0]
		h.stop(t)
		f := mustFrame(t, h.out, 0)
		if !o.Truncated || len(f) > 65531 || len(o.Text) < 60000 || !strings.HasPrefix(long, o.Text) {
			t.Fatalf("truncated=%v frame %d text %d", o.Truncated, len(f), len(o.Text))
		}
	})
}

func TestAgentConfigErrors(t *testing.T) {
	in, out := newMemLog(), newMemLog()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Output: &memWriter{l: out}, Client: EchoClient{}}, "Input is required"},
		{Config{Input: in.iter(), Client: EchoClient{}}, "Output is required"},
		{Config{Input: in.iter(), Output: &memWriter{l: out}}, "Client is required"},
		{Config{Input: in.iter(), Output: &memWriter{l: out}, Client: EchoClient{}, TTL: -1}, "TTL must not be negative"},
		{Config{Input: in.iter(), Output: &memWriter{l: out}, Client: EchoClient{}, Coalesce: 10, MaxPending: 5}, "must exceed Coalesce"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// A checkpoint of another input is refused.
	cpPath := filepath.Join(t.TempDir(), "cp.json")
	if err := WriteCheckpoint(cpPath, Checkpoint{InputID: "other"}); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Input: in.iter(), Output: &memWriter{l: out}, Client: EchoClient{}, CheckpointPath: cpPath, InputID: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "belongs to input") {
		t.Fatalf("Run = %v", err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run = %v", err)
	}
}

type recObserver struct {
	mu       sync.Mutex
	attempts []error
	outcomes []Status
	waits    int
}

func (r *recObserver) ObserveAttempt(d time.Duration, err error) {
	r.mu.Lock()
	r.attempts = append(r.attempts, err)
	r.mu.Unlock()
}
func (r *recObserver) ObserveOutcome(o *Outcome, n int) {
	r.mu.Lock()
	r.outcomes = append(r.outcomes, o.Status)
	r.mu.Unlock()
}
func (r *recObserver) ObserveRateLimitWait(time.Duration) { r.mu.Lock(); r.waits++; r.mu.Unlock() }

func TestAgentObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{reply: func(req Request, n int) (Response, error, time.Duration) {
			if req.Prompt == "a" {
				return Response{}, errors.New("some client error"), 0
			}
			return Response{Text: "ok"}, nil, 0
		}}
		ob := &recObserver{}
		h := newHarness(t, Config{Client: fc, Observer: ob, RequestsPerMinute: 60})
		h.in.append([]byte("a"))
		h.in.append([]byte("b"))
		h.start(t)
		h.waitOutcomes(t, 2, time.Minute)
		h.stop(t)
		ob.mu.Lock()
		defer ob.mu.Unlock()
		// Plain errors are not retried; the observer sees both attempts and both outcomes.
		nerr, nfailed := 0, 0
		for _, e := range ob.attempts {
			if e != nil {
				nerr++
			}
		}
		for _, s := range ob.outcomes {
			if s == StatusFailed {
				nfailed++
			}
		}
		if len(ob.attempts) != 2 || nerr != 1 || len(ob.outcomes) != 2 || nfailed != 1 || ob.waits != 1 {
			t.Fatalf("observer: %+v", ob)
		}
	})
}

func TestLimiterSpacing(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(90, 0, 1, t0) // one send every 666.67ms
	at1, _ := l.reserve(t0, 1, time.Time{})
	at2, _ := l.reserve(t0, 1, time.Time{})
	if at1 != t0 || at2.Sub(t0).Round(time.Millisecond) != 667*time.Millisecond {
		t.Fatalf("90 RPM: %v %v", at1.Sub(t0), at2.Sub(t0))
	}
	if _, ok := l.reserve(t0, 1, t0.Add(time.Second)); ok {
		t.Fatal("reservation past the deadline was granted")
	}
	if at, _ := l.reserve(t0, 1, time.Time{}); at.Sub(t0).Round(time.Millisecond) != 1333*time.Millisecond {
		t.Fatalf("a refused reservation must not book: %v", at.Sub(t0))
	}
	l = newLimiter(600, 0, 3, t0) // burst 3, then every 100ms
	for i, want := range []time.Duration{0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond} {
		if at, _ := l.reserve(t0, 1, time.Time{}); at.Sub(t0) != want {
			t.Fatalf("burst 3, send %d at %v, want %v", i, at.Sub(t0), want)
		}
	}
	l = newLimiter(0, 600, 1, t0) // 10 tokens/s, burst 10
	if at, _ := l.reserve(t0, 30, time.Time{}); at.Sub(t0) != 2*time.Second {
		t.Fatalf("token debt: %v", at.Sub(t0))
	}
	l.adjust(-20) // the request really cost 10: refund, back to 0 tokens
	if at, _ := l.reserve(t0, 10, time.Time{}); at.Sub(t0) != time.Second {
		t.Fatalf("after refund: %v", at.Sub(t0))
	}
}

func TestCheckpointFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cp")
	if _, err := ReadCheckpoint(p); !isNotExist(err) {
		t.Fatalf("missing: %v", err)
	}
	want := Checkpoint{Cursor: 42, OutCursor: 7, InputID: "x", Updated: time.Unix(5, 0).UTC()}
	if err := WriteCheckpoint(p, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCheckpoint(p)
	if err != nil || got != want {
		t.Fatalf("got %+v, %v", got, err)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".cp.tmp*"))
	if len(matches) != 0 {
		t.Fatalf("temp files left: %v", matches)
	}
}

// TestAgentCursorsFromFrames feeds frames laid out with gaps between them (as a queue's segment
// roll leaves), so a cursor derived from frame lengths would be wrong: every outcome and the
// checkpoint must carry the frames' own cursors.
func TestAgentCursorsFromFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{Client: EchoClient{}, ReadMaxFrames: 7})
		h.in.gap = 13
		var want []int64
		for i := range 50 {
			want = append(want, h.in.append(fmt.Appendf(nil, "prompt %d", i)))
		}
		h.start(t)
		outs := h.waitOutcomes(t, 50, time.Minute)
		h.stop(t)
		m := byCursor(outs)
		for i, c := range want {
			if o := m[c]; len(o) != 1 || o[0].Text != fmt.Sprintf("prompt %d", i) {
				t.Fatalf("cursor %d: %+v", c, o)
			}
		}
		if s := h.a.Stats(); s.Watermark != h.in.iter().End() || s.ReadCursor != h.in.iter().End() {
			t.Fatalf("stats %+v, end %d", s, h.in.iter().End())
		}
	})
}
