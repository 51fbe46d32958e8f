package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/agent"
	"github.com/spf13/cobra"
)

func init() { register(newPromptCmd()) }

type promptOptions struct {
	in, out   string
	id        string
	system    string
	maxTokens int
	ttl       time.Duration
	timeout   time.Duration
	metadata  string
	asJSON    bool
	stream    bool
}

func newPromptCmd() *cobra.Command {
	var o promptOptions
	cmd := &cobra.Command{
		Use:   `prompt --in PATH --out PATH "TEXT"`,
		Short: "Write one prompt for the agent and wait for its outcome",
		Long: `Write one prompt frame into the prompt log that "shmio agent" follows, wait for the agent's
outcome record in the response log, and print the answer (or, with --json, the whole record).
TEXT "-" reads the prompt from standard input.

Exit status: 0 when the prompt was answered; 1 when it failed, expired, was rejected or refused
by the model, or no outcome arrived within --timeout (the reason is printed on stderr); 2 for
other errors.

Everything waits within --timeout: for the logs to exist (the agent creates them), for the prompt
log's writer lock (held by another writer for a moment), and for the outcome. With --stream (and
"shmio agent --stream") the answer is printed as its tokens arrive.`,
		Example: `  shmio prompt --in /dev/shm/prompts --out /dev/shm/answers "Name three prime numbers."
  echo "Summarise: $(uptime)" | shmio prompt --in /dev/shm/prompts --out /dev/shm/answers --json -`,
		Args: requireArgs(1, "TEXT"),
		RunE: func(cmd *cobra.Command, args []string) error { return runPrompt(cmd, args[0], o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.in, "in", "", "prompt log the agent reads")
	f.StringVar(&o.out, "out", "", "response log the agent writes")
	f.StringVar(&o.id, "id", "", "prompt id (default: random)")
	f.StringVar(&o.system, "system", "", "system prompt")
	f.IntVar(&o.maxTokens, "max-tokens", 0, "answer cap (default: the agent's)")
	f.DurationVar(&o.ttl, "ttl", 0, "time to live: the agent does not send the prompt after this (default: the agent's)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the outcome")
	f.StringVar(&o.metadata, "metadata", "", "JSON object echoed in the outcome (a user_id in it is sent to the API)")
	f.BoolVar(&o.asJSON, "json", false, "print the outcome record as JSON")
	f.BoolVar(&o.stream, "stream", false, "print the answer as it streams (needs \"shmio agent --stream\")")
	_ = cmd.MarkFlagRequired("in")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runPrompt(cmd *cobra.Command, text string, o promptOptions) error {
	if text == "-" {
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return fmt.Errorf("read prompt: %w", err)
		}
		text = strings.TrimRight(string(b), "\n")
	}
	if strings.TrimSpace(text) == "" {
		return errors.New("the prompt is empty")
	}
	if o.maxTokens < 0 || o.ttl < 0 || o.timeout <= 0 {
		return errors.New("--max-tokens and --ttl must not be negative, --timeout must be positive")
	}
	p := agent.Prompt{ID: o.id, Prompt: text, System: o.system, MaxTokens: o.maxTokens, TS: time.Now().UnixMilli(),
		TTLMS: o.ttl.Milliseconds()}
	if o.ttl > 0 && p.TTLMS == 0 {
		p.TTLMS = 1
	}
	if p.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		p.ID = "prompt-" + hex.EncodeToString(b[:])
	}
	if o.metadata != "" {
		if !json.Valid([]byte(o.metadata)) || !strings.HasPrefix(strings.TrimSpace(o.metadata), "{") {
			return errors.New("--metadata must be a JSON object")
		}
		p.Metadata = json.RawMessage(o.metadata)
	}

	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	timedOut := func(err error, what string) error {
		if errors.Is(err, context.DeadlineExceeded) {
			return &exitError{1, fmt.Errorf("%s within %v", what, o.timeout)}
		}
		return err
	}
	// The agent creates the logs: wait for them, as long as --timeout allows.
	for _, l := range []struct{ path, what, flag string }{{o.out, "response", "--out"}, {o.in, "prompt", "--in"}} {
		if err := waitExists(ctx, l.path); err != nil {
			return timedOut(err, fmt.Sprintf("%s: no %s log (is \"shmio agent %s %s ...\" running?)", l.path, l.what, l.flag, l.path))
		}
	}
	p.TS = time.Now().UnixMilli() // the TTL counts from the write, not from the wait for the logs
	frame, err := agent.EncodePrompt(p)
	if err != nil {
		return err
	}
	// Follow the response log from its current end before writing, so the outcome cannot be missed.
	it, closeOut, err := followEnd(o.out)
	if err != nil {
		return err
	}
	defer closeOut()

	if err := writePrompt(ctx, o.in, frame); err != nil {
		return timedOut(err, fmt.Sprintf("%s: another process held the writer lock", o.in))
	}
	var w io.Writer
	if o.stream && !o.asJSON {
		w = cmd.OutOrStdout()
	}
	oc, streamed, err := awaitOutcome(ctx, it, p.ID, w)
	if err != nil {
		return timedOut(err, fmt.Sprintf("no outcome for prompt %s (is \"shmio agent\" running on %s?)", p.ID, o.in))
	}
	out := cmd.OutOrStdout()
	switch {
	case o.asJSON:
		b, _ := json.Marshal(oc)
		fmt.Fprintf(out, "%s\n", b)
	case oc.Status == agent.StatusAnswered || oc.Status == agent.StatusRefused && oc.Text != "":
		if !streamed {
			fmt.Fprint(out, oc.Text)
		}
		if !strings.HasSuffix(oc.Text, "\n") {
			fmt.Fprintln(out)
		}
	case streamed:
		fmt.Fprintln(out)
	}
	if oc.Status == agent.StatusRefused {
		return &exitError{1, fmt.Errorf("prompt %s refused by the model (stop_reason refusal)", p.ID)}
	}
	if oc.Status != agent.StatusAnswered {
		return &exitError{1, fmt.Errorf("prompt %s %s: %s", p.ID, oc.Status, oc.Error)}
	}
	return nil
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

// waitExists waits until path exists (a log file, or a queue directory with its metadata).
func waitExists(ctx context.Context, path string) error {
	var d time.Duration
	for {
		if _, err := os.Stat(path); err == nil {
			s, err := shmio.OpenStore(path, shmio.StoreOptions{})
			if err == nil {
				return s.Close()
			}
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, shmio.ErrBadHeader) {
				return fmt.Errorf("%s: %s", path, rootCause(err))
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
		if !poll(ctx, &d) {
			return ctx.Err()
		}
	}
}

// followEnd opens a reader at the committed end of the response log (or queue directory).
func followEnd(path string) (shmio.FrameIterator, func(), error) {
	s, err := shmio.OpenStore(path, shmio.StoreOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	it, err := s.OpenReader(shmio.IteratorOptions{})
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	closeAll := func() { it.Close(); s.Close() }
	if _, err := it.Seek(0, io.SeekEnd); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	return it, closeAll, nil
}

// writePrompt appends one frame to the prompt log (or queue). On a log it is a shared writer, so
// concurrent prompts append side by side; a queue's writer lock is held only for that frame.
// While the lock is held the other way (an exclusive writer), it retries until ctx ends.
func writePrompt(ctx context.Context, path string, frame []byte) error {
	s, err := shmio.OpenStore(path, shmio.StoreOptions{Writable: true})
	if err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	defer s.Close()
	var d time.Duration
	for {
		w, err := openSharedWriter(s)
		if errors.Is(err, shmio.ErrLocked) {
			if !poll(ctx, &d) {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			return writerError(path, err)
		}
		defer w.Close()
		if err := w.Append(frame); err != nil {
			return fmt.Errorf("%s: write prompt: %s", path, rootCause(err))
		}
		if err := w.Commit(); err != nil {
			return fmt.Errorf("%s: write prompt: %s", path, rootCause(err))
		}
		return nil
	}
}

// awaitOutcome follows the response log until the outcome for id arrives. With w set, the
// streamed deltas of the prompt are printed to w as they come (streamed reports whether the
// outcome's text was printed that way); a retried stream starts over on a new line.
func awaitOutcome(ctx context.Context, it shmio.FrameIterator, id string, w io.Writer) (o agent.Outcome, streamed bool, err error) {
	attempt := 0
	for {
		f, err := it.Next()
		if err != nil {
			return agent.Outcome{}, false, fmt.Errorf("read outcomes: %s", rootCause(err))
		}
		if f == nil {
			if err := it.Wait(ctx); err != nil {
				return agent.Outcome{}, false, err
			}
			continue
		}
		o, err := agent.ParseOutcome(f)
		if err != nil || !o.Matches(id) {
			continue
		}
		if o.IsFinal() {
			return o, streamed && attempt == o.Attempts, nil
		}
		if w == nil {
			continue
		}
		if o.Attempts != attempt {
			if streamed {
				fmt.Fprintln(w)
			}
			attempt, streamed = o.Attempts, true
		}
		fmt.Fprint(w, o.Text)
	}
}
