package shmio

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/futex"
	"github.com/shmio/shmio/internal/testproc"
)

// In-process tests of Iterator.Wait; the cross-process ones are in multiproc_test.go.

// utNeedFutex skips tests of the futex wake protocol where readers poll instead.
func utNeedFutex(t *testing.T) {
	if !futex.Supported {
		t.Skip("no futex here: readers poll")
	}
}

// utAsyncWait runs it.Wait(ctx) in a goroutine.
func utAsyncWait(ctx context.Context, it *Iterator) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- it.Wait(ctx) }()
	return ch
}

func utRecv(t *testing.T, what string, ch <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(within):
		t.Fatalf("%s: no return within %v", what, within)
		return nil
	}
}

func TestWaitWakesOnCommit(t *testing.T) {
	utNeedFutex(t)
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	// The reader is another, read-only handle, as in another process: it counts itself through
	// its own mapping of the header.
	r := utReopen(t, path, false, false)
	for _, spin := range []time.Duration{-1, 0, time.Millisecond} {
		it, err := r.NewIterator(IteratorOptions{StartCursor: r.Header().Size - 192, Spin: spin})
		if err != nil {
			t.Fatal(err)
		}
		done := utAsyncWait(context.Background(), it)
		testproc.WaitFor(t, 5*time.Second, "the reader to sleep", func() bool { return l.Header().Waiters == 1 })
		if r.Header().Waiters != 1 {
			t.Fatalf("the reader's own handle sees %d waiters", r.Header().Waiters)
		}
		wake := u32at(l.mem, offWake).Load()
		utAppend(t, w, 0, 17)
		if err := utRecv(t, "Wait", done, 5*time.Second); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if got := u32at(l.mem, offWake).Load(); got == wake {
			t.Fatalf("commit with a sleeper did not bump the wake word")
		}
		testproc.WaitFor(t, 5*time.Second, "the waiter count to drop", func() bool { return l.Header().Waiters == 0 })
		f, err := it.Next()
		if err != nil || !bytes.Equal(f, utPayload(0, 17)) {
			t.Fatalf("Next after Wait = %v, %v", f, err)
		}
	}
	// A commit with nobody asleep leaves the wake word alone (Commit stays one store and one load).
	wake := u32at(l.mem, offWake).Load()
	utAppend(t, w, 1, 3)
	if got := u32at(l.mem, offWake).Load(); got != wake {
		t.Fatalf("commit without sleepers changed the wake word %d -> %d", wake, got)
	}
}

func TestWaitManySleepers(t *testing.T) {
	utNeedFutex(t)
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	const n = 4
	var chans []<-chan error
	for range n {
		it, err := l.NewIterator(IteratorOptions{Spin: -1})
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, utAsyncWait(context.Background(), it))
	}
	testproc.WaitFor(t, 5*time.Second, "all readers to sleep", func() bool { return l.Header().Waiters == n })
	utAppend(t, w, 0, 1)
	for i, ch := range chans {
		if err := utRecv(t, "Wait", ch, 5*time.Second); err != nil {
			t.Fatalf("sleeper %d: %v", i, err)
		}
	}
	testproc.WaitFor(t, 5*time.Second, "the waiter count to drop", func() bool { return l.Header().Waiters == 0 })
}

func TestWaitAvailable(t *testing.T) {
	l := utOpen(t, Options{})
	w := utWriter(t, l)
	utAppend(t, w, 0, 5)
	it := utIter(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A frame past the cursor: Wait returns nil at once, whatever the context.
	if err := it.Wait(ctx); err != nil {
		t.Fatalf("Wait with a frame available = %v", err)
	}
	utNextN(t, it, 1)
	// Moving back makes a frame available again.
	it.Prev()
	if err := it.Wait(ctx); err != nil {
		t.Fatalf("Wait after Prev = %v", err)
	}
}

func TestWaitContext(t *testing.T) {
	l := utOpen(t, Options{})
	for _, spin := range []time.Duration{-1, 0, 5 * time.Millisecond} {
		it, err := l.NewIterator(IteratorOptions{Spin: spin})
		if err != nil {
			t.Fatal(err)
		}
		// Already cancelled: at once.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		if err := it.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("spin %v: Wait(cancelled) = %v", spin, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("spin %v: Wait(cancelled) took %v", spin, d)
		}
		// Deadline: not before it, and soon after.
		start = time.Now() // before the context: the deadline cannot come sooner than 40ms from here
		ctx, cancel = context.WithTimeout(context.Background(), 40*time.Millisecond)
		err = it.Wait(ctx)
		d := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("spin %v: Wait(deadline) = %v", spin, err)
		}
		if d < 40*time.Millisecond || d > 2*time.Second {
			t.Fatalf("spin %v: Wait with a 40ms deadline took %v", spin, d)
		}
		// Cancelled while asleep: returns promptly, and the waiter count is restored.
		ctx, cancel = context.WithCancel(context.Background())
		done := utAsyncWait(ctx, it)
		if spin < 0 && futex.Supported {
			testproc.WaitFor(t, 5*time.Second, "the reader to sleep", func() bool { return l.Header().Waiters == 1 })
		} else {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := utRecv(t, "Wait after cancel", done, 2*time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("spin %v: Wait cancelled while asleep = %v", spin, err)
		}
		testproc.WaitFor(t, 5*time.Second, "the waiter count to drop", func() bool { return l.Header().Waiters == 0 })
	}
}

// A Node-made file has no wake word: readers poll, and still see a commit promptly.
func TestWaitNodeFormat(t *testing.T) {
	path := utGoldenCopy(t)
	wl := utReopen(t, path, true, false)
	w := utWriter(t, wl)
	r := utReopen(t, path, false, false)
	it, err := r.NewIterator(IteratorOptions{StartCursor: r.Header().Size - 24, Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		done := utAsyncWait(context.Background(), it)
		time.Sleep(15 * time.Millisecond) // long enough to be polling at the slowest rate
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v before any commit", err)
		default:
		}
		if n := r.Header().Waiters; n != 0 {
			t.Fatalf("Node-format file reports %d waiters", n)
		}
		utAppend(t, w, 220+round, 33)
		start := time.Now()
		if err := utRecv(t, "Wait on a Node-format file", done, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("polling Wait took %v to notice a commit", d)
		}
		f, err := it.Next()
		if err != nil || !bytes.Equal(f, utPayload(220+round, 33)) {
			t.Fatalf("frame after Wait: %v", err)
		}
	}
}

// A writer that does not use the wake word (Node shmio appending to a file made here) still
// wakes sleeping readers within the sleep slice.
func TestWaitForeignWriter(t *testing.T) {
	utNeedFutex(t)
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	r := utReopen(t, path, false, false)
	it, err := r.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	done := utAsyncWait(context.Background(), it)
	testproc.WaitFor(t, 5*time.Second, "the reader to sleep", func() bool { return l.Header().Waiters == 1 })
	wake := u32at(l.mem, offWake).Load()
	// What Node shmio does: frame bytes, then the committed end; nothing else.
	le.PutUint16(l.mem[192:], 7)
	copy(l.mem[194:], "abc")
	le.PutUint16(l.mem[197:], 7)
	start := time.Now()
	l.size.Store(199)
	if err := utRecv(t, "Wait after a foreign commit", done, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a foreign commit took %v to notice", d)
	}
	if u32at(l.mem, offWake).Load() != wake {
		t.Fatal("wake word changed: the test did not simulate a foreign writer")
	}
	if f, err := it.Next(); err != nil || string(f) != "abc" {
		t.Fatalf("foreign frame = %q, %v", f, err)
	}
}

// Wait racing commits: a reader never misses a wake-up (run with -race). The sleep slice is
// stretched to an hour, so only a wake-up can end a sleep: a lost one fails the test at the
// context's deadline instead of costing a slice.
func TestWaitNoLostWakeups(t *testing.T) {
	utNeedFutex(t)
	old := sleepSlice
	sleepSlice = time.Hour
	defer func() { sleepSlice = old }()
	l := utOpen(t, Options{Capacity: 1 << 20})
	w := utWriter(t, l)
	const rounds = 300
	it, err := l.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	ack := make(chan struct{})
	wg.Go(func() {
		for i := range rounds {
			if err := w.Append(utPayload(i, 4)); err != nil {
				t.Error(err)
				return
			}
			if err := w.Commit(); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-ack:
			case <-ctx.Done():
				return
			}
		}
	})
	for i := range rounds {
		if err := it.Wait(ctx); err != nil {
			t.Fatalf("round %d: Wait: %v (a wake-up was lost)", i, err)
		}
		f, err := it.Next()
		if err != nil || !bytes.Equal(f, utPayload(i, 4)) {
			t.Fatalf("round %d: Next = %v, %v", i, f, err)
		}
		select {
		case ack <- struct{}{}:
		case <-ctx.Done(): // a sleep outlasted the context: only its cancellation woke the reader
			t.Fatalf("round %d: %v before the reader woke: a wake-up was lost", i, ctx.Err())
		}
	}
	wg.Wait()
}

// Sealing wakes a sleeping reader, which gets ErrSealed once it has read everything; frames
// committed before the seal still come first.
func TestWaitSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	r := utReopen(t, path, false, false)
	it, err := r.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	done := utAsyncWait(context.Background(), it)
	if futex.Supported {
		testproc.WaitFor(t, 5*time.Second, "the reader to sleep", func() bool { return l.Header().Waiters == 1 })
	}
	if err := w.Append([]byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := utRecv(t, "Wait", done, 5*time.Second); err != nil {
		t.Fatalf("Wait with a frame before the seal: %v", err)
	}
	if f, err := it.Next(); err != nil || string(f) != "last" {
		t.Fatalf("Next = %q, %v", f, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = it.Wait(ctx)
	if !errors.Is(err, ErrSealed) || ErrorCode(err) != "ERR_SHM_SEALED" {
		t.Fatalf("Wait at the end of a sealed log = %v, want ErrSealed", err)
	}
	if !r.Sealed() || !r.Header().Sealed {
		t.Fatal("reader does not see the seal")
	}
}
