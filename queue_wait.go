package shmio

import (
	"context"
	"errors"
	"iter"
	"runtime/debug"
	"time"
)

// Waiting on a queue: the sleep of the segment iterator (see wait.go and FORMAT.md, "Waking"), plus
// moving on to the next segment when the current one is sealed.

// Wait returns nil as soon as a frame beyond the cursor is committed, or ctx.Err() once ctx is
// done. A reader asleep at the end of a segment is woken by its seal and moves on to the next
// segment (so the cursor may change to the next segment's start), where it waits again.
func (qi *QueueIterator) Wait(ctx context.Context) (err error) {
	if !qi.enter() {
		return qi.checkOpen("wait")
	}
	defer qi.leave()
	defer qi.guard("wait", debug.SetPanicOnFault(true), &err)
	qi.storeCursor()
	var deadline time.Time
	for spun := false; ; {
		if qi.it.available() {
			return nil
		}
		again, err := qi.advance("wait")
		if err != nil {
			return err
		}
		if again {
			qi.storeCursor()
			continue
		}
		if qi.ended {
			return errorf("wait", qi.q.dir, -1, ErrSealed, "the queue was sealed after segment %d", qi.seg)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if qi.spin > 0 && !spun {
			if deadline.IsZero() {
				deadline = time.Now().Add(qi.spin)
			}
			for i := 0; ; i++ {
				if qi.it.available() || qi.log.Sealed() {
					break
				}
				if i&63 == 63 && time.Now().After(deadline) {
					spun = true
					break
				}
			}
			continue
		}
		qi.caughtUp()
		if err := qi.sleep(ctx); err != nil {
			return err
		}
	}
}

// sleep blocks until the current segment has a frame past the cursor, is sealed, or ctx is done:
// the segment iterator's own sleep, for which a seal is a reason to wake (Seal stores the sealed
// flag, then wakes readers as a commit does: FORMAT.md, "Waking", so no sleeper misses it).
func (qi *QueueIterator) sleep(ctx context.Context) error {
	if err := qi.it.sleep(ctx); err != nil && !errors.Is(err, ErrSealed) {
		return err
	}
	return qi.checkOpen("wait")
}

// Follow is All that waits for more until ctx is done, across rolls.
func (qi *QueueIterator) Follow(ctx context.Context) iter.Seq2[[]byte, error] {
	return followFrames(ctx, qi.Next, qi.Wait)
}
