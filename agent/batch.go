package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// With Config.Batch the agent sends prompts through the Message Batches API: the batcher gathers
// prompts up to BatchSize or BatchAge, submits them as one batch with each prompt's input cursor
// as custom_id, and a poller per batch waits for it to end and hands its results to the writer as
// ordinary outcomes. The checkpoint passes a prompt only once its outcome is written (the tracker
// sees to that, as for direct requests). The ids of submitted batches are kept in a file next to
// the checkpoint (BatchStatePath), so an agent killed while batches are in flight resumes polling
// them instead of submitting their prompts again.

// BatchStatePath is the file beside a checkpoint that lists the batches in flight.
func BatchStatePath(checkpoint string) string { return checkpoint + ".batches" }

// BatchRecord is one submitted batch in the state file.
type BatchRecord struct {
	ID        string    `json:"id"`
	Cursors   []int64   `json:"cursors"`
	Submitted time.Time `json:"submitted"`
}

type batchState struct {
	Batches []BatchRecord `json:"batches"`
}

// ReadBatchState reads the batches in flight; a missing file means none.
func ReadBatchState(path string) ([]BatchRecord, error) {
	b, err := os.ReadFile(path)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read batch state: %w", err)
	}
	var s batchState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read batch state %s: %w", path, err)
	}
	return s.Batches, nil
}

type batcher struct {
	a    *Agent
	bc   BatchClient
	path string

	mu       sync.Mutex
	inflight []BatchRecord
	waiting  map[int64]item        // read and submitted (or resumed), result pending
	held     map[int64]BatchResult // results that came before their prompt was read again
	resumed  map[int64]string      // cursor -> batch resumed from the state file
	requeue  chan item             // prompts to put in a later batch
	wg       *sync.WaitGroup       // the pollers
}

// newBatcher loads the batches a previous run left in flight, keeping those with prompts at or
// past the resume cursor.
func newBatcher(a *Agent, start int64) (*batcher, error) {
	b := &batcher{a: a, bc: a.cfg.Client.(BatchClient), path: BatchStatePath(a.cfg.CheckpointPath),
		waiting: map[int64]item{}, held: map[int64]BatchResult{}, resumed: map[int64]string{},
		requeue: make(chan item, a.cfg.MaxPending)}
	recs, err := ReadBatchState(b.path)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if !slices.ContainsFunc(r.Cursors, func(c int64) bool { return c >= start }) {
			continue
		}
		b.inflight = append(b.inflight, r)
		for _, c := range r.Cursors {
			b.resumed[c] = r.ID
		}
	}
	return b, b.persistLocked()
}

// persistLocked rewrites the state file (b.mu held, or before the batcher runs).
func (b *batcher) persistLocked() error {
	b.a.c.batches.Store(int64(len(b.inflight)))
	if len(b.inflight) == 0 {
		if err := os.Remove(b.path); err != nil && !isNotExist(err) {
			return fmt.Errorf("batch state: %w", err)
		}
		return nil
	}
	data, err := json.Marshal(batchState{Batches: b.inflight})
	if err != nil {
		return fmt.Errorf("batch state: %w", err)
	}
	return writeFileAtomic(b.path, append(data, '\n'))
}

// attach takes a prompt just read whose batch a previous run submitted: its result, held or to
// come, becomes its outcome. It reports false for other prompts.
func (b *batcher) attach(it item, results chan<- result) bool {
	b.mu.Lock()
	id, ok := b.resumed[it.cursor]
	if !ok {
		b.mu.Unlock()
		return false
	}
	delete(b.resumed, it.cursor)
	r, got := b.held[it.cursor]
	if got {
		delete(b.held, it.cursor)
	} else {
		b.waiting[it.cursor] = it
	}
	b.mu.Unlock()
	if got {
		b.finish(it, id, r, results)
	}
	return true
}

// run gathers prompts from work into batches until work is closed, and starts a poller per batch
// (the resumed ones first).
func (b *batcher) run(soft, hard context.Context, work <-chan []item, results chan<- result) {
	for _, r := range b.inflight {
		b.wg.Go(func() { b.poll(soft, hard, r, results) })
	}
	var pending []item
	age := time.NewTimer(time.Hour)
	age.Stop()
	defer age.Stop()
	add := func(it item) {
		if len(pending) == 0 {
			age.Reset(b.a.cfg.BatchAge)
		}
		pending = append(pending, it)
		if len(pending) >= b.a.cfg.BatchSize {
			age.Stop()
			b.submit(soft, hard, pending, results)
			pending = nil
		}
	}
	for {
		select {
		case g, ok := <-work:
			if !ok {
				if soft.Err() == nil && len(pending) > 0 {
					b.submit(soft, hard, pending, results) // the input was sealed: send the rest
				}
				return // stopping: prompts not submitted get no outcome and are read again
			}
			for _, it := range g {
				add(it)
			}
		case it := <-b.requeue:
			add(it)
		case <-age.C:
			if len(pending) > 0 {
				b.submit(soft, hard, pending, results)
				pending = nil
			}
		}
	}
}

// submit creates a batch of g through the shared back-off, records it, and starts its poller.
func (b *batcher) submit(soft, hard context.Context, g []item, results chan<- result) {
	a := b.a
	now := time.Now()
	live := g[:0:0]
	for _, it := range g {
		if !it.deadline.IsZero() && now.After(it.deadline) {
			results <- a.expired(it, 0, "TTL ran out before the batch was submitted", nil)
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	reqs := make([]BatchRequest, len(live))
	cursors := make([]int64, len(live))
	for i, it := range live {
		reqs[i] = BatchRequest{CustomID: strconv.FormatInt(it.cursor, 10), Request: a.request([]item{it})}
		cursors[i] = it.cursor
	}
	var id string
	err := b.call(soft, hard, func(ctx context.Context) error {
		var err error
		id, err = b.bc.SubmitBatch(ctx, reqs)
		return err
	}, a.configFields(live))
	if err != nil {
		if errors.Is(err, errStopped) {
			return
		}
		for _, it := range live {
			results <- a.failed([]item{it}, 1, err, 0)
		}
		return
	}
	a.c.requests.Add(1)
	rec := BatchRecord{ID: id, Cursors: cursors, Submitted: now.UTC()}
	b.mu.Lock()
	for _, it := range live {
		b.waiting[it.cursor] = it
	}
	b.inflight = append(b.inflight, rec)
	perr := b.persistLocked()
	b.mu.Unlock()
	if perr != nil {
		a.log.Error("batch state", "err", perr)
	}
	a.log.Debug("batch submitted", "id", id, "prompts", len(live))
	b.wg.Go(func() { b.poll(soft, hard, rec, results) })
}

var errStopped = errors.New("stopped")

// call runs one API call through the shared back-off until it succeeds, the agent stops
// (errStopped), a fatal error stops the agent (errStopped), or a non-transient error returns.
func (b *batcher) call(soft, hard context.Context, fn func(ctx context.Context) error, fromConfig func(string) bool) error {
	a := b.a
	stops := [3]<-chan struct{}{hard.Done(), soft.Done(), a.fatalCh}
	for {
		if stopped(stops) {
			return errStopped
		}
		tk, err := a.gate.acquire(time.Time{}, stops)
		if err != nil {
			return errStopped
		}
		ctx, cancel := context.WithTimeout(hard, a.cfg.RequestTimeout)
		err = fn(ctx)
		cancel()
		if err == nil {
			a.gate.release(tk, false, 0)
			return nil
		}
		if hard.Err() != nil {
			a.gate.cancel(tk)
			return errStopped
		}
		switch class, reason := classify(err, fromConfig); class {
		case classFatal:
			a.gate.cancel(tk)
			a.setFatal(reason, err)
			return errStopped
		case classPrompt:
			a.gate.release(tk, false, 0)
			return err
		}
		var hint time.Duration
		var ae *APIError
		if errors.As(err, &ae) {
			hint = ae.RetryAfter
		}
		a.gate.release(tk, true, hint)
		a.c.retries.Add(1)
	}
}

// poll waits for a batch to end, then delivers its results and drops it from the state file. On
// shutdown it just stops: the state file keeps the batch for the next run.
func (b *batcher) poll(soft, hard context.Context, rec BatchRecord, results chan<- result) {
	a := b.a
	stops := [3]<-chan struct{}{hard.Done(), soft.Done(), a.fatalCh}
	all := func(string) bool { return true }
	for {
		if !sleep(a.cfg.BatchPoll, stops) {
			return
		}
		var ended bool
		err := b.call(soft, hard, func(ctx context.Context) (err error) {
			ended, err = b.bc.BatchEnded(ctx, rec.ID)
			return err
		}, all)
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil {
			a.log.Error("batch lost: its prompts go into a new batch", "id", rec.ID, "err", err)
			break
		}
		if !ended {
			continue
		}
		err = b.call(soft, hard, func(ctx context.Context) error {
			return b.bc.BatchResults(ctx, rec.ID, func(r BatchResult) { b.deliver(rec.ID, r, results) })
		}, all)
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil {
			a.log.Error("batch results unreadable: its prompts go into a new batch", "id", rec.ID, "err", err)
			break
		}
		// Keep the batch in the state file until the checkpoint passes it, so a kill before its
		// outcomes are committed resumes it rather than submitting its prompts again.
		last := slices.Max(rec.Cursors)
		for a.tr.watermark() <= last && b.waitingFor(rec) == 0 {
			if !sleep(a.cfg.BatchPoll, stops) {
				return
			}
		}
		break
	}
	// Prompts of the batch still waiting got no result: send them again.
	b.mu.Lock()
	var again []item
	for _, c := range rec.Cursors {
		if it, ok := b.waiting[c]; ok {
			delete(b.waiting, c)
			again = append(again, it)
		}
	}
	b.inflight = slices.DeleteFunc(b.inflight, func(r BatchRecord) bool { return r.ID == rec.ID })
	perr := b.persistLocked()
	b.mu.Unlock()
	if perr != nil {
		a.log.Error("batch state", "err", perr)
	}
	for _, it := range again {
		b.requeue <- it
	}
}

// waitingFor counts the prompts of rec still waiting for a result.
func (b *batcher) waitingFor(rec BatchRecord) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range rec.Cursors {
		if _, ok := b.waiting[c]; ok {
			n++
		}
	}
	return n
}

// deliver routes one result to its prompt: now if it was read, later if it is yet to be read
// again after a restart, never if its outcome is already written.
func (b *batcher) deliver(id string, r BatchResult, results chan<- result) {
	c, err := strconv.ParseInt(r.CustomID, 10, 64)
	if err != nil {
		return
	}
	b.mu.Lock()
	it, ok := b.waiting[c]
	if ok {
		delete(b.waiting, c)
	} else if b.resumed[c] == id {
		b.held[c] = r
	}
	b.mu.Unlock()
	if ok {
		b.finish(it, id, r, results)
	}
}

// finish turns a batch result into the prompt's outcome, or puts the prompt in a later batch.
func (b *batcher) finish(it item, id string, r BatchResult, results chan<- result) {
	a := b.a
	switch r.Type {
	case "succeeded":
		res := a.answered([]item{it}, r.Response, 1, 0)
		res.o.BatchID = id
		res.o.CostUSD = cost(a.cfg.Prices, &res.o, 0.5) // the Batches API bills half
		results <- res
		return
	case "errored":
		switch class, reason := classify(r.Err, a.configFields([]item{it})); class {
		case classFatal:
			a.setFatal(reason, r.Err)
			return // no outcome: the checkpoint stays before it
		case classPrompt:
			res := a.failed([]item{it}, 1, r.Err, 0)
			res.o.BatchID = id
			results <- res
			return
		}
	}
	// canceled, expired, or a transient error: try again in a later batch, within the TTL.
	if !it.deadline.IsZero() && time.Now().After(it.deadline) {
		results <- a.expired(it, 1, "TTL ran out while batched ("+r.Type+")", r.Err)
		return
	}
	b.requeue <- it
}

// prune drops the batches the checkpoint has passed from the state file (at shutdown).
func (b *batcher) prune(checkpoint int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight = slices.DeleteFunc(b.inflight, func(r BatchRecord) bool { return slices.Max(r.Cursors) < checkpoint })
	return b.persistLocked()
}
