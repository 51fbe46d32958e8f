package agent

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/shmio/shmio"
)

// resume positions the input at the checkpoint and collects outcomes written after it.
func (a *Agent) resume() (int64, error) {
	in := a.cfg.Input
	start := in.Cursor()
	outFrom := int64(-1)
	if a.cfg.CheckpointPath != "" {
		cp, err := ReadCheckpoint(a.cfg.CheckpointPath)
		switch {
		case err == nil:
			if cp.InputID != "" && a.cfg.InputID != "" && cp.InputID != a.cfg.InputID {
				return 0, fmt.Errorf("checkpoint %s belongs to input %q, not %q", a.cfg.CheckpointPath, cp.InputID, a.cfg.InputID)
			}
			if _, err := in.Seek(cp.Cursor, io.SeekStart); err != nil {
				return 0, fmt.Errorf("resume at checkpoint cursor %d: %w", cp.Cursor, err)
			}
			start, outFrom = cp.Cursor, cp.OutCursor
		case isNotExist(err):
		default:
			return 0, err
		}
	}
	if a.cfg.Batch {
		bt, err := newBatcher(a, start)
		if err != nil {
			return 0, err
		}
		a.bt = bt
	}
	a.tr.setReadEnd(start)
	a.c.readCursor.Store(start)
	a.c.committed.Store(in.End())
	if a.cfg.Outcomes != nil && outFrom >= 0 {
		rec, err := scanOutcomes(a.cfg.Outcomes, outFrom, start)
		if err != nil {
			return 0, err
		}
		a.tr.setRecovered(rec)
		if len(rec) > 0 {
			a.log.Info("outcomes already written past the checkpoint", "prompts", len(rec))
		}
	}
	return start, nil
}

// scanOutcomes reads the response log from position from and returns, for each input cursor at or
// past minCursor that already has an outcome, a position at or before that outcome.
func scanOutcomes(out Source, from, minCursor int64) (map[int64]int64, error) {
	if _, err := out.Seek(from, io.SeekStart); err != nil {
		// Not a position of this log any more (replaced, or trimmed by retention): scanning from
		// the start finds every outcome still there.
		if _, err2 := out.Seek(0, io.SeekStart); err2 != nil {
			return nil, fmt.Errorf("scan response log at %d: %w", from, err)
		}
	}
	rec := make(map[int64]int64)
	var frames []shmio.Frame
	for {
		var err error
		frames, err = out.NextFrames(frames[:0], shmio.BatchOptions{MaxFrames: 256})
		if err != nil {
			return nil, fmt.Errorf("scan response log at %d: %w", out.Cursor(), err)
		}
		if len(frames) == 0 {
			return rec, nil
		}
		for _, f := range frames {
			var o struct {
				Cursor  *int64  `json:"cursor"`
				Cursors []int64 `json:"cursors"`
				Status  Status  `json:"status"`
			}
			if json.Unmarshal(f.Data, &o) != nil || o.Cursor == nil || o.Status == StatusDelta {
				continue // not an outcome record
			}
			cs := o.Cursors
			if len(cs) == 0 {
				cs = []int64{*o.Cursor}
			}
			for _, c := range cs {
				if c >= minCursor {
					if _, dup := rec[c]; !dup {
						rec[c] = f.Cursor
					}
				}
			}
		}
	}
}
