package agent

import (
	"sync"
	"time"
)

// limiter is the client-side budget: requests per minute and input tokens per minute, plus a
// shared pause after the API asked everyone to back off (429/529 with retry-after).
//
// Requests use a sliding log: at most k sends in any window w, where k/w equals the per-minute
// rate (k = RPM/60 and w = 1 s when RPM >= 60). So a short burst goes at once, yet no one-second
// window ever exceeds a second's share of the budget, which is how the API enforces limits too.
// Input tokens use a bucket holding one second of budget that may go into debt, so a prompt
// larger than the bucket still goes, and later ones wait for the debt to be repaid.
type limiter struct {
	mu    sync.Mutex
	k     int
	w     time.Duration
	ring  []time.Time // the last k send times, oldest at idx
	idx   int
	rate  float64 // tokens per second; 0 = no token budget
	burst float64
	toks  float64
	last  time.Time
	pause time.Time
}

func newLimiter(rpm, itpm int, now time.Time) *limiter {
	l := &limiter{last: now}
	if rpm > 0 {
		l.k = max(1, rpm/60)
		l.w = time.Duration(l.k) * time.Minute / time.Duration(rpm)
		l.ring = make([]time.Time, l.k)
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
	if l.pause.After(at) {
		at = l.pause
	}
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
	if l.k > 0 {
		if old := l.ring[l.idx]; !old.IsZero() {
			if t := old.Add(l.w); t.After(at) {
				at = t
			}
		}
	}
	if !deadline.IsZero() && at.After(deadline) {
		return at, false
	}
	if l.rate > 0 {
		l.toks = toks
		if now.After(l.last) {
			l.last = now
		}
	}
	if l.k > 0 {
		l.ring[l.idx] = at
		l.idx = (l.idx + 1) % l.k
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

// pauseUntil holds every send until t.
func (l *limiter) pauseUntil(t time.Time) {
	l.mu.Lock()
	if t.After(l.pause) {
		l.pause = t
	}
	l.mu.Unlock()
}
