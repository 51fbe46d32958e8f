package shmio

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/shmio/shmio/internal/futex"
)

// sleepSlice bounds each sleep in Wait. Commits by this package's writers wake sleepers at once;
// the bound is for writers that do not (Node shmio never touches the wake word) and for noticing
// a cancelled context even if its wake-up raced with going to sleep. A variable so that tests can
// stretch it to prove that wake-ups, not time-outs, end the sleeps.
var sleepSlice = 10 * time.Millisecond

// Wait returns nil as soon as a frame beyond the cursor is committed, or ctx.Err() once ctx is
// done. It first polls the committed end for the iterator's Spin time, then sleeps: on Linux on a
// futex over the header's wake word, having set the header's sleepers flag so that the writer
// wakes it (FORMAT.md, "Waking"); on Node-made files, read-only files and other systems, by
// polling with backoff.
// On a sealed log (see Writer.Seal) with nothing left to read it returns ErrSealed, as a reader's
// end of file.
func (it *Iterator) Wait(ctx context.Context) (err error) {
	if it.closed || !it.log.enter() {
		return it.checkOpen("wait")
	}
	defer it.log.leave()
	// Wait reads the committed end from the mapping: a truncated file gives ErrMappingGone.
	defer it.guard("wait", debug.SetPanicOnFault(true), &err)
	if it.available() {
		return nil
	}
	if err := it.sealed(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if it.spin > 0 {
		deadline := time.Now().Add(it.spin)
		for i := 0; ; i++ {
			if it.available() {
				return nil
			}
			if i&63 == 63 && time.Now().After(deadline) {
				break
			}
		}
	}
	return it.sleep(ctx)
}

// sleep is the sleeping half of Wait, without the spin: it returns nil once a frame is past the
// cursor, ErrSealed once the log is sealed with nothing left, or ctx's error.
func (it *Iterator) sleep(ctx context.Context) error {
	if w := it.log.wake; w != nil && futex.Supported {
		return it.sleepFutex(ctx)
	}
	return it.sleepPoll(ctx)
}

// available reports whether a frame lies beyond the cursor.
func (it *Iterator) available() bool { return int(it.log.size.Load()) > it.pos }

// sealed returns ErrSealed when the log is sealed and every frame is behind the cursor. The seal
// is set after the last commit, so a seal seen with nothing available means nothing will come.
func (it *Iterator) sealed() error {
	if it.log.Sealed() && !it.available() {
		return errorf("wait", it.log.path, int64(it.pos), ErrSealed, "at cursor %d", it.pos-it.base)
	}
	return nil
}

// sleepFutex is the reader's side of the wake protocol (FORMAT.md, "Waking"; the writer's side
// is Writer.wakeReaders). A reader that wakes for nothing (a slice ended, another reader's
// wake-up) sets the flag again before it sleeps again.
func (it *Iterator) sleepFutex(ctx context.Context) error {
	l := it.log
	l.waiters.Add(1)
	defer l.waiters.Add(^uint32(0))
	stop := context.AfterFunc(ctx, func() { futex.Wake(l.wake) })
	defer stop()
	for {
		seq := l.wake.Load()
		if it.available() {
			return nil
		}
		if err := it.sealed(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.closed.Load() {
			return it.checkOpen("wait")
		}
		// Announce the sleep, then look once more: the writer may have committed before it
		// could see the flag. (Set only here, so that a reader woken with frames to read
		// leaves it as the writer left it, clear.)
		l.sleepers.Store(1)
		if it.available() {
			return nil
		}
		futex.Wait(l.wake, seq, sliceUntil(ctx, sleepSlice))
	}
}

// sleepPoll polls with exponential backoff from 10µs up to sleepSlice.
func (it *Iterator) sleepPoll(ctx context.Context) error {
	d := 10 * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-it.log.closing:
			return it.checkOpen("wait")
		case <-t.C:
		}
		if it.available() {
			return nil
		}
		if err := it.sealed(); err != nil {
			return err
		}
		if err := it.checkOpen("wait"); err != nil {
			return err
		}
		if d *= 2; d > sleepSlice {
			d = sleepSlice
		}
		t.Reset(sliceUntil(ctx, d))
	}
}

// sliceUntil shortens d so that a sleep ends by ctx's deadline.
func sliceUntil(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = max(left, time.Microsecond)
		}
	}
	return d
}
