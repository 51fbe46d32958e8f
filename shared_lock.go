package shmio

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/shmio/shmio/internal/flock"
	"github.com/shmio/shmio/internal/format"
	"github.com/shmio/shmio/internal/futex"
	"golang.org/x/sys/unix"
)

// The append lock of shared writers: a u64 word in the header (FORMAT.md, "Shared writers").
// This file holds the lock protocol; shared_writer.go the writer built on it.

var (
	// shareSpin is how long a contended lock is polled before the waiter yields and then sleeps,
	// unless others sleep for it already: a commit of a few frames holds it well under that.
	shareSpin = 20 * time.Microsecond
	// shareCheck is how long a waiter lets one owner keep the lock before it checks that the
	// owner is alive: the recovery bound is a few of these, not 100 ms.
	shareCheck = time.Millisecond
	// shareStuck is how long a waiter lets one live owner keep the lock before it gives up with
	// ErrLocked: no commit takes that long, so the word is damaged in a way liveness cannot see
	// (a live process's token copied into it, or no OFD locks on this system and a reused pid).
	shareStuck = 5 * time.Second
	// shareHandoff is how long a writer whose release found a request (or woke every sleeper)
	// leaves the free word to them before it competes again (see yieldTo): a requester polls,
	// so it takes the word within microseconds unless it shares this core.
	shareHandoff = 50 * time.Microsecond
	// shareWantPoll is how long a woken waiter polls for the word it asked for before it
	// sleeps again: the holder leaves it the word at its next release, one commit away.
	shareWantPoll = 200 * time.Microsecond
	// shareQuantum is how long a writer that commits again and again may keep the word while
	// others sleep for it (see unlock).
	shareQuantum = 500 * time.Microsecond
)

// shareLock is one process's (one Log's) handle on the lock word.
type shareLock struct {
	word     *atomic.Uint64
	low      *atomic.Uint32 // the word's low half (the holder's token), the futex waiters sleep on
	sleepers *atomic.Uint32
	steals   *atomic.Uint32
	flags    *atomic.Uint32 // the header's flags: a waiter stops once the log is sealed
	fd       *os.File       // this Log's own descriptor: the shared flock and the token's OFD lock
	owner    uint64         // pid<<32 | token
	token    uint32

	waiting   int       // releases since sleepers were first seen (see unlock)
	waitSince time.Time // when
}

// newShareLock picks a token no live writer holds and locks its byte on fd.
func newShareLock(mem []byte, fd *os.File) (*shareLock, error) {
	s := &shareLock{
		word:     u64at(mem, format.OffShareLock),
		low:      u32at(mem, format.OffShareLock), // little-endian: the low half comes first
		sleepers: u32at(mem, format.OffShareSleepers),
		steals:   u32at(mem, format.OffShareSteals),
		flags:    u32at(mem, format.OffFlags),
		fd:       fd,
	}
	pid := uint64(os.Getpid())
	for range 64 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		tok := binary.LittleEndian.Uint32(b[:])
		if tok == 0 {
			continue
		}
		ok, err := flock.TryExclusiveOFDAt(fd.Fd(), format.ShareTokenBase+int64(tok))
		if err != nil {
			return nil, fmt.Errorf("token lock: %w", err)
		}
		if ok {
			s.token, s.owner = tok, pid<<32|uint64(tok)
			return s, nil
		}
	}
	return nil, fmt.Errorf("no free shared-writer token after 64 tries")
}

// close releases the token; a word still naming it (impossible after unlock) would be stolen.
func (s *shareLock) close() {
	flock.UnlockOFDAt(s.fd.Fd(), format.ShareTokenBase+int64(s.token))
}

// The shareSleepers word's bits (FORMAT.md, "Shared writers").
const (
	shareSleeping = 1 // a waiter may sleep on the word's low half
	shareWant     = 2 // a waiter is polling and asks the holder to leave it the word
	shareInvite   = 4 // the holder's quantum is over: the waiter it wakes may ask (shareWant)
)

// lock takes the word. It returns stolen true when it took the word over from a dead holder, so
// that the caller repairs what that holder may have left half done. patient skips the polling
// of a contended word (the caller just handed it over: its new holder keeps it a quantum).
// Faults (a truncated file) panic; the caller recovers them.
func (s *shareLock) lock(stop *atomic.Bool, patient bool) (stolen bool, err error) {
	if s.word.CompareAndSwap(0, s.owner) {
		return false, nil
	}
	return s.lockSlow(stop, patient)
}

// lockSlow waits for the word; it gives up with ErrClosed once *stop is set (the Log closes),
// and with ErrSealed, without the word, once the log is sealed (a queue's writers then move on
// to the next segment without each taking and releasing the sealed one's word in turn).
// A waiter polls, then sleeps; once a release wakes it, it asks for the word (shareWant) and
// polls until the holder, at its next release, leaves it the word.
func (s *shareLock) lockSlow(stop *atomic.Bool, patient bool) (stolen bool, err error) {
	start := time.Now()
	var seen uint64     // the owner being waited for
	var since time.Time // when seen was first seen
	checked := start    // last liveness check
	var wantSince time.Time
	wanting := false
	defer func() {
		if wanting {
			s.sleepers.And(^uint32(shareWant))
		}
	}()
	for i := 0; ; i++ {
		cur := s.word.Load()
		if cur == 0 {
			if s.word.CompareAndSwap(0, s.owner) {
				return false, nil
			}
			continue
		}
		if i&15 != 15 {
			continue // cheap polls between clock reads
		}
		if stop != nil && stop.Load() {
			return false, ErrClosed
		}
		if s.flags.Load()&flagSealed != 0 {
			return false, ErrSealed
		}
		now := time.Now()
		if cur != seen {
			seen, since = cur, now
		}
		if now.Sub(checked) >= shareCheck {
			checked = now
			if s.dead(cur) {
				if s.word.CompareAndSwap(cur, s.owner) {
					s.steals.Add(1)
					return true, nil
				}
				continue
			}
			if now.Sub(since) >= shareStuck {
				return false, fmt.Errorf("%w: the shared-writer lock word has named pid %d (token %#x) for %v though nothing commits that long; the header may be damaged", ErrLocked, cur>>32, uint32(cur), shareStuck)
			}
		}
		if wanting {
			if now.Sub(wantSince) < shareWantPoll {
				if s.sleepers.Load()&shareWant == 0 {
					s.sleepers.Or(shareWant) // a release that found nobody to take the word cleared it
				}
				if i&255 == 255 {
					futex.Yield() // the holder may share this core
				}
				continue
			}
			wanting = false // the holder is slow to commit: sleep after all
			s.sleepers.And(^uint32(shareWant))
		} else {
			switch waited := now.Sub(start); {
			case patient || s.sleepers.Load()&shareSleeping != 0:
				// Others sleep already: the holder keeps the word a quantum, and polling for
				// it would only take turns with the holder at every commit.
			case waited < shareSpin:
				continue
			case waited < 4*shareSpin:
				futex.Yield() // let a preempted holder run on this core
				continue
			}
		}
		s.sleep(cur)
		if s.claimInvite() {
			wanting, wantSince = true, time.Now()
		}
	}
}

// sleep waits on the word's low half until a release wakes it (or a slice of shareCheck): set
// the flag, look once more, sleep.
func (s *shareLock) sleep(cur uint64) {
	if !futex.Supported {
		time.Sleep(50 * time.Microsecond)
		return
	}
	s.sleepers.Or(shareSleeping)
	if s.word.Load() != cur {
		return
	}
	futex.Wait(s.low, uint32(cur), shareCheck)
}

// claimInvite turns the holder's invitation (shareInvite), if there is one, into this waiter's
// request (shareWant): one waiter claims each.
func (s *shareLock) claimInvite() bool {
	for {
		f := s.sleepers.Load()
		if f&shareInvite == 0 {
			return false
		}
		if s.sleepers.CompareAndSwap(f, f&^shareInvite|shareWant) {
			return true
		}
	}
}

// unlock releases the word if this process still holds it (a waiter that judged us dead may
// have taken it: then we are not told, but nothing of ours was published after that point
// either, see SharedWriter.Commit) and reports whether the caller should leave the free word to
// a waiter before it takes the word again (see yieldTo).
//
// With force (the writer closes or gives up) every sleeper is woken. Otherwise a busy writer
// keeps the word for shareQuantum after a release first saw sleepers, then wakes one of them
// and goes on committing until the woken one asks for the word (shareWant); the release that
// sees the request leaves it the word. Handing the word, and the tail's cache lines, to another
// core at every commit, making every sleeper runnable at once on a machine with fewer cores
// than writers, and waiting for a woken process to be scheduled, are most of what many writers
// cost. A sleeper not woken takes a free word at the end of its sleep slice (shareCheck) at
// the latest.
func (s *shareLock) unlock(force bool) (yield bool) {
	s.word.CompareAndSwap(s.owner, 0)
	f := s.sleepers.Load()
	if f == 0 {
		s.waiting = 0
		return false
	}
	if force || shareQuantum <= 0 {
		s.waiting = 0
		s.sleepers.Store(0)
		futex.Wake(s.low)
		return true
	}
	if f&shareWant != 0 {
		s.waiting = 0
		return true
	}
	if !s.quantumOver() {
		return false
	}
	s.waiting = 0
	if f&shareSleeping != 0 {
		s.sleepers.Or(shareInvite)
		if !futex.WakeOne(s.low) {
			// Nobody sleeps any more (they timed out and took the word, or closed): lower the
			// flag, so that contenders poll again (see lockSlow). One that set it just now and
			// is about to sleep is not woken; it polls after its slice.
			s.sleepers.And(^uint32(shareSleeping | shareInvite))
		}
	}
	return false
}

// quantumOver counts a release that found sleepers and reports whether the first such release
// was shareQuantum ago; the clock is read at every 16th.
func (s *shareLock) quantumOver() bool {
	s.waiting++
	switch {
	case s.waiting == 1:
		s.waitSince = time.Now()
		return false
	case s.waiting&15 != 0:
		return false
	}
	return time.Since(s.waitSince) >= shareQuantum
}

// yieldTo is fairness for a writer that releases and takes the word again at once: when its
// release left the word to waiters, it first waits (at most shareHandoff) for one of them to
// take it, so that a busy writer cannot keep the others out. It reports whether one did; if
// none did, the request (shareWant) is stale and is cleared.
func (s *shareLock) yieldTo() bool {
	deadline := time.Now().Add(shareHandoff)
	for i := 0; s.word.Load() == 0; i++ {
		if i&15 == 15 {
			if time.Now().After(deadline) {
				s.sleepers.And(^uint32(shareWant))
				return false
			}
			futex.Yield()
		}
	}
	return true
}

// dead reports whether the owner named by w cannot be holding the lock: its token's byte is
// unlocked (its descriptor is closed, so its process is gone or its log closed), or its pid is
// not a process. A token locked by our own descriptor is ours: we are waiting, so not holding.
func (s *shareLock) dead(w uint64) bool {
	pid := int(w >> 32)
	tok := uint32(w)
	if pid <= 0 || pid > 1<<22 || tok == 0 {
		return true // no process: a damaged word
	}
	if w == s.owner {
		return true // ours from before (we hold the process mutex, so not now)
	}
	if held, ok := flock.HeldOFDAt(s.fd.Fd(), format.ShareTokenBase+int64(tok)); ok {
		// Exact, and blind to pid namespaces and reused pids: trust it alone.
		return !held
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}
