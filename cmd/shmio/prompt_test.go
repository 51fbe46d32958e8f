package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

func TestPromptCmdMissingLogs(t *testing.T) {
	p := newAgentPaths(t)
	r := runShmio(t, p.promptArgs("--timeout", "300ms", "hello"))
	if r.code != 1 || !strings.Contains(r.stderr, "no response log") || !strings.Contains(r.stderr, "within 300ms") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	p.out = createLog(t, "64KiB")
	r = runShmio(t, p.promptArgs("--timeout", "300ms", "hello"))
	if r.code != 1 || !strings.Contains(r.stderr, "no prompt log") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	for _, args := range [][]string{p.promptArgs(" "), p.promptArgs("--metadata", "[1]", "x"), p.promptArgs("--timeout", "0s", "x")} {
		if r := runShmio(t, args); r.code != 2 {
			t.Errorf("%v: exit %d stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestPromptCmdTimeout(t *testing.T) {
	p := agentPaths{in: createLog(t, "64KiB"), out: createLog(t, "64KiB")}
	r := runShmio(t, []string{"prompt", "--in", p.in, "--out", p.out, "--timeout", "200ms", "anyone there?"})
	if r.code != 1 || !strings.Contains(r.stderr, "no outcome for prompt") || !strings.Contains(r.stderr, "within 200ms") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

// TestPromptCmdExpired writes a prompt with a short TTL while no agent runs: the agent started
// later does not send it, and shmio prompt reports the expired outcome.
func TestPromptCmdExpired(t *testing.T) {
	p := newAgentPaths(t)
	pr := startAgent(t, p, nil, "--client", "echo")
	stopAgent(t, pr) // leaves both logs and the checkpoint behind
	waiting := startShmio(t, p.promptArgs("--ttl", "50ms", "--id", "late", "too late"))
	waitFor(t, 10*time.Second, "the prompt to be written", func() bool { return statJSON(t, p.in).Frames == 1 })
	time.Sleep(100 * time.Millisecond)
	pr = startAgent(t, p, nil, "--client", "echo")
	if code := waiting.wait(t, 30*time.Second); code != 1 || !strings.Contains(waiting.stderr.String(), "prompt late expired") {
		t.Fatalf("exit %d stderr %q", code, waiting.stderr.String())
	}
	stopAgent(t, pr)
}

// TestPromptCmdWaits: shmio prompt started before the agent waits for the logs it creates; while
// another process holds the prompt log's writer lock it waits for it; concurrent prompts all go
// through. --stream prints the answer as it streams.
func TestPromptCmdWaits(t *testing.T) {
	p := newAgentPaths(t)
	early := startShmio(t, p.promptArgs("--timeout", "60s", "before the agent"))
	time.Sleep(200 * time.Millisecond)
	pr := startAgent(t, p, nil, "--client", "echo", "--stream")
	if code := early.wait(t, 60*time.Second); code != 0 || early.stdout.String() != "before the agent\n" {
		t.Fatalf("early prompt: exit %d stdout %q stderr %q", code, early.stdout.String(), early.stderr.String())
	}

	// Hold the prompt log's writer lock in another process (this one) for a while.
	l, err := shmio.Open(shmio.Options{Path: p.in, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	var procs []*proc
	for i := range 10 {
		procs = append(procs, startShmio(t, p.promptArgs("--timeout", "60s", "--stream", fmt.Sprintf("concurrent prompt %d", i))))
	}
	time.Sleep(500 * time.Millisecond)
	w.Close()
	for i, c := range procs {
		if code := c.wait(t, 60*time.Second); code != 0 || c.stdout.String() != fmt.Sprintf("concurrent prompt %d\n", i) {
			t.Errorf("prompt %d: exit %d stdout %q stderr %q", i, code, c.stdout.String(), c.stderr.String())
		}
	}
	stopAgent(t, pr)
	deltas := 0
	for _, o := range outcomeRecords(t, p.out) {
		if !o.IsFinal() {
			deltas++
		}
	}
	if deltas < 11*3 {
		t.Fatalf("%d delta records, want the streamed words of 11 answers", deltas)
	}
}
