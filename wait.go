package shmio

import (
	"context"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio/internal/futex"
	"golang.org/x/sys/unix"
)

// sleepSlice bounds each sleep in Wait while no writer of this package holds the log: such writers
// wake sleepers at once, but Node shmio writers take no lock and never touch the wake word, so a
// sleeper must look for their commits itself. longSlice bounds each sleep while a writer of this
// package holds the log (see writerProbe.goWriter): it wakes readers, and the slice is only how soon a
// truncated file or a cancelled context whose wake-up raced with going to sleep is noticed.
// Variables so that tests can stretch them to prove that wake-ups, not time-outs, end the sleeps.
var (
	sleepSlice = 10 * time.Millisecond
	longSlice  = 500 * time.Millisecond
)

// Test instrumentation: waitSleeps counts the sleeps of sleepFutex, and waitTestHook, when a test
// sets it, runs just before a reader announces itself as a sleeper.
var (
	waitSleeps   atomic.Uint64
	waitTestHook func()
)

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
		if err := it.truncatedEvery(truncCheck); err != nil {
			return err
		}
		if h := waitTestHook; h != nil {
			h()
		}
		// Announce the sleep, then look once more: the writer may have committed, or sealed,
		// before it could see the flag. (Set only here, so that a reader woken with frames to
		// read leaves it as the writer left it, clear.)
		l.sleepers.Store(1)
		if it.available() {
			return nil
		}
		if err := it.sealed(); err != nil {
			return err
		}
		slice := sleepSlice
		if it.probe.goWriter(it.mem) {
			slice = longSlice
		}
		waitSleeps.Add(1)
		futex.Wait(l.wake, seq, sliceUntil(ctx, slice))
	}
}

// writerProbe remembers, for an iterator's Waits, whether a writer of this package holds the log.
type writerProbe struct {
	pid   uint32
	at    time.Time
	alive bool
}

// goWriter reports whether a writer of this package holds the log, so that it will wake
// sleepers itself. Such a writer records its pid in the header while it holds the lock and
// clears it at Close; a writer that died without closing leaves its pid, so the process must also
// still exist (kill(pid, 0)), which is asked at most once per longSlice. A pid reused by another
// process, or the pid of a writer in another pid namespace, is taken at its word: readers then
// see a Node writer's commits up to longSlice late, never later.
func (p *writerProbe) goWriter(mem []byte) bool {
	pid := u32at(mem, offWriterPID).Load()
	if pid == 0 {
		return false
	}
	if now := time.Now(); pid != p.pid || now.Sub(p.at) >= longSlice {
		p.pid, p.at = pid, now
		p.alive = int(pid) == os.Getpid() || unix.Kill(int(pid), 0) != unix.ESRCH
	}
	return p.alive
}

// truncated returns ErrMappingGone once the file is smaller than the mapping: another process
// truncated it, and frames beyond its new end can never be read (or committed). Wait checks it
// once per sleep, not per frame.
func (it *Iterator) truncated() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(it.log.file.Fd()), &st); err == nil && st.Size < int64(len(it.mem)) {
		return errorf("wait", it.log.path, st.Size, ErrMappingGone, "file truncated to %d bytes under a mapping of %d", st.Size, len(it.mem))
	}
	return nil
}

// truncCheck is how often at most sleepFutex asks whether the file was truncated: shorter than a
// slice, so a sleeping reader still learns of it within a slice, yet a reader woken at every
// commit pays no fstat per sleep.
const truncCheck = time.Millisecond

// truncatedEvery is truncated, asked at most once per d by this iterator.
func (it *Iterator) truncatedEvery(d time.Duration) error {
	if now := time.Now(); it.fstatAt.IsZero() || now.Sub(it.fstatAt) >= d {
		it.fstatAt = now
		return it.truncated()
	}
	return nil
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
		if err := it.truncated(); err != nil {
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
