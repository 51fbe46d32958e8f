package bench

// The demo's writer and reader processes. Every event is a 64-byte frame:
//
//	0  u64 sequence number (0, 1, 2, ...; the end marker carries the number of events)
//	8  i64 write time, Unix nanoseconds (readers measure latency against it)
//	16 u32 kind: 0 event, 1 end marker
//	20 filler derived from the sequence number
//	60 u32 CRC-32C of bytes 0..60
//
// Readers check order, gaps and checksums for every event and report live stats and a final result.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/shmio/shmio"
)

const (
	demoPayload  = DemoPayload
	demoKindData = 0
	demoKindEnd  = 1
)

// DemoPayload is the size of every demo event.
const DemoPayload = 64

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func init() {
	childRoles["demo-writer"] = runDemoWriter
	childRoles["demo-reader"] = runDemoReader
}

type demoWriterConfig struct {
	Path       string        `json:"path"`
	Duration   time.Duration `json:"duration"`
	Rate       float64       `json:"rate"`       // events per second
	MaxEvents  int64         `json:"max_events"` // never more than this (the log's room, end marker aside)
	StatsEvery time.Duration `json:"stats_every"`
}

type demoReaderConfig struct {
	Path       string        `json:"path"`
	StatsEvery time.Duration `json:"stats_every"`
}

type demoStats struct {
	Events int64 `json:"events"`
	AtNs   int64 `json:"at_ns"`
	P50    int64 `json:"p50_ns,omitempty"` // readers: latency over the interval since the last stats
	P99    int64 `json:"p99_ns,omitempty"`
}

// DemoWriterResult is what the demo's writer reports.
type DemoWriterResult struct {
	Events  int64   `json:"events"`
	Seconds float64 `json:"seconds"`
	Full    bool    `json:"full"` // stopped early because the log ran out of room
}

// DemoReaderResult is what each of the demo's readers reports.
type DemoReaderResult struct {
	Events      int64 `json:"events"`
	LastSeq     int64 `json:"last_seq"` // -1 when no event arrived
	OutOfOrder  int64 `json:"out_of_order"`
	BadChecksum int64 `json:"bad_checksum"`
	GotEnd      bool  `json:"got_end"`
	Announced   int64 `json:"announced"` // events the writer's end marker says it wrote
	P50         int64 `json:"p50_ns"`
	P99         int64 `json:"p99_ns"`
	P999        int64 `json:"p999_ns"`
	Max         int64 `json:"max_ns"`
}

// demoFill writes one event (or the end marker) into p.
func demoFill(p []byte, seq uint64, kind uint32, ts int64) {
	binary.LittleEndian.PutUint64(p, seq)
	binary.LittleEndian.PutUint64(p[8:], uint64(ts))
	binary.LittleEndian.PutUint32(p[16:], kind)
	x := seq*0x9E3779B97F4A7C15 + 1 // cheap per-event filler so every payload differs
	for i := 20; i+8 <= demoPayload-4; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(p[i:], x)
	}
	binary.LittleEndian.PutUint32(p[demoPayload-4:], crc32.Checksum(p[:demoPayload-4], crc32c))
}

func runDemoWriter(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg demoWriterConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	l, w, err := openChildWriter(cfg.Path)
	if err != nil {
		return err
	}
	defer l.Close()
	out.ready()

	start := time.Now()
	next := start.Add(cfg.StatsEvery)
	var sent int64
	full := false
	for {
		now := time.Now()
		el := now.Sub(start)
		if el >= cfg.Duration {
			break
		}
		if now.After(next) {
			out.emit("stats", demoStats{Events: sent, AtNs: now.UnixNano()})
			next = next.Add(cfg.StatsEvery)
		}
		due := min(int64(cfg.Rate*el.Seconds()), cfg.MaxEvents)
		if sent >= cfg.MaxEvents {
			full = true
			break
		}
		if sent >= due {
			// Ahead of schedule: sleep (Go's timers make this about a millisecond), then write what
			// fell due meanwhile as one burst, as a producer draining its input would.
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for k := min(due-sent, 4096); k > 0; k-- {
			p, err := w.Allocate(demoPayload)
			if err != nil {
				return fmt.Errorf("event %d: %w", sent, err)
			}
			demoFill(p, uint64(sent), demoKindData, nowNanos())
			// Commit every 64 events, so an event waits for at most 63 others (a few µs), not
			// for the whole burst, before readers may see it.
			if sent++; sent%64 == 0 || k == 1 {
				if err := w.Commit(); err != nil {
					return fmt.Errorf("commit: %w", err)
				}
			}
		}
	}
	p, err := w.Allocate(demoPayload)
	if err != nil {
		return fmt.Errorf("end marker: %w", err)
	}
	demoFill(p, uint64(sent), demoKindEnd, nowNanos())
	if err := w.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	out.emit("stats", demoStats{Events: sent, AtNs: nowNanos()})
	out.emit("result", DemoWriterResult{Events: sent, Seconds: time.Since(start).Seconds(), Full: full})
	return nil
}

func runDemoReader(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg demoReaderConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	l, it, err := openChildReader(cfg.Path, 0)
	if err != nil {
		return err
	}
	defer l.Close()
	out.ready()

	var (
		res        = DemoReaderResult{LastSeq: -1}
		total      latHist // whole run
		window     latHist // since the last stats line
		next       uint64  // expected sequence number
		dst        = make([][]byte, 0, 256)
		bo         = shmio.BatchOptions{MaxFrames: 256}
		statsEvery = cfg.StatsEvery.Nanoseconds()
		nextStats  = nowNanos() + statsEvery
	)
	sendStats := func(now int64) {
		out.emit("stats", demoStats{Events: res.Events, AtNs: now, P50: window.quantile(0.5), P99: window.quantile(0.99)})
		window.reset()
		nextStats = now + statsEvery
	}
	for !res.GotEnd {
		dst, err = it.NextBatch(dst[:0], bo)
		if err != nil {
			return fmt.Errorf("read at cursor %d: %w", it.Cursor(), err)
		}
		if len(dst) == 0 {
			// Caught up: Wait spins briefly, then sleeps until the next commit; the deadline keeps the
			// stats lines coming when the writer pauses.
			wctx, cancel := context.WithDeadline(ctx, time.Unix(0, nextStats))
			err := it.Wait(wctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				sendStats(nowNanos())
			} else if err != nil {
				return fmt.Errorf("wait at cursor %d: %w", it.Cursor(), err)
			}
			continue
		}
		now := nowNanos() // one clock read per batch: the whole batch arrived now
		for _, p := range dst {
			if len(p) != demoPayload || binary.LittleEndian.Uint32(p[demoPayload-4:]) != crc32.Checksum(p[:demoPayload-4], crc32c) {
				res.BadChecksum++
				continue
			}
			seq := binary.LittleEndian.Uint64(p)
			if binary.LittleEndian.Uint32(p[16:]) == demoKindEnd {
				res.GotEnd, res.Announced = true, int64(seq)
				break
			}
			if seq != next {
				res.OutOfOrder++
			}
			next = seq + 1
			res.Events++
			res.LastSeq = int64(seq)
			lat := now - int64(binary.LittleEndian.Uint64(p[8:]))
			total.add(lat)
			window.add(lat)
		}
		if now >= nextStats {
			sendStats(now)
		}
	}
	sendStats(nowNanos())
	res.P50, res.P99, res.P999, res.Max = total.quantile(0.5), total.quantile(0.99), total.quantile(0.999), total.max
	out.emit("result", res)
	return nil
}
