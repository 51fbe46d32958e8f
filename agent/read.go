package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shmio/shmio"
)

// readLoop follows the input and hands prompts to the workers (rejects go straight to the writer).
func (a *Agent) readLoop(ctx context.Context, work chan<- []item, results chan<- result) error {
	in := a.cfg.Input
	frames := make([]shmio.Frame, 0, a.cfg.ReadMaxFrames)
	var group []item
	var lingerEnd time.Time
	refresh := time.NewTimer(time.Hour)
	refresh.Stop()
	defer refresh.Stop()
	flush := func() {
		if len(group) > 0 {
			work <- group
			group = nil
		}
	}
	for ctx.Err() == nil {
		free := a.tr.free()
		if free == 0 {
			flush() // nothing more can join the group until outcomes are written
			refresh.Reset(250 * time.Millisecond)
			select {
			case <-a.tr.space:
			case <-refresh.C:
				a.c.committed.Store(in.End())
			case <-ctx.Done():
			}
			refresh.Stop()
			continue
		}
		before := in.Cursor()
		var err error
		frames, err = in.NextFrames(frames[:0], shmio.BatchOptions{MaxFrames: min(free, a.cfg.ReadMaxFrames), MaxBytes: a.cfg.ReadMaxBytes})
		if err != nil {
			return fmt.Errorf("read prompts at cursor %d: %w", before, err)
		}
		a.c.committed.Store(in.End())
		if len(frames) == 0 {
			if len(group) == 0 || a.cfg.Linger <= 0 {
				flush()
				if err := in.Wait(ctx); err != nil && ctx.Err() == nil {
					if errors.Is(err, shmio.ErrSealed) {
						// The producer closed the log for good: finish what was read, then return.
						a.log.Info("prompt log sealed and fully read", "cursor", before)
						return nil
					}
					return fmt.Errorf("wait for prompts at cursor %d: %w", before, err)
				}
				continue
			}
			if !time.Now().Before(lingerEnd) {
				flush()
				continue
			}
			wctx, cancel := context.WithDeadline(ctx, lingerEnd)
			err := in.Wait(wctx)
			cancel()
			if errors.Is(err, shmio.ErrSealed) {
				flush() // nothing more will come: do not linger
				continue
			}
			if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("wait for prompts at cursor %d: %w", before, err)
			}
			continue
		}
		after := frames[len(frames)-1].End
		var readBytes int64
		now := time.Now()
		for _, f := range frames {
			c := f.Cursor
			readBytes += f.End - f.Cursor
			if a.tr.skipRecovered(c) {
				a.c.recovered.Add(1)
				continue
			}
			a.c.read.Add(1)
			seq := a.tr.add(c)
			p, err := a.cfg.Decoder(f.Data)
			if err != nil {
				results <- result{seqs: []uint64{seq}, start: now, o: Outcome{ID: p.ID, Cursor: c, Status: StatusRejected,
					Error: err.Error(), Metadata: p.Metadata}}
				continue
			}
			it := item{seq: seq, cursor: c, p: p, start: now}
			if p.TS > 0 {
				it.start = time.UnixMilli(p.TS)
			}
			ttl := a.cfg.TTL
			if p.TTLMS > 0 {
				ttl = time.Duration(p.TTLMS) * time.Millisecond
			}
			if ttl > 0 {
				it.deadline = it.start.Add(ttl)
			}
			if a.bt != nil && a.bt.attach(it, results) {
				continue // its batch was submitted by a previous run
			}
			if a.cfg.Coalesce <= 1 || p.alone() {
				work <- []item{it}
				continue
			}
			if len(group) == 0 {
				lingerEnd = now.Add(a.cfg.Linger)
			}
			group = append(group, it)
			if len(group) >= a.cfg.Coalesce {
				flush()
			}
		}
		a.c.readBytes.Add(readBytes)
		a.c.readCursor.Store(after)
		a.tr.setReadEnd(after)
		if a.cfg.Linger <= 0 || (len(group) > 0 && !now.Before(lingerEnd)) {
			flush()
		}
	}
	return nil
}
