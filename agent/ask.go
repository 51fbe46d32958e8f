package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/shmio/shmio"
)

// AskOptions says where to ask, and what.
type AskOptions struct {
	In  string // the prompt log (or queue directory) the agent follows
	Out string // the response log (or queue directory) the agent writes
	// Prompt is the prompt to write; an empty ID gets a random one, and TS is set when the
	// frame is written (a TTL counts from then).
	Prompt Prompt
	// Delta, when set, hears the answer's streamed text as it comes (the agent runs with
	// streaming); restart is true when a retried attempt starts the text over.
	Delta func(text string, restart bool)
}

// AskStage says what Ask waited for when it failed.
type AskStage int

const (
	AskLogs    AskStage = iota // the logs to exist (the agent creates them)
	AskWriter                  // the prompt log's writer lock
	AskOutcome                 // the outcome record
)

// AskError is the error of Ask: the stage, the log concerned and the cause (the context's error
// when it ended, such as context.DeadlineExceeded).
type AskError struct {
	Stage AskStage
	Path  string
	Err   error
}

func (e *AskError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *AskError) Unwrap() error { return e.Err }

// Answer is what Ask returns.
type Answer struct {
	Outcome
	ID       string // the prompt's id
	Streamed bool   // the final attempt's text went to Delta in full
}

// Ask writes one prompt frame into o.In and waits for its outcome in o.Out, as long as ctx
// allows: for both logs to exist, for the prompt log's writer lock (held only for the write),
// and for the outcome record whose id matches. The response log is followed from its end before
// the prompt is written, so the outcome cannot be missed.
func Ask(ctx context.Context, o AskOptions) (Answer, error) {
	p := o.Prompt
	if p.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		p.ID = "prompt-" + hex.EncodeToString(b[:])
	}
	for _, path := range []string{o.Out, o.In} {
		if err := waitExists(ctx, path); err != nil {
			return Answer{ID: p.ID}, &AskError{AskLogs, path, err}
		}
	}
	p.TS = time.Now().UnixMilli()
	frame, err := EncodePrompt(p)
	if err != nil {
		return Answer{ID: p.ID}, err
	}
	it, closeOut, err := followEnd(o.Out)
	if err != nil {
		return Answer{ID: p.ID}, &AskError{AskOutcome, o.Out, err}
	}
	defer closeOut()
	if err := writeFrame(ctx, o.In, frame); err != nil {
		return Answer{ID: p.ID}, &AskError{AskWriter, o.In, err}
	}
	a, err := awaitOutcome(ctx, it, p.ID, o.Delta)
	if err != nil {
		return a, &AskError{AskOutcome, o.Out, err}
	}
	return a, nil
}

// poll sleeps a short, growing interval (from 2ms to 100ms); false if ctx ended.
func poll(ctx context.Context, d *time.Duration) bool {
	*d = min(max(2*time.Millisecond, *d*2), 100*time.Millisecond)
	t := time.NewTimer(*d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitExists waits until path is a log file, or a queue directory with its metadata.
func waitExists(ctx context.Context, path string) error {
	var d time.Duration
	for {
		if _, err := os.Stat(path); err == nil {
			s, err := shmio.OpenStore(path, shmio.StoreOptions{})
			if err == nil {
				return s.Close()
			}
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, shmio.ErrBadHeader) {
				return err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !poll(ctx, &d) {
			return ctx.Err()
		}
	}
}

// followEnd opens a reader at the committed end of a log (or queue directory).
func followEnd(path string) (shmio.FrameIterator, func(), error) {
	s, err := shmio.OpenStore(path, shmio.StoreOptions{})
	if err != nil {
		return nil, nil, err
	}
	it, err := s.OpenReader(shmio.IteratorOptions{})
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	closeAll := func() { it.Close(); s.Close() }
	if _, err := it.Seek(0, io.SeekEnd); err != nil {
		closeAll()
		return nil, nil, err
	}
	return it, closeAll, nil
}

// writeFrame appends one frame to a log (or queue) through a shared writer, so concurrent
// prompts append side by side.
// While the lock is held the other way (an exclusive writer), it retries until ctx ends.
func writeFrame(ctx context.Context, path string, frame []byte) error {
	s, err := shmio.OpenStore(path, shmio.StoreOptions{Writable: true})
	if err != nil {
		return err
	}
	defer s.Close()
	var d time.Duration
	for {
		w, err := openWriter(s)
		if errors.Is(err, shmio.ErrLocked) {
			if !poll(ctx, &d) {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			return err
		}
		defer w.Close()
		if err := w.Append(frame); err != nil {
			return fmt.Errorf("write prompt: %w", err)
		}
		if err := w.Commit(); err != nil {
			return fmt.Errorf("write prompt: %w", err)
		}
		return nil
	}
}

// openWriter opens a shared writer on a log (shmio.Log.SharedWriter) or a queue
// (shmio.Queue.SharedWriter).
func openWriter(s shmio.Store) (shmio.FrameWriter, error) {
	switch s := s.(type) {
	case *shmio.Log:
		return s.SharedWriter()
	case *shmio.Queue:
		return s.SharedWriter()
	}
	return s.OpenWriter()
}

// awaitOutcome follows the response log until the final outcome for id arrives, handing the
// streamed deltas of its attempts to delta.
func awaitOutcome(ctx context.Context, it shmio.FrameIterator, id string, delta func(string, bool)) (Answer, error) {
	attempt, streamed := 0, false
	for {
		f, err := it.Next()
		if err != nil {
			return Answer{ID: id}, fmt.Errorf("read outcomes: %w", err)
		}
		if f == nil {
			if err := it.Wait(ctx); err != nil {
				return Answer{ID: id}, err
			}
			continue
		}
		o, err := ParseOutcome(f)
		if err != nil || !o.Matches(id) {
			continue
		}
		if o.IsFinal() {
			return Answer{Outcome: o, ID: id, Streamed: streamed && attempt == o.Attempts}, nil
		}
		if delta == nil {
			continue
		}
		restart := false
		if o.Attempts != attempt {
			restart, attempt, streamed = streamed, o.Attempts, true
		}
		delta(o.Text, restart)
	}
}
