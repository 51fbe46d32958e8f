package shmio

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/shmio/shmio/internal/futex"
)

// Closing a Log while other goroutines are inside its methods: every method that reads the
// mapping counts itself in l.users for its duration (enter/leave: two atomic additions per
// call, never per frame), and Close, having set l.closed, waits for the count to reach zero
// before it unmaps. enter adds, then loads closed; Close stores closed, then loads the count:
// with sequentially consistent atomics either enter sees closed (and backs out) or Close sees
// the caller counted (and waits). Readers asleep in Wait are woken by Close (see startClose).

// enter counts a method in flight; false means the log is closed (nothing counted).
func (l *Log) enter() bool {
	l.users.Add(1)
	if l.closed.Load() {
		l.users.Add(-1)
		return false
	}
	return true
}

// leave ends what enter began.
func (l *Log) leave() { l.users.Add(-1) }

// startClose makes every method fail with ErrClosed from now on and wakes this handle's
// sleepers: the wake word is bumped (a sleeper that read it before the flag was set then
// does not sleep) and the futex woken; pollers watch l.closing. Other processes' sleepers
// see one spurious wake-up. Callers hold l.mu.
func (l *Log) startClose() {
	if l.closed.Load() {
		return
	}
	l.closed.Store(true)
	close(l.closing)
	if l.wake != nil {
		var err error
		func() {
			defer recoverFault(debug.SetPanicOnFault(true), "close", l.path, -1, &err)
			l.wake.Add(1)
			futex.Wake(l.wake)
		}()
	}
}

// drainUsers waits until no method is in flight (see enter). Methods in flight return
// promptly once closed is set: none waits on anything but the wake-ups startClose sends.
func drainUsers(load func() int64) {
	for i := 0; load() != 0; i++ {
		if i < 64 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// interrupt is startClose for a caller that does not hold l.mu.
func (l *Log) interrupt() {
	l.mu.Lock()
	l.startClose()
	l.mu.Unlock()
}

// sealedNow is Sealed for a caller that keeps the mapping alive (and guards faults) itself,
// also after startClose.
func (l *Log) sealedNow() bool {
	return !l.lo.nodeFormat && u32at(l.mem, offFlags).Load()&flagSealed != 0
}
