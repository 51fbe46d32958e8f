package shmio

import (
	"runtime"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/shmio/shmio/internal/futex"
	"github.com/shmio/shmio/internal/mmap"
	"golang.org/x/sys/unix"
)

// Closing a Log while other goroutines are inside its methods: the methods that read the
// mapping, NextBatch and Prev excepted (see unmapData), count themselves in l.users for their
// duration (enter/leave: two atomic additions per call), and Close, having set l.closed, waits
// for the count to reach zero before it unmaps. enter adds, then loads closed; Close stores closed, then loads the count:
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

// sealedError is ErrSealed for a writer's op on this log.
func (l *Log) sealedError(op string, off int64) error {
	return errorf(op, l.path, off, ErrSealed, "the log is sealed: no frame may follow its last one")
}

// sealedNow is Sealed for a caller that keeps the mapping alive (and guards faults) itself,
// also after startClose.
func (l *Log) sealedNow() bool {
	return !l.lo.nodeFormat && u32at(l.mem, offFlags).Load()&flagSealed != 0
}

// unmapData releases the data mapping at Close. NextBatch and Prev do not count themselves in
// users (see NextBatch), so one of them may still read the mapping: it is replaced, at the same
// address and in one system call, by an inaccessible one, where such a read faults into the
// iterator's guard instead of reading memory mapped anew for something else. The placeholder
// (address space only, no memory) is unmapped once the Log is unreachable, that is, once no
// method can be running on it. A queue's own segments (private) are unmapped at once.
func (l *Log) unmapData() error {
	if l.private {
		return mmap.Unmap(l.mem)
	}
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(l.mem)), uintptr(len(l.mem)), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_FIXED)
	if err != nil {
		return mmap.Unmap(l.mem)
	}
	runtime.AddCleanup(l, func(b []byte) { mmap.Unmap(b) }, l.mem)
	return nil
}
