package agent

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// TestAskStreamsAndMatches plays the agent: it reads the prompt Ask wrote, answers another id
// first, streams two attempts of deltas and then the outcome; Ask must hand over the deltas
// (the second attempt restarting) and return the matching outcome.
func TestAskStreamsAndMatches(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "prompts"), filepath.Join(dir, "outcomes")
	for _, p := range []string{in, out} {
		l, err := shmio.Open(shmio.Options{Path: p, Capacity: 1 << 20, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agentErr := make(chan error, 1)
	go func() {
		agentErr <- func() error {
			s, err := shmio.OpenStore(in, shmio.StoreOptions{})
			if err != nil {
				return err
			}
			defer s.Close()
			it, err := s.OpenReader(shmio.IteratorOptions{})
			if err != nil {
				return err
			}
			defer it.Close()
			var f []byte
			for f == nil {
				if f, err = it.Next(); err != nil {
					return err
				}
				if f == nil {
					if err := it.Wait(ctx); err != nil {
						return err
					}
				}
			}
			p, err := DecodePrompt(f)
			if err != nil {
				return err
			}
			if p.Prompt != "hello" || p.TS == 0 {
				return errors.New("prompt not as written: " + string(f))
			}
			recs := []any{
				Outcome{ID: "other", Status: StatusAnswered, Text: "not mine"},
				Delta{ID: p.ID, Status: StatusDelta, Attempts: 1, Seq: 1, Text: "hel"},
				Delta{ID: p.ID, Status: StatusDelta, Attempts: 2, Seq: 1, Text: "hi "},
				Delta{ID: p.ID, Status: StatusDelta, Attempts: 2, Seq: 2, Text: "there"},
				Outcome{ID: p.ID, Status: StatusAnswered, Text: "hi there", Attempts: 2},
			}
			for _, r := range recs {
				b, _ := json.Marshal(r)
				if err := writeFrame(ctx, out, b); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	var got strings.Builder
	a, err := Ask(ctx, AskOptions{In: in, Out: out, Prompt: Prompt{Prompt: "hello"}, Delta: func(text string, restart bool) {
		if restart {
			got.WriteString("|")
		}
		got.WriteString(text)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-agentErr; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.ID, "prompt-") || a.Text != "hi there" || !a.Streamed || got.String() != "hel|hi there" {
		t.Fatalf("answer %+v, deltas %q", a, got.String())
	}
}

// TestAskMissingLog: without the logs Ask waits until ctx ends and says which log it waited for.
func TestAskMissingLog(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Ask(ctx, AskOptions{In: filepath.Join(dir, "in"), Out: filepath.Join(dir, "out"), Prompt: Prompt{Prompt: "x"}})
	var ae *AskError
	if !errors.As(err, &ae) || ae.Stage != AskLogs || ae.Path != filepath.Join(dir, "out") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%#v", err)
	}
}
