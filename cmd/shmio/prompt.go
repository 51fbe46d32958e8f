package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

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
	out := cmd.OutOrStdout()
	ao := agent.AskOptions{In: o.in, Out: o.out, Prompt: p}
	if o.stream && !o.asJSON {
		ao.Delta = func(text string, restart bool) {
			if restart {
				fmt.Fprintln(out)
			}
			fmt.Fprint(out, text)
		}
	}
	oc, err := agent.Ask(ctx, ao)
	if ae := (*agent.AskError)(nil); errors.As(err, &ae) {
		err = askError(ae, o, oc.ID)
	}
	if err != nil {
		return err
	}
	streamed := oc.Streamed
	switch {
	case o.asJSON:
		b, _ := json.Marshal(oc.Outcome)
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
		return &exitError{1, fmt.Errorf("prompt %s refused by the model (stop_reason refusal)", oc.ID)}
	}
	if oc.Status != agent.StatusAnswered {
		return &exitError{1, fmt.Errorf("prompt %s %s: %s", oc.ID, oc.Status, oc.Error)}
	}
	return nil
}

// askError says what Ask waited for in the command's terms: running out of --timeout exits 1.
func askError(e *agent.AskError, o promptOptions, id string) error {
	if !errors.Is(e.Err, context.DeadlineExceeded) {
		if e.Stage == agent.AskWriter {
			return writerError(e.Path, e.Err)
		}
		return fmt.Errorf("%s: %s", e.Path, rootCause(e.Err))
	}
	var what string
	switch {
	case e.Stage == agent.AskLogs && e.Path == o.out:
		what = fmt.Sprintf("%s: no response log (is \"shmio agent --out %s ...\" running?)", o.out, o.out)
	case e.Stage == agent.AskLogs:
		what = fmt.Sprintf("%s: no prompt log (is \"shmio agent --in %s ...\" running?)", o.in, o.in)
	case e.Stage == agent.AskWriter:
		what = fmt.Sprintf("%s: another process held the writer lock", o.in)
	default:
		what = fmt.Sprintf("no outcome for prompt %s (is \"shmio agent\" running on %s?)", id, o.in)
	}
	return &exitError{1, fmt.Errorf("%s within %v", what, o.timeout)}
}
