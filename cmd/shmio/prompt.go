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
}

func newPromptCmd() *cobra.Command {
	var o promptOptions
	cmd := &cobra.Command{
		Use:   `prompt --in PATH --out PATH "TEXT"`,
		Short: "Write one prompt for the agent and wait for its outcome",
		Long: `Write one prompt frame into the prompt log that "shmio agent" follows, wait for the agent's
outcome record in the response log, and print the answer (or, with --json, the whole record).
TEXT "-" reads the prompt from standard input.

Exit status: 0 when the prompt was answered; 1 when it failed, expired or was rejected, or no
outcome arrived within --timeout (the reason is printed on stderr); 2 for other errors.

Writing takes the prompt log's writer lock for a moment, so it fails while another process
keeps that log open for writing.`,
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
	frame, err := agent.EncodePrompt(p)
	if err != nil {
		return err
	}

	// Follow the response log from its current end before writing, so the outcome cannot be missed.
	if _, err := os.Stat(o.out); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no response log (start \"shmio agent --out %s ...\" first)", o.out, o.out)
	}
	it, closeOut, err := followEnd(o.out)
	if err != nil {
		return err
	}
	defer closeOut()

	if err := writePrompt(o.in, frame); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	oc, err := awaitOutcome(ctx, it, p.ID)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &exitError{1, fmt.Errorf("no outcome for prompt %s within %v (is \"shmio agent\" running on %s?)", p.ID, o.timeout, o.in)}
		}
		return err
	}
	w := cmd.OutOrStdout()
	if o.asJSON {
		b, _ := json.Marshal(oc)
		fmt.Fprintf(w, "%s\n", b)
	} else if oc.Status == agent.StatusAnswered || oc.Status == agent.StatusRefused && oc.Text != "" {
		fmt.Fprint(w, oc.Text)
		if !strings.HasSuffix(oc.Text, "\n") {
			fmt.Fprintln(w)
		}
	}
	if oc.Status == agent.StatusRefused {
		return &exitError{1, fmt.Errorf("prompt %s refused by the model (stop_reason refusal)", p.ID)}
	}
	if oc.Status != agent.StatusAnswered {
		return &exitError{1, fmt.Errorf("prompt %s %s: %s", p.ID, oc.Status, oc.Error)}
	}
	return nil
}

// outcomeReader is what awaitOutcome needs of a log or queue iterator.
type outcomeReader interface {
	Next() ([]byte, error)
	Wait(ctx context.Context) error
}

// followEnd opens an iterator at the committed end of the response log (or queue directory).
func followEnd(path string) (outcomeReader, func(), error) {
	var it interface {
		outcomeReader
		Seek(int64, int) (int64, error)
		Close() error
	}
	var closeSrc func() error
	if isDir(path) {
		q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: path})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
		}
		qi, err := q.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			q.Close()
			return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
		}
		it, closeSrc = qi, q.Close
	} else {
		l, err := openLog(path, false, false)
		if err != nil {
			return nil, nil, err
		}
		li, err := l.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			l.Close()
			return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
		}
		it, closeSrc = li, l.Close
	}
	closeAll := func() { it.Close(); closeSrc() }
	if _, err := it.Seek(0, io.SeekEnd); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	return it, closeAll, nil
}

// writePrompt appends one frame to the prompt log (or queue), holding its writer lock only for that.
func writePrompt(path string, frame []byte) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no prompt log (start \"shmio agent --in %s ...\" first)", path, path)
	}
	var w shmio.FrameWriter
	if isDir(path) {
		q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: path, Writable: true})
		if err != nil {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
		defer q.Close()
		qw, err := q.Writer()
		if err != nil {
			return writerError(path, err)
		}
		w = qw
	} else {
		l, err := openLog(path, true, false)
		if err != nil {
			return err
		}
		defer l.Close()
		lw, err := l.Writer()
		if err != nil {
			return writerError(path, err)
		}
		w = lw
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

// awaitOutcome follows the response log until the outcome for id arrives.
func awaitOutcome(ctx context.Context, it outcomeReader, id string) (agent.Outcome, error) {
	for {
		f, err := it.Next()
		if err != nil {
			return agent.Outcome{}, fmt.Errorf("read outcomes: %s", rootCause(err))
		}
		if f == nil {
			if err := it.Wait(ctx); err != nil {
				return agent.Outcome{}, err
			}
			continue
		}
		o, err := agent.ParseOutcome(f)
		if err == nil && o.Matches(id) {
			return o, nil
		}
	}
}
