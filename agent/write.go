package agent

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"
)

// writeLoop commits outcome records in batches and keeps the checkpoint up to date.
func (a *Agent) writeLoop(results <-chan result) error {
	tick := time.NewTicker(a.cfg.CheckpointInterval)
	defer tick.Stop()
	batch := make([]result, 0, 256)
	lastCP := time.Now()
	for {
		select {
		case r, ok := <-results:
			if !ok {
				return a.writeCheckpoint(true)
			}
			batch = append(batch[:0], r)
			closed := false
		drain:
			for len(batch) < cap(batch) {
				select {
				case r, ok := <-results:
					if !ok {
						closed = true
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
			if err := a.commit(batch); err != nil {
				return err
			}
			if closed {
				return a.writeCheckpoint(true)
			}
			if time.Since(lastCP) >= a.cfg.CheckpointInterval {
				a.writeCheckpoint(false)
				lastCP = time.Now()
			}
		case <-tick.C:
			if time.Since(lastCP) >= a.cfg.CheckpointInterval {
				a.writeCheckpoint(false)
				lastCP = time.Now()
			}
		}
	}
}

// commit appends a batch of records to the Output, publishes them with one Commit, and then
// marks their prompts done.
func (a *Agent) commit(batch []result) error {
	pos := int64(-1)
	if a.cfg.Outcomes != nil {
		pos = a.cfg.Outcomes.End()
	}
	now := time.Now()
	for i := range batch {
		r := &batch[i]
		if r.delta != nil {
			if err := a.appendDelta(r.delta); err != nil {
				return err
			}
			continue
		}
		r.o.TS = now.UnixMilli()
		r.o.E2EMS = ms(now.Sub(r.start))
		if err := a.appendRecord(&r.o); err != nil {
			return err
		}
	}
	if err := a.cfg.Output.Commit(); err != nil {
		return fmt.Errorf("commit outcomes: %w", err)
	}
	for i := range batch {
		r := &batch[i]
		if r.delta != nil {
			a.c.deltas.Add(1)
			continue
		}
		a.tr.done(r.seqs, pos)
		n := uint64(len(r.seqs))
		switch r.o.Status {
		case StatusAnswered:
			a.c.answered.Add(n)
		case StatusFailed:
			a.c.failed.Add(n)
		case StatusExpired:
			a.c.expired.Add(n)
		case StatusRejected:
			a.c.rejected.Add(n)
		case StatusRefused:
			a.c.refused.Add(n)
		}
		a.c.cacheWrite.Add(uint64(max(0, r.o.CacheCreationInputTokens)))
		a.c.cacheRead.Add(uint64(max(0, r.o.CacheReadInputTokens)))
		a.c.costMicro.Add(int64(r.o.CostUSD * 1e6))
		a.c.inTok.Add(uint64(max(0, r.o.InputTokens)))
		a.c.outTok.Add(uint64(max(0, r.o.OutputTokens)))
		a.c.records.Add(1)
		if a.cfg.Observer != nil {
			a.cfg.Observer.ObserveOutcome(&r.o, len(r.seqs))
		}
	}
	return nil
}

// appendRecord encodes o into the Output, truncating the answer when the frame would be too big.
func (a *Agent) appendRecord(o *Outcome) error {
	rec := a.encode(o)
	limit := a.cfg.MaxRecordBytes
	for tries := 0; ; tries++ {
		if limit > 0 && len(rec) > limit && o.Text != "" && tries < 8 {
			over := len(rec) - limit
			cut := max(0, len(o.Text)-over-16)
			for cut > 0 && !utf8.RuneStart(o.Text[cut]) {
				cut--
			}
			o.Text, o.Truncated = o.Text[:cut], true
			rec = a.encode(o)
			continue
		}
		buf, err := a.cfg.Output.Allocate(len(rec))
		if err == nil {
			copy(buf, rec)
			return nil
		}
		if isFrameTooLarge(err) && tries < 8 {
			if limit == 0 || limit >= len(rec) {
				limit = min(len(rec)-1, 65531)
			}
			if o.Text == "" {
				o.Error = "outcome record too large for the response log"
				o.Metadata = nil
				o.IDs = nil
				rec = a.encode(o)
				limit = len(rec)
				if tries >= 6 {
					return fmt.Errorf("append outcome for cursor %d: %w", o.Cursor, err)
				}
			}
			continue
		}
		return fmt.Errorf("append outcome for cursor %d: %w", o.Cursor, err)
	}
}

// appendDelta encodes a streamed delta into the Output.
func (a *Agent) appendDelta(d *Delta) error {
	a.encBuf.Reset()
	_ = a.enc.Encode(d)
	rec := bytes.TrimSuffix(a.encBuf.Bytes(), []byte{'\n'})
	buf, err := a.cfg.Output.Allocate(len(rec))
	if err != nil {
		return fmt.Errorf("append delta for cursor %d: %w", d.Cursor, err)
	}
	copy(buf, rec)
	return nil
}

func (a *Agent) encode(o *Outcome) []byte {
	a.encBuf.Reset()
	if err := a.enc.Encode(o); err != nil {
		// Only Metadata can fail (it came from a decoder); drop it rather than the record.
		o.Metadata = nil
		a.encBuf.Reset()
		_ = a.enc.Encode(o)
	}
	return bytes.TrimSuffix(a.encBuf.Bytes(), []byte{'\n'})
}

// writeCheckpoint writes the cursor file when the watermark moved (or always with force).
func (a *Agent) writeCheckpoint(force bool) error {
	if a.cfg.CheckpointPath == "" {
		a.c.checkpoint.Store(a.tr.watermark())
		return nil
	}
	outEnd := int64(-1)
	if a.cfg.Outcomes != nil {
		outEnd = a.cfg.Outcomes.End()
	}
	cur, out := a.tr.checkpoint(outEnd)
	if !force && a.cpValid && a.lastCP.Cursor == cur && a.lastCP.OutCursor == out {
		return nil
	}
	cp := Checkpoint{Cursor: cur, OutCursor: out, InputID: a.cfg.InputID, Updated: time.Now().UTC()}
	if err := WriteCheckpoint(a.cfg.CheckpointPath, cp); err != nil {
		a.c.cpErrors.Add(1)
		a.log.Error("checkpoint", "err", err)
		return err
	}
	a.lastCP, a.cpValid = cp, true
	a.c.checkpoint.Store(cur)
	return nil
}
