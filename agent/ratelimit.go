package agent

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is the client-side budget: requests per minute and input tokens per minute.
//
// Requests are spaced evenly (a token bucket refilled at RPM/60 per second holding at most
// RequestBurst sends), so the server, which enforces its limits continuously over short windows,
// never sees a burst: with burst 1 no sliding second holds more than a second's share of the
// budget. Input tokens use a bucket holding one second of budget that may go into debt, so a
// prompt larger than the bucket still goes, and later ones wait for the debt to be repaid.
type limiter struct {
	req *rate.Limiter // nil = no request budget

	mu    sync.Mutex
	rate  float64 // tokens per second; 0 = no token budget
	burst float64
	toks  float64
	last  time.Time
}

func newLimiter(rpm, itpm, burst int, now time.Time) *limiter {
	l := &limiter{last: now}
	if rpm > 0 {
		l.req = rate.NewLimiter(rate.Limit(float64(rpm)/60), max(1, burst))
	}
	if itpm > 0 {
		l.rate = float64(itpm) / 60
		l.burst = max(1, l.rate)
		l.toks = l.burst
	}
	return l
}

// reserve books a send for a request of about n input tokens and returns when it may go (never
// before now). If that is after deadline (zero = none), nothing is booked and ok is false.
func (l *limiter) reserve(now time.Time, n int64, deadline time.Time) (at time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at = now
	toks := l.toks
	if l.rate > 0 {
		if dt := now.Sub(l.last); dt > 0 {
			toks = min(l.burst, toks+dt.Seconds()*l.rate)
		}
		toks -= float64(n)
		if toks < 0 {
			if t := now.Add(time.Duration(-toks / l.rate * float64(time.Second))); t.After(at) {
				at = t
			}
		}
	}
	var r *rate.Reservation
	if l.req != nil {
		r = l.req.ReserveN(now, 1)
		if t := now.Add(r.DelayFrom(now)); t.After(at) {
			at = t
		}
	}
	if !deadline.IsZero() && at.After(deadline) {
		if r != nil {
			r.CancelAt(now)
		}
		return at, false
	}
	if l.rate > 0 {
		l.toks = toks
		if now.After(l.last) {
			l.last = now
		}
	}
	return at, true
}

// adjust corrects the token budget once the API reported the real input tokens (delta = real -
// estimate; negative refunds).
func (l *limiter) adjust(delta int64) {
	if delta == 0 {
		return
	}
	l.mu.Lock()
	if l.rate > 0 {
		l.toks = min(l.burst, l.toks-float64(delta))
	}
	l.mu.Unlock()
}
