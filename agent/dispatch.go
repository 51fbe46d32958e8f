package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// process sends one request (a prompt or a coalesced group) under the TTL, budget and retry
// policies and queues its outcome. A request cut off by shutdown gets no outcome.
func (a *Agent) process(soft, hard context.Context, g []item, results chan<- result) {
	now := time.Now()
	live := g[:0:0]
	for _, it := range g {
		if !it.deadline.IsZero() && now.After(it.deadline) {
			reason := fmt.Sprintf("age %v exceeds TTL %v", now.Sub(it.start).Round(time.Millisecond), it.deadline.Sub(it.start))
			results <- a.expired(it, 0, reason, nil)
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	req := a.request(live)
	var deadline time.Time
	for _, it := range live {
		if !it.deadline.IsZero() && (deadline.IsZero() || it.deadline.Before(deadline)) {
			deadline = it.deadline
		}
	}
	est := req.estimateTokens()
	var lastErr error
	for attempt := 1; ; attempt++ {
		// Before the first attempt the prompt is not in flight yet: shutdown leaves it queued.
		var stop <-chan struct{}
		if attempt == 1 {
			stop = soft.Done()
		}
		stops := [3]<-chan struct{}{hard.Done(), stop, a.fatalCh}
		if stopped(stops) {
			return // stopping: no outcome, the checkpoint stays before it
		}
		tk, err := a.gate.acquire(deadline, stops)
		if errors.Is(err, errGateDeadline) {
			for _, it := range live {
				results <- a.expired(it, attempt-1, err.Error(), lastErr)
			}
			return
		}
		if err != nil {
			return // stopping: no outcome, the checkpoint stays before it
		}
		want := time.Now()
		at, ok := a.lim.reserve(want, est, deadline)
		if !ok {
			a.gate.cancel(tk)
			reason := fmt.Sprintf("no send slot in the rate budget before the TTL (next in %v)", at.Sub(want).Round(time.Millisecond))
			for _, it := range live {
				results <- a.expired(it, attempt-1, reason, lastErr)
			}
			return
		}
		if d := at.Sub(want); d > 0 {
			a.c.rlWaits.Add(1)
			a.c.rlWaitNS.Add(int64(d))
			if a.cfg.Observer != nil {
				a.cfg.Observer.ObserveRateLimitWait(d)
			}
			if !sleep(d, stops) {
				a.gate.cancel(tk)
				return
			}
		}
		a.c.requests.Add(1)
		a.c.inFlight.Add(1)
		actx, cancel := context.WithTimeout(hard, a.cfg.RequestTimeout)
		t0 := time.Now()
		var resp Response
		var ttft time.Duration
		if a.cfg.Stream {
			seq := 0
			resp, err = a.cfg.Client.(StreamClient).StreamPrompt(actx, req, func(text string) {
				if seq == 0 {
					ttft = time.Since(t0)
				}
				seq++
				results <- result{delta: &Delta{ID: live[0].p.ID, Cursor: live[0].cursor, Status: StatusDelta,
					Attempts: attempt, Seq: seq, Text: text}}
			})
		} else {
			resp, err = a.cfg.Client.SendPrompt(actx, req)
		}
		lat := time.Since(t0)
		timedOut := err != nil && errors.Is(actx.Err(), context.DeadlineExceeded) && hard.Err() == nil
		cancel()
		a.c.inFlight.Add(-1)
		if err == nil {
			a.gate.release(tk, false, 0)
			if a.cfg.Observer != nil {
				a.cfg.Observer.ObserveAttempt(lat, nil)
			}
			a.lim.adjust(resp.InputTokens - est)
			r := a.answered(live, resp, attempt, lat)
			if ttft > 0 {
				r.o.TTFTMS = ms(ttft)
			}
			results <- r
			return
		}
		if hard.Err() != nil {
			a.gate.cancel(tk)
			return // shutdown cut the request off: no outcome, it is sent again after a restart
		}
		if timedOut {
			err = fmt.Errorf("%w after %v: %w", errAttemptTimeout, a.cfg.RequestTimeout, err)
		}
		if a.cfg.Observer != nil {
			a.cfg.Observer.ObserveAttempt(lat, err)
		}
		lastErr = err
		switch class, reason := classify(err, a.configFields(live)); class {
		case classFatal:
			a.gate.cancel(tk)
			a.setFatal(reason, err)
			return // no outcome: the checkpoint stays before this prompt, a restart sends it
		case classPrompt:
			a.gate.release(tk, false, 0)
			results <- a.failed(live, attempt, err, lat)
			return
		}
		var hint time.Duration
		var ae *APIError
		if errors.As(err, &ae) {
			hint = ae.RetryAfter
		}
		next := a.gate.release(tk, true, hint)
		if a.cfg.MaxAttempts > 0 && attempt >= a.cfg.MaxAttempts {
			results <- a.failed(live, attempt, fmt.Errorf("giving up after %d attempts: %w", attempt, err), lat)
			return
		}
		if !deadline.IsZero() && next.After(deadline) {
			for _, it := range live {
				results <- a.expired(it, attempt, fmt.Sprintf("TTL ends before the retry due in %v", time.Until(next).Round(time.Millisecond)), lastErr)
			}
			return
		}
		a.c.retries.Add(1)
		a.log.Debug("retrying after the shared back-off", "cursor", live[0].cursor, "attempt", attempt, "until", next, "err", err)
	}
}

// configFields reports which request fields of g came from the agent's configuration rather than
// from the prompts: an API error naming one of them is the configuration's fault.
func (a *Agent) configFields(g []item) func(string) bool {
	return func(field string) bool {
		for i := range g {
			p := &g[i].p
			switch field {
			case "model":
				if p.Model != "" {
					return false
				}
			case "max_tokens":
				if p.MaxTokens > 0 {
					return false
				}
			case "system":
				if p.System != "" || a.cfg.System == "" {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
}

// stopped reports whether a stop channel is closed.
func stopped(stops [3]<-chan struct{}) bool {
	for _, s := range stops {
		select {
		case <-s:
			return true
		default:
		}
	}
	return false
}

// sleep waits d; false if a stop channel closed first.
func sleep(d time.Duration, stops [3]<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stops[0]:
	case <-stops[1]:
	case <-stops[2]:
	}
	return false
}
func (a *Agent) request(g []item) Request {
	r := Request{Model: a.cfg.Model, System: a.cfg.System, MaxTokens: a.cfg.MaxTokens, CacheSystem: a.cfg.CacheSystem}
	if len(g) == 1 {
		p := &g[0].p
		r.Prompt, r.Messages, r.UserID = p.text(), p.Messages, p.userID()
		r.StopSequences, r.Effort = p.StopSequences, p.Effort
		if p.System != "" {
			r.System, r.CacheSystem = p.System, false
		}
		if p.MaxTokens > 0 {
			r.MaxTokens = p.MaxTokens
		}
		if p.Model != "" {
			r.Model = p.Model
		}
		return r
	}
	var b strings.Builder
	maxTok := 0
	sys := ""
	for i := range g {
		p := &g[i].p
		if i > 0 {
			b.WriteString(a.cfg.CoalesceSeparator)
		}
		b.WriteString(p.Prompt)
		maxTok = max(maxTok, p.MaxTokens)
		if sys == "" {
			sys = p.System
		}
		if r.UserID == "" {
			r.UserID = p.userID()
		}
	}
	r.Prompt = b.String()
	if sys != "" {
		r.System, r.CacheSystem = sys, false
	}
	if maxTok > 0 {
		r.MaxTokens = maxTok
	}
	return r
}

// groupOutcome fills the identity fields of a record for g.
func groupOutcome(g []item, st Status) result {
	r := result{seqs: make([]uint64, len(g)), start: g[0].start, o: Outcome{ID: g[0].p.ID, Cursor: g[0].cursor, Status: st}}
	for i := range g {
		r.seqs[i] = g[i].seq
		if g[i].start.Before(r.start) {
			r.start = g[i].start
		}
	}
	if len(g) == 1 {
		r.o.Metadata = g[0].p.Metadata
		return r
	}
	r.o.IDs = make([]string, len(g))
	r.o.Cursors = make([]int64, len(g))
	for i := range g {
		r.o.IDs[i], r.o.Cursors[i] = g[i].p.ID, g[i].cursor
	}
	return r
}

func (a *Agent) answered(g []item, resp Response, attempts int, lat time.Duration) result {
	st := StatusAnswered
	if resp.StopReason == "refusal" {
		st = StatusRefused
	}
	r := groupOutcome(g, st)
	r.o.Model, r.o.Text, r.o.StopReason = resp.Model, resp.Text, resp.StopReason
	r.o.CacheCreationInputTokens, r.o.CacheReadInputTokens = resp.CacheCreationInputTokens, resp.CacheReadInputTokens
	r.o.ServiceTier, r.o.MessageID, r.o.RequestID = resp.ServiceTier, resp.MessageID, resp.RequestID
	if r.o.Model == "" {
		r.o.Model = a.modelOf(g)
	}
	r.o.InputTokens, r.o.OutputTokens = resp.InputTokens, resp.OutputTokens
	r.o.Attempts, r.o.APIMS = attempts, ms(lat)
	r.o.CostUSD = cost(a.cfg.Prices, &r.o, 1)
	return r
}

func (a *Agent) failed(g []item, attempts int, err error, lat time.Duration) result {
	r := groupOutcome(g, StatusFailed)
	r.o.Model, r.o.Attempts, r.o.APIMS, r.o.Error = a.modelOf(g), attempts, ms(lat), err.Error()
	var ae *APIError
	if errors.As(err, &ae) {
		r.o.HTTPStatus, r.o.RequestID = ae.StatusCode, ae.RequestID
	}
	return r
}

// expired is the record of a prompt whose TTL ran out; cause is the last API error, if any.
func (a *Agent) expired(it item, attempts int, reason string, cause error) result {
	r := groupOutcome([]item{it}, StatusExpired)
	r.o.Model, r.o.Attempts, r.o.Error = a.modelOf([]item{it}), attempts, "expired: "+reason
	if cause != nil {
		r.o.Error += ": " + cause.Error()
		var ae *APIError
		if errors.As(cause, &ae) {
			r.o.HTTPStatus = ae.StatusCode
		}
	}
	return r
}

// modelOf is the model a group is sent to.
func (a *Agent) modelOf(g []item) string {
	if len(g) == 1 && g[0].p.Model != "" {
		return g[0].p.Model
	}
	return a.cfg.Model
}
