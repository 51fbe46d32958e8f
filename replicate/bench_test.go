package replicate

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

// The replication benchmarks run a log -> pusher -> embedded nats-server (file storage in a temp
// dir) -> puller -> log pipeline, and measure in the same run the ceiling they are judged
// against: raw nats.go async publishing of one message per frame into a file-backed stream.
// b.N is the number of frames; run them with a fixed count, for example
//
//	go test ./replicate -run '^$' -bench 'Replicate' -benchtime 1000000x -count 5
//
// Metrics: frames/s and MB/s end to end (first commit in the source to the last commit in the
// copy), raw-msgs/s and raw-MB/s (the ceiling), x-raw (frames/s over raw msgs/s) or x-raw-bytes,
// store-x (stream bytes over payload bytes) and the copy lag percentiles.

// BenchmarkReplicate32: 32-byte frames as fast as the writer appends them.
func BenchmarkReplicate32(b *testing.B) { benchReplicate(b, 32, 0) }

// BenchmarkReplicate1K: 1 KiB frames as fast as the writer appends them.
func BenchmarkReplicate1K(b *testing.B) { benchReplicate(b, 1024, 0) }

// BenchmarkReplicatePaced: 32-byte frames at 100,000 frames/s (100 per 1 ms commit): the lag
// of a pipeline that keeps up.
func BenchmarkReplicatePaced(b *testing.B) { benchReplicate(b, 32, 100_000) }

func benchReplicate(b *testing.B, size, rate int) {
	dir := b.TempDir()
	s := startServer(b, filepath.Join(dir, "js"), 0)
	url := s.ClientURL()
	var rawRate float64
	var rawLags []time.Duration
	if rate == 0 {
		rawRate = rawPublishRate(b, url, size, min(b.N, 200_000))
	} else {
		rawLags = rawLag(b, url, rate/1000*(size+1), 2000)
	}

	capacity := int64(b.N+1)*int64(size+8) + 64<<20
	src := createLog(b, filepath.Join(dir, "src.log"), capacity)
	dst := createLog(b, filepath.Join(dir, "dst.log"), capacity)
	it, err := src.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	push, err := NewPusher(it, PushConfig{Conn: connect(b, url), Stream: StreamOptions{Name: "BENCH"},
		LogID: src.Header().ID, CursorFile: filepath.Join(dir, "cursor")})
	if err != nil {
		b.Fatal(err)
	}
	dw, err := dst.Writer()
	if err != nil {
		b.Fatal(err)
	}
	pull, err := NewPuller(dw, PullConfig{Conn: connect(b, url), Stream: "BENCH", Durable: "bench"})
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
		warm := true // the warm-up frame
		for len(lags) < b.N {
			if err := di.Wait(ctx); err != nil {
				return
			}
			batch, _ = di.NextBatch(batch[:0], shmio.BatchOptions{MaxFrames: 4096, MaxBytes: 8 << 20})
			now := time.Now().UnixNano()
			for _, f := range batch {
				if warm {
					warm = false
					continue
				}
				lags = append(lags, time.Duration(now-int64(binary.LittleEndian.Uint64(f))))
			}
		}
		readerDone <- time.Now()
	}()

	w, err := src.Writer()
	if err != nil {
		b.Fatal(err)
	}
	// One frame through first: the stream and the consumer exist before the clock starts.
	if err := w.Append(make([]byte, size)); err != nil {
		b.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	eventually(b, time.Minute, "the warm-up frame", func() bool { return pull.Stats().Frames >= 1 })
	perStep := 256
	if rate > 0 {
		perStep = max(1, rate/1000)
	}
	b.ResetTimer()
	start := time.Now()
	next := start
	for i := 0; i < b.N; {
		k := min(perStep, b.N-i)
		now := uint64(time.Now().UnixNano())
		for j := 0; j < k; j++ {
			f, err := w.Allocate(size)
			if err != nil {
				b.Fatal(err)
			}
			binary.LittleEndian.PutUint64(f, now)
			binary.LittleEndian.PutUint64(f[8:], uint64(i+j))
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
	js, err := jetstream.New(connect(b, url))
	if err != nil {
		b.Fatal(err)
	}
	st, err := js.Stream(context.Background(), "BENCH")
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(lags)
	pct := func(p float64) float64 { return float64(lags[int(p*float64(len(lags)-1))].Microseconds()) / 1000 }
	fps := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(fps, "frames/s")
	b.ReportMetric(fps*float64(size)/1e6, "MB/s")
	b.ReportMetric(float64(st.CachedInfo().State.Bytes)/float64((b.N+1)*size), "store-x")
	b.ReportMetric(float64(b.N+1)/float64(st.CachedInfo().State.Msgs), "frames/msg")
	if rawRate > 0 {
		b.ReportMetric(rawRate, "raw-msgs/s")
		b.ReportMetric(rawRate*float64(size)/1e6, "raw-MB/s")
		b.ReportMetric(fps/rawRate, "x-raw")
	}
	b.ReportMetric(pct(0.5), "p50-lag-ms")
	b.ReportMetric(pct(0.99), "p99-lag-ms")
	b.ReportMetric(pct(1), "max-lag-ms")
	b.ReportMetric(float64(push.Stats().Resyncs), "resyncs")
	b.ReportMetric(float64(pull.Stats().Resets), "resets")
	if len(rawLags) > 0 {
		lags = rawLags
		b.ReportMetric(pct(0.5), "raw-p50-lag-ms")
		b.ReportMetric(pct(0.99), "raw-p99-lag-ms")
	}
}

// rawLag is the latency ceiling of the paced benchmark: n messages of size bytes (one step's
// frames), one per millisecond, published with nats.go's async publish into a file-backed stream
// and consumed by a pull consumer on another connection; the time from publish to receipt.
func rawLag(b *testing.B, url string, size, n int) []time.Duration {
	ctx := context.Background()
	js, err := jetstream.New(connect(b, url))
	if err != nil {
		b.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAWLAG", Subjects: []string{"rawlag"}, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	cjs, err := jetstream.New(connect(b, url))
	if err != nil {
		b.Fatal(err)
	}
	cs, err := cjs.Stream(ctx, "RAWLAG")
	if err != nil {
		b.Fatal(err)
	}
	c, err := cs.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		b.Fatal(err)
	}
	lags := make([]time.Duration, 0, n)
	done := make(chan struct{})
	cc, err := c.Consume(func(m jetstream.Msg) {
		lags = append(lags, time.Duration(time.Now().UnixNano()-int64(binary.LittleEndian.Uint64(m.Data()))))
		_ = m.Ack()
		if len(lags) == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	data := make([]byte, max(size, 8))
	next := time.Now()
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(data, uint64(time.Now().UnixNano()))
		m := &nats.Msg{Subject: "rawlag", Data: data, Header: nats.Header{jetstream.MsgIDHeader: {strconv.Itoa(i)}}}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
		next = next.Add(time.Millisecond)
		time.Sleep(time.Until(next))
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("raw lag: %d of %d messages received", len(lags), n)
	}
	_ = st
	if err := js.DeleteStream(ctx, "RAWLAG"); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lags)
	return lags
}

// rawPublishRate is the ceiling: n messages of size bytes, one per frame, published with
// nats.go's async publish (a message id header each, as replication used to send) into a
// file-backed stream on the same server, in messages per second.
func rawPublishRate(b *testing.B, url string, size, n int) float64 {
	nc := connect(b, url)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		m := &nats.Msg{Subject: "raw", Data: data, Header: nats.Header{jetstream.MsgIDHeader: {strconv.Itoa(i)}}}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("raw publish did not complete")
	}
	rate := float64(n) / time.Since(start).Seconds()
	if err := js.DeleteStream(ctx, "RAW"); err != nil {
		b.Fatal(err)
	}
	return rate
}
