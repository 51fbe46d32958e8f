package replicate

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// BenchmarkReplicate measures a log -> pusher -> embedded nats-server (file storage) -> puller ->
// log pipeline, one frame per message, frames of mixed sizes (8 bytes to 64 KiB, ~240 on
// average). b.N is the number of frames; run it with a fixed count, for example
//
//	go test ./replicate -run '^$' -bench Replicate -benchtime 200000x -count 5
//
// burst: the writer appends b.N frames as fast as it can; frames/s is end to end, from the first
// commit in the source to the last commit in the copy, and lag is how long each frame took to
// appear in the copy (mostly queueing behind the backlog).
// paced: the writer appends 5,000 frames/s in 1 ms steps; lag is the replication latency of a
// pipeline that keeps up.
func BenchmarkReplicate(b *testing.B) {
	b.Run("burst", func(b *testing.B) { benchReplicate(b, 0) })
	b.Run("paced", func(b *testing.B) { benchReplicate(b, 5000) })
}

func benchReplicate(b *testing.B, rate int) {
	dir := b.TempDir()
	s := startServer(b, filepath.Join(dir, "js"), 0)
	capacity := int64(b.N)*300 + 64<<20
	src := createLog(b, filepath.Join(dir, "src.log"), capacity)
	dst := createLog(b, filepath.Join(dir, "dst.log"), capacity)
	it, err := src.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	push, err := NewPusher(it, PushConfig{Conn: connect(b, s.ClientURL()), Stream: StreamOptions{Name: "BENCH"},
		LogID: src.Header().ID, CursorFile: filepath.Join(dir, "cursor")})
	if err != nil {
		b.Fatal(err)
	}
	dw, err := dst.Writer()
	if err != nil {
		b.Fatal(err)
	}
	pull, err := NewPuller(dw, PullConfig{Conn: connect(b, s.ClientURL()), Stream: "BENCH", Durable: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	stopPush, stopPull := runBG(push.Run), runBG(pull.Run)
	defer stopPull()
	defer stopPush()

	// The reader timestamps each frame as it becomes visible in the copy.
	lags := make([]time.Duration, 0, b.N)
	readerDone := make(chan time.Time, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		di, err := dst.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			b.Error(err)
			return
		}
		var batch [][]byte
		for len(lags) < b.N {
			if err := di.Wait(ctx); err != nil {
				return
			}
			batch, _ = di.NextBatch(batch[:0], shmio.BatchOptions{MaxFrames: 1024, MaxBytes: 8 << 20})
			now := time.Now().UnixNano()
			for _, f := range batch {
				lags = append(lags, time.Duration(now-int64(binary.LittleEndian.Uint64(f))))
			}
		}
		readerDone <- time.Now()
	}()

	w, err := src.Writer()
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	perStep := 256
	if rate > 0 {
		perStep = max(1, rate/1000)
	}
	b.ResetTimer()
	start := time.Now()
	next := start
	pending := make([][]byte, 0, perStep)
	for i := 0; i < b.N; {
		k := min(perStep, b.N-i)
		pending = pending[:0]
		for j := 0; j < k; j++ {
			f, err := w.Allocate(max(8, frameSize(rng)))
			if err != nil {
				b.Fatal(err)
			}
			fillFrame(f, i+j)
			pending = append(pending, f)
		}
		now := time.Now().UnixNano()
		for _, f := range pending {
			binary.LittleEndian.PutUint64(f, uint64(now))
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		i += k
		if rate > 0 {
			next = next.Add(time.Millisecond)
			time.Sleep(time.Until(next))
		}
	}
	var end time.Time
	select {
	case end = <-readerDone:
	case <-time.After(10 * time.Minute):
		b.Fatalf("copy incomplete: push %+v pull %+v", push.Stats(), pull.Stats())
	}
	b.StopTimer()
	elapsed := end.Sub(start)
	slices.Sort(lags)
	pct := func(p float64) float64 { return float64(lags[int(p*float64(len(lags)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(pct(0.5), "p50-lag-ms")
	b.ReportMetric(pct(0.99), "p99-lag-ms")
	b.ReportMetric(pct(1), "max-lag-ms")
}
