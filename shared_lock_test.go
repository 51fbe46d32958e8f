package shmio

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/format"
)

// Tests of the lock word and the waiting bits (shared_lock.go; FORMAT.md, "Shared writers").

// TestShareLockDamaged is the model test of the lock word: whatever a damaged or stale word
// holds, a commit either recovers it (the word names no live holder) or reports ErrLocked
// (a live holder's token under another pid), within a bound, and never hangs.
func TestShareLockDamaged(t *testing.T) {
	defer func(s time.Duration) { shareStuck = s }(shareStuck)
	shareStuck = 100 * time.Millisecond
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := shWriter(t, l)
	shAppend(t, w, 1, 0, 1)
	own := l.shared.lock
	live := shWriter(t, utReopen(t, path, true, false)) // another live holder's token
	liveTok := uint64(live.sh.lock.token)
	me := uint64(os.Getpid())
	word := u64at(l.mem, format.OffShareLock)
	cases := []struct {
		name    string
		w       uint64
		recover bool
	}{
		{"garbage pid", 0x7fff_fff0<<32 | 0x1234, true},
		{"pid 0", 0x55, true},
		{"token 0", me << 32, true},
		{"all ones", ^uint64(0), true},
		{"live unrelated pid", 1<<32 | 0x9999, true},
		{"own pid, earlier incarnation", me<<32 | uint64(own.token^0x5a5a), true},
		{"own owner value", own.owner, true},
		{"live token, unrelated pid", 1<<32 | liveTok, false},
	}
	seq := uint64(1)
	for _, c := range cases {
		word.Store(c.w)
		// A tag slot beyond the end, as a holder that died inside CommitTagged leaves it.
		u64at(l.mem, offTag1End).Store(uint64(l.Header().Size) + 1000)
		u64at(l.mem, offTag1Tag).Store(99)
		steals := u32at(l.mem, format.OffShareSteals).Load()
		done := make(chan error, 1)
		go func() {
			if err := w.Append(make([]byte, shSize(1, seq))); err != nil {
				done <- err
				return
			}
			done <- w.Commit()
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: Commit hangs on lock word %#x", c.name, c.w)
		}
		if c.recover {
			if err != nil {
				t.Fatalf("%s: Commit: %v", c.name, err)
			}
			if got := u32at(l.mem, format.OffShareSteals).Load(); got != steals+1 {
				t.Fatalf("%s: steals %d -> %d, want one more", c.name, steals, got)
			}
			if u64at(l.mem, offTag1End).Load() > uint64(l.Header().Size) {
				t.Fatalf("%s: stale tag slot survived the recovery", c.name)
			}
			if word.Load() != 0 {
				t.Fatalf("%s: lock word %#x after the commit, want free", c.name, word.Load())
			}
			seq++
		} else {
			utIs(t, err, ErrLocked, c.name)
			word.Store(0)
		}
	}
}

// TestShareLockHandoff: a writer that commits without pause hands the word over once its
// quantum is over (invite, want, yield), so another process's writer, asleep, gets its commits
// in; no invitation or request is left once both stop.
func TestShareLockHandoff(t *testing.T) {
	defer func(s time.Duration) { shareSpin = s }(shareSpin)
	shareSpin = 0 // waiters sleep at once: the word comes to them only by the handoff
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 64 << 20})
	a := shWriter(t, l)
	b := shWriter(t, utReopen(t, path, true, false)) // another token: as another process
	stop := make(chan struct{})
	var seq atomic.Uint64 // the busy writer's commits
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := a.Append(make([]byte, 8)); err != nil {
				t.Error(err)
				return
			}
			if err := a.Commit(); err != nil {
				t.Error(err)
				return
			}
			seq.Add(1)
		}
	}()
	for seq.Load() < 1000 {
		time.Sleep(time.Millisecond)
	}
	for i := range 50 {
		done := make(chan error, 1)
		go func() {
			err := b.Append(make([]byte, 9))
			if err == nil {
				err = b.Commit()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second): // a bound on starvation, not a speed check
			t.Fatalf("commit %d of the second writer starves beside a busy writer", i)
		}
	}
	close(stop)
	<-busy
	sleepers := u32at(l.mem, format.OffShareSleepers)
	if f := sleepers.Load(); f&^shareSleeping != 0 {
		t.Fatalf("waiting bits %#x once nobody waits, want at most sleeping", f)
	}
	if w := u64at(l.mem, format.OffShareLock).Load(); w != 0 {
		t.Fatalf("lock word %#x after both stopped", w)
	}
	got := utReadAll(t, utIter(t, l))
	nb := 0
	for _, p := range got {
		if len(p) == 9 {
			nb++
		}
	}
	if nb != 50 {
		t.Fatalf("%d of the second writer's 50 frames read", nb)
	}
}

// TestShareLockStaleBits: waiting bits left by writers that died (a request nobody makes, an
// invitation nobody takes, a sleeper flag with nobody asleep) cost a busy writer at most a
// handoff wait each, and its own commits clear them.
func TestShareLockStaleBits(t *testing.T) {
	l := utOpen(t, Options{Capacity: 16 << 20})
	w := shWriter(t, l)
	sleepers := u32at(l.mem, format.OffShareSleepers)
	sleepers.Store(shareSleeping | shareWant | shareInvite)
	deadline := time.Now().Add(30 * time.Second)
	n := 0
	for sleepers.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("waiting bits %#x still set after %d commits", sleepers.Load(), n)
		}
		shAppend(t, w, 1, uint64(n), 1)
		n++
	}
	if len(utReadAll(t, utIter(t, l))) != n {
		t.Fatal("frames lost")
	}
}

// FuzzShareLockWord: any lock word and waiting bits are recovered or reported, never hung on,
// and a recovered log takes the commit whole.
func FuzzShareLockWord(f *testing.F) {
	for _, s := range []uint64{0, 1, ^uint64(0), uint64(os.Getpid()) << 32, 1 << 32, 0x7fffffff_00000001} {
		f.Add(s, uint32(0))
		f.Add(s, uint32(shareWant|shareInvite|shareSleeping))
	}
	f.Add(uint64(0), ^uint32(0))
	defer func(s time.Duration) { shareStuck = s }(shareStuck)
	shareStuck = 20 * time.Millisecond
	path := filepath.Join(f.TempDir(), "log")
	l := utOpen(f, Options{Path: path, Capacity: 16 << 20})
	w := shWriter(f, l)
	f.Fuzz(func(t *testing.T, v uint64, bits uint32) {
		word := u64at(l.mem, format.OffShareLock)
		word.Store(v)
		u32at(l.mem, format.OffShareSleepers).Store(bits)
		before := l.Header().Size
		err := w.Append([]byte("fuzz"))
		if errors.Is(err, ErrFull) {
			t.Skip(err)
		}
		if err == nil {
			err = w.Commit()
		}
		switch {
		case err == nil:
			if l.Header().Size != before+8 || word.Load() != 0 {
				t.Fatalf("word %#x: size %d -> %d, word after %#x", v, before, l.Header().Size, word.Load())
			}
		case errors.Is(err, ErrLocked):
			word.Store(0)
		default:
			t.Fatalf("word %#x: %v", v, err)
		}
	})
}
