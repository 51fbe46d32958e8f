package agent

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// gate is the one back-off the whole agent shares. When the API signals overload or a rate limit
// (429, 529, 5xx, connection errors), the gate closes: no request goes before the back-off ends,
// and then a single probe goes. The probe's success opens the gate for everyone; its failure
// closes it again for a longer (exponential, jittered) interval, or for what the server asked
// (retry-after, anthropic-ratelimit-*-reset). Requests that were already in flight when the gate
// closed neither open it nor deepen it: only what was sent in the current generation counts.
type gate struct {
	base, max time.Duration

	mu      sync.Mutex
	gen     uint64    // bumped whenever the gate closes or opens
	level   int       // consecutive failed generations; 0 = open
	until   time.Time // while closed, the probe may go from here on
	probing bool      // the probe of this generation is in flight
	changed chan struct{}
}

var (
	errGateStopped  = errors.New("stopped while backed off")
	errGateDeadline = errors.New("TTL ends during the shared back-off")
)

func newGate(base, max time.Duration) *gate {
	return &gate{base: base, max: max, changed: make(chan struct{})}
}

// ticket is what acquire hands out and release takes back.
type ticket struct {
	gen   uint64
	probe bool
}

func (g *gate) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// acquire waits until a request may go: at once while the gate is open; while it is closed, as
// the single probe once the back-off has passed. It gives up when a stop channel closes
// (errGateStopped) or when deadline (zero = none) comes first (errGateDeadline).
func (g *gate) acquire(deadline time.Time, stops [3]<-chan struct{}) (ticket, error) {
	for {
		g.mu.Lock()
		if g.level == 0 {
			t := ticket{gen: g.gen}
			g.mu.Unlock()
			return t, nil
		}
		now := time.Now()
		if !g.probing && !now.Before(g.until) {
			g.probing = true
			t := ticket{gen: g.gen, probe: true}
			g.mu.Unlock()
			return t, nil
		}
		ch, until, probing := g.changed, g.until, g.probing
		g.mu.Unlock()
		if !deadline.IsZero() && !probing && until.After(deadline) {
			return ticket{}, errGateDeadline
		}
		wake := until
		if probing || wake.Before(now) {
			wake = time.Time{}
		}
		if !deadline.IsZero() && (wake.IsZero() || deadline.Before(wake)) {
			wake = deadline
		}
		var timer <-chan time.Time
		var tm *time.Timer
		if !wake.IsZero() {
			tm = time.NewTimer(wake.Sub(now))
			timer = tm.C
		}
		var err error
		select {
		case <-ch:
		case <-timer:
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				err = errGateDeadline
			}
		case <-stops[0]:
			err = errGateStopped
		case <-stops[1]:
			err = errGateStopped
		case <-stops[2]:
			err = errGateStopped
		}
		if tm != nil {
			tm.Stop()
		}
		if err != nil {
			return ticket{}, err
		}
	}
}

// cancel returns a ticket whose request was not sent.
func (g *gate) cancel(t ticket) {
	if !t.probe {
		return
	}
	g.mu.Lock()
	if t.gen == g.gen && g.probing {
		g.probing = false
		g.broadcastLocked()
	}
	g.mu.Unlock()
}

// release reports how the request sent with t ended. overloaded is true for the transient
// classes; hint is how long the server asked to wait (0 = not said). It returns when the next
// request may go (zero when the gate is open).
func (g *gate) release(t ticket, overloaded bool, hint time.Duration) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if t.gen != g.gen {
		// Sent before the gate last changed: its news is stale, except a longer wait the server
		// asked for.
		if overloaded && g.level > 0 && hint > 0 && now.Add(hint).After(g.until) {
			g.until = now.Add(hint)
			g.broadcastLocked()
		}
		if g.level > 0 {
			return g.until
		}
		return time.Time{}
	}
	if t.probe {
		g.probing = false
	}
	if !overloaded {
		if g.level > 0 {
			g.level, g.until = 0, time.Time{}
			g.gen++
			g.broadcastLocked()
		}
		return time.Time{}
	}
	g.level++
	d := hint
	if d <= 0 {
		d = g.delay(g.level)
	}
	g.until = now.Add(d)
	g.gen++
	g.broadcastLocked()
	return g.until
}

// delay is the exponential back-off for a level: BackoffBase doubled per level, capped at
// BackoffMax, with jitter in its upper half.
func (g *gate) delay(level int) time.Duration {
	d := g.base
	for i := 1; i < level && d < g.max; i++ {
		d *= 2
	}
	d = min(d, g.max)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return d
}

// state reports the back-off level and when it ends, for Stats.
func (g *gate) state() (level int, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.level, g.until
}
