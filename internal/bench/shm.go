package bench

// shmio's side of the throughput benchmark: a producer child fills a log under /dev/shm through
// Allocate (the zero-copy path) and commits every Config.CommitEvery frames; each consumer child reads the
// same log with NextBatch into a reused slice (no allocation per frame) and checks every frame.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shmio/shmio"
)

func init() {
	childRoles["shm-producer"] = runShmProducer
	childRoles["shm-consumer"] = runShmConsumer
}

type shmConfig struct {
	Path        string        `json:"path"`
	Frames      int64         `json:"frames"`
	Size        int           `json:"size"`
	CommitEvery int           `json:"commit_every"`
	Spin        time.Duration `json:"spin"`  // consumer: IteratorOptions.Spin
	Batch       int           `json:"batch"` // consumer: BatchOptions.MaxFrames
}

func runShmProducer(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg shmConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	l, w, err := openChildWriter(cfg.Path)
	if err != nil {
		return err
	}
	defer l.Close()
	tmpl := benchTemplate(cfg.Size)
	out.ready()

	u0, start := selfUsage(), nowNanos()
	batch := 0
	for seq := range uint64(cfg.Frames) {
		p, err := w.Allocate(cfg.Size)
		if err != nil {
			return fmt.Errorf("allocate frame %d: %w", seq, err)
		}
		copy(p, tmpl)
		benchFill(p, seq)
		if batch++; batch == cfg.CommitEvery {
			batch = 0
			if err := w.Commit(); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	end := nowNanos()
	out.emit("result", producerResult{Frames: cfg.Frames, StartNs: start, EndNs: end, usage: selfUsage().since(u0)})
	return nil
}

func runShmConsumer(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg shmConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	l, it, err := openChildReader(cfg.Path, cfg.Spin)
	if err != nil {
		return err
	}
	defer l.Close()
	chk := seqCheck{size: cfg.Size}
	out.ready()
	u0 := selfUsage()
	start, err := shmConsume(ctx, it, &chk, cfg.Frames, cfg.Batch)
	if err != nil {
		return err
	}
	out.emit("result", chk.result(start, nowNanos(), selfUsage().since(u0)))
	return nil
}

// shmConsume reads frames until it has seen the last of n (or ctx ends a wait), checking each with
// chk. It allocates nothing per frame: NextBatch appends to one reused slice. It returns when the
// first frame arrived.
func shmConsume(ctx context.Context, it *shmio.Iterator, chk *seqCheck, n int64, batch int) (start int64, err error) {
	// Frames only bound a batch, as the ceiling consumer's (MaxBytes would cut 1 KiB batches short).
	bo := shmio.BatchOptions{MaxFrames: batch, MaxBytes: 1 << 30}
	dst := make([][]byte, 0, max(batch, 64))
	last := uint64(n - 1)
	done := n == 0
	for !done {
		dst, err = it.NextBatch(dst[:0], bo)
		if err != nil {
			return start, fmt.Errorf("read at cursor %d: %w", it.Cursor(), err)
		}
		if len(dst) == 0 {
			// Caught up: spin briefly, then sleep until the producer's next commit. The parent
			// kills a consumer whose producer died, so no deadline is needed here.
			if err := it.Wait(ctx); err != nil {
				return start, fmt.Errorf("waiting at cursor %d after %d frames: %w", it.Cursor(), chk.frames, err)
			}
			continue
		}
		if start == 0 {
			start = nowNanos()
		}
		done = chk.checkBatch(dst, last)
	}
	return start, nil
}
