package shmio

import (
	"context"
	"errors"
	"fmt"
	"github.com/shmio/shmio/internal/testproc"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 11 point 22: Close (of a Log, a Queue or a QueueIterator) while another goroutine is in
// Wait or a read loop on the same handle, and a file truncated during Wait. Each scenario runs
// 20 times in a child process, so that a crash (a fault, SIGBUS) fails the test instead of
// ending the whole run.

func init() { xpRoles["close-race"] = hqCloseRaceChild }

const hqCloseRounds = 20

// hqFrames fills a new log (path) or queue (dir) with n frames and closes it.
func hqFillLog(path string, n int) error {
	l, err := Open(Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		return err
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		return err
	}
	for i := range n {
		if err := w.Append(fmt.Appendf(nil, "frame %d", i)); err != nil {
			return err
		}
	}
	return w.Commit()
}

func hqFillQueue(dir string, n int) error {
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 64 << 10})
	if err != nil {
		return err
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		return err
	}
	for i := range n {
		if err := w.Append(fmt.Appendf(nil, "frame %d", i)); err != nil {
			return err
		}
	}
	return w.Commit()
}

// hqWaitAsleep waits (bounded) until some reader sleeps on the log at path, or returns after a
// random short time (the Close then lands in the spin or on the way to sleep).
func hqWaitAsleep(path string, rng *rand.Rand) {
	if rng.IntN(2) == 0 {
		time.Sleep(time.Duration(rng.Int64N(int64(200 * time.Microsecond))))
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var b [goHeaderSize]byte
		if f, err := os.Open(path); err == nil {
			f.ReadAt(b[:], 0)
			f.Close()
			if le.Uint32(b[offWaiters:]) > 0 {
				return
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// hqResult waits (bounded) for the racing goroutine's error.
func hqResult(errc <-chan error) error {
	select {
	case err := <-errc:
		return err
	case <-time.After(20 * time.Second):
		return errors.New("the goroutine in flight did not return within 20 s")
	}
}

// hqCloseWithin runs close, failing if it blocks for long (it waits for methods in flight).
func hqCloseWithin(close func() error) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		return errors.New("Close blocked for 20 s")
	}
}

func hqWant(round int, what string, err, want error) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("round %d: %s: %v, want %v", round, what, err, want)
	}
	return nil
}

// hqCloseRaceChild runs SCENARIO hqCloseRounds times in directory DIR.
func hqCloseRaceChild() error {
	dir, scenario := testproc.Param("DIR"), testproc.Param("SCENARIO")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 22))
	ctx := context.Background()
	for round := range hqCloseRounds {
		path := filepath.Join(dir, fmt.Sprintf("%s-%d", scenario, round))
		switch scenario {
		case "log-close-wait", "log-truncate-wait", "log-close-loop":
			if err := hqFillLog(path, 1000); err != nil {
				return err
			}
			l, err := Open(Options{Path: path})
			if err != nil {
				return err
			}
			it, err := l.NewIterator(IteratorOptions{})
			if err != nil {
				return err
			}
			errc := make(chan error, 1)
			if scenario == "log-close-loop" {
				go func() {
					batch := make([][]byte, 0, 64)
					for {
						var err error
						if batch, err = it.NextBatch(batch[:0], BatchOptions{}); err != nil {
							errc <- err
							return
						}
						if len(batch) == 0 {
							if _, err := it.Seek(0, io.SeekStart); err != nil {
								errc <- err
								return
							}
						}
					}
				}()
				time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Millisecond))))
			} else {
				it.Seek(0, io.SeekEnd)
				go func() { errc <- it.Wait(ctx) }()
				hqWaitAsleep(path, rng)
			}
			want := ErrClosed
			if scenario == "log-truncate-wait" {
				want = ErrMappingGone
				if err := os.Truncate(path, 0); err != nil {
					return err
				}
				err = hqResult(errc)
				if cerr := hqCloseWithin(l.Close); cerr != nil {
					return fmt.Errorf("round %d: Close after the truncation: %v", round, cerr)
				}
			} else {
				if cerr := hqCloseWithin(l.Close); cerr != nil {
					return fmt.Errorf("round %d: Close: %v", round, cerr)
				}
				err = hqResult(errc)
			}
			if err := hqWant(round, scenario, err, want); err != nil {
				return err
			}
		case "queue-close-wait", "queue-iterator-close-wait", "queue-truncate-wait", "queue-close-loop", "queue-iterator-close-loop",
			"queue-named-close-wait", "queue-named-close-loop":
			if err := hqFillQueue(path, 3000); err != nil { // several segments
				return err
			}
			q, err := OpenQueue(QueueOptions{Dir: path})
			if err != nil {
				return err
			}
			name := ""
			if strings.Contains(scenario, "named") {
				name = "r" // counted in flight, unlike an anonymous iterator's fast paths
			}
			it, err := q.NamedIterator(name, IteratorOptions{})
			if err != nil {
				return err
			}
			errc := make(chan error, 1)
			loop := strings.HasSuffix(scenario, "-loop")
			if loop {
				go func() {
					batch := make([][]byte, 0, 64)
					for {
						var err error
						if batch, err = it.NextBatch(batch[:0], BatchOptions{}); err != nil {
							errc <- err
							return
						}
						if len(batch) == 0 {
							if _, err := it.Seek(0, io.SeekStart); err != nil {
								errc <- err
								return
							}
						}
					}
				}()
				time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Millisecond))))
			} else {
				if _, err := it.Seek(0, io.SeekEnd); err != nil {
					return err
				}
				go func() { errc <- it.Wait(ctx) }()
				hqWaitAsleep(q.segPath(it.Segment()), rng)
			}
			closer, want := q.Close, ErrClosed
			if scenario == "queue-iterator-close-wait" || scenario == "queue-iterator-close-loop" {
				closer = it.Close
			}
			if scenario == "queue-truncate-wait" {
				want = ErrMappingGone
				if err := os.Truncate(q.segPath(it.Segment()), 0); err != nil {
					return err
				}
				err = hqResult(errc)
				if cerr := hqCloseWithin(q.Close); cerr != nil {
					return fmt.Errorf("round %d: Close after the truncation: %v", round, cerr)
				}
			} else {
				if cerr := hqCloseWithin(closer); cerr != nil {
					return fmt.Errorf("round %d: Close: %v", round, cerr)
				}
				err = hqResult(errc)
				if scenario == "queue-iterator-close-wait" || scenario == "queue-iterator-close-loop" {
					q.Close()
				}
			}
			if err := hqWant(round, scenario, err, want); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown scenario %q", scenario)
		}
		os.RemoveAll(path)
	}
	fmt.Println("ok")
	return nil
}

// TestCloseDuringWaitAndReadLoops (issue 11 point 22): for logs and queues, closing the handle
// (Log.Close, Queue.Close, QueueIterator.Close) while another goroutine sleeps in Wait or reads
// in a NextBatch loop makes that goroutine return ErrClosed, with no crash, 20 times in a row;
// a file truncated under a sleeping Wait gives ErrMappingGone.
func TestCloseDuringWaitAndReadLoops(t *testing.T) {
	for _, sc := range []string{"log-close-wait", "log-close-loop", "log-truncate-wait",
		"queue-close-wait", "queue-iterator-close-wait", "queue-close-loop", "queue-iterator-close-loop", "queue-truncate-wait",
		"queue-named-close-wait", "queue-named-close-loop"} {
		t.Run(sc, func(t *testing.T) {
			if hqRace && strings.Contains(sc, "truncate") {
				t.Skip("a fault inside the race detector's atomics cannot be recovered")
			}
			c := testproc.Start(t, "close-race", "DIR="+testproc.ShmDir(t), "SCENARIO="+sc)
			c.Finish(3*time.Minute, nil)
		})
	}
}
