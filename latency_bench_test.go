package shmio

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

func init() { xpRoles["echo"] = xpEchoChild }

// Cross-process ping-pong: this process commits a frame to the "ping" log, a child process
// reads it and commits a copy to the "pong" log, this process reads that. One-way latency is
// reported as half the round trip, which needs no clock shared between the processes. Both
// sides read the same way, by sub-benchmark: "spin" is a busy Next loop (lowest latency, a core
// each); "futex" calls Wait with Spin < 0 when Next has nothing, so each side sleeps on the
// futex until the other's Commit wakes it; "wait-default" calls Wait with the default spin
// (DefaultSpin) before sleeping.
//
//	go test -run '^$' -bench Latency -count 5 .
func BenchmarkLatencyPingPong(b *testing.B) {
	for _, mode := range []string{"spin", "futex", "wait-default"} {
		b.Run(mode, func(b *testing.B) { xpPingPong(b, mode) })
	}
}

const xpPingSize = 32

// xpReadOne returns the next frame, reading as mode says; nil on ctx expiry or error.
func xpReadOne(ctx context.Context, it *Iterator, mode string) ([]byte, error) {
	for {
		f, err := it.Next()
		if f != nil || err != nil {
			return f, err
		}
		if mode != "spin" {
			if err := it.Wait(ctx); err != nil {
				return nil, err
			}
		} else if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

func xpIterOptions(mode string) IteratorOptions {
	if mode == "futex" {
		return IteratorOptions{Spin: -1}
	}
	return IteratorOptions{}
}

// xpEchoChild copies N frames from the log at PING to the log at PONG, reading as MODE says,
// after printing "ready".
func xpEchoChild() error {
	n := testproc.ParamInt("N", 0)
	mode := testproc.Param("MODE")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in, err := Open(Options{Path: testproc.Param("PING"), Prefault: true})
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := Open(Options{Path: testproc.Param("PONG"), Writable: true, Prefault: true})
	if err != nil {
		return err
	}
	defer out.Close()
	it, err := in.NewIterator(xpIterOptions(mode))
	if err != nil {
		return err
	}
	w, err := out.Writer()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for i := int64(0); i < n; i++ {
		f, err := xpReadOne(ctx, it, mode)
		if err != nil {
			return fmt.Errorf("ping %d: %w", i, err)
		}
		if err := w.Append(f); err != nil {
			return err
		}
		if err := w.Commit(); err != nil {
			return err
		}
	}
	return w.Close()
}

func xpPingPong(b *testing.B, mode string) {
	dir := testproc.ShmDir(b)
	capacity := int64(goHeaderSize + (b.N+1)*(xpPingSize+4))
	ping := xpCreate(b, dir, "ping", capacity)
	pong := xpCreate(b, dir, "pong", capacity)
	out, err := Open(Options{Path: ping, Writable: true, Prefault: true})
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	in, err := Open(Options{Path: pong, Prefault: true})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	w, err := out.Writer()
	if err != nil {
		b.Fatal(err)
	}
	it, err := in.NewIterator(xpIterOptions(mode))
	if err != nil {
		b.Fatal(err)
	}
	child := testproc.Start(b, "echo", "PING="+ping, "PONG="+pong,
		"N="+strconv.Itoa(b.N), "MODE="+mode)
	if got := child.Line(time.Minute); got != "ready" {
		b.Fatalf("echo child said %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rtt := make([]time.Duration, b.N)
	payload := make([]byte, xpPingSize)
	b.ResetTimer()
	for i := range b.N {
		le.PutUint64(payload, uint64(i))
		start := time.Now()
		if err := w.Append(payload); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		f, err := xpReadOne(ctx, it, mode)
		if err != nil {
			b.Fatalf("pong %d: %v", i, err)
		}
		rtt[i] = time.Since(start)
		if le.Uint64(f) != uint64(i) {
			b.Fatalf("pong %d carries %d", i, le.Uint64(f))
		}
	}
	b.StopTimer()
	child.Finish(time.Minute, nil)
	slices.Sort(rtt)
	b.ReportMetric(float64(rtt[len(rtt)/2].Nanoseconds())/2, "oneway-p50-ns")
	b.ReportMetric(float64(rtt[len(rtt)*99/100].Nanoseconds())/2, "oneway-p99-ns")
}
