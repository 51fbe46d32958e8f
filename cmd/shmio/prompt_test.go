package main

import (
	"strings"
	"testing"
	"time"
)

func TestPromptCmdMissingLogs(t *testing.T) {
	p := newAgentPaths(t)
	r := runShmio(t, p.promptArgs("hello"))
	if r.code != 2 || !strings.Contains(r.stderr, "no response log") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	p.out = createLog(t, "64KiB")
	r = runShmio(t, p.promptArgs("hello"))
	if r.code != 2 || !strings.Contains(r.stderr, "no prompt log") {
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
