package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/agent"
	"github.com/shmio/shmio/agent/fakeapi"
)

// agentPaths are the files of one agent setup in a fresh directory (the logs do not exist yet).
type agentPaths struct{ in, out, cp string }

func newAgentPaths(t testing.TB) agentPaths {
	d := t.TempDir()
	return agentPaths{filepath.Join(d, "prompts"), filepath.Join(d, "answers"), filepath.Join(d, "agent.cp")}
}

func (p agentPaths) agentArgs(extra ...string) []string {
	return append([]string{"agent", "--in", p.in, "--out", p.out, "--checkpoint", p.cp, "--capacity", "1MiB"}, extra...)
}

func (p agentPaths) promptArgs(extra ...string) []string {
	return append([]string{"prompt", "--in", p.in, "--out", p.out, "--timeout", "30s"}, extra...)
}

// startAgent starts "shmio agent" and waits until it follows the prompt log.
func startAgent(t testing.TB, p agentPaths, env []string, extra ...string) *proc {
	t.Helper()
	pr := startShmio(t, p.agentArgs(extra...), func(c *exec.Cmd) { c.Env = append(c.Env, env...) })
	waitFor(t, 30*time.Second, "the agent to start", func() bool { return strings.Contains(pr.stderr.String(), "agent started") })
	return pr
}

// stopAgent sends SIGTERM and expects a clean exit.
func stopAgent(t testing.TB, pr *proc) {
	t.Helper()
	pr.signal(t, syscall.SIGTERM)
	if code := pr.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("agent exit %d; stderr: %s", code, pr.stderr.String())
	}
}

// outcomeRecords decodes every record of a response log.
func outcomeRecords(t testing.TB, path string) []agent.Outcome {
	t.Helper()
	var out []agent.Outcome
	for _, f := range logFrames(t, path) {
		o, err := agent.ParseOutcome(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

func metricsURL(t testing.TB, pr *proc) string {
	t.Helper()
	m := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(pr.stderr.String())
	if m == nil {
		t.Fatalf("no metrics URL in %q", pr.stderr.String())
	}
	return m[1]
}

func scrape(t testing.TB, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func TestAgentCmdEchoWalkthrough(t *testing.T) {
	p := newAgentPaths(t)
	pr := startAgent(t, p, nil, "--client", "echo", "--metrics-addr", "127.0.0.1:0")
	for _, f := range []string{p.in, p.out, p.cp} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s not created: %v", f, err)
		}
	}
	wantLines(t, mustRun(t, p.promptArgs("Name three prime numbers.")), "Name three prime numbers.")
	out := mustRun(t, p.promptArgs("--json", "--id", "q2", "--system", "terse", "--metadata", `{"user_id":"u1"}`, "-"), withStdin("from stdin\n"))
	var o agent.Outcome
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	if o.ID != "q2" || o.Status != agent.StatusAnswered || o.Text != "from stdin" || o.Model != "echo" || o.Attempts != 1 ||
		string(o.Metadata) != `{"user_id":"u1"}` || o.Cursor <= 0 {
		t.Fatalf("outcome %+v", o)
	}
	appendLines(t, p.in, `{"id":"r","prompt":"x","temprature":1}`) // not a valid prompt: a rejected outcome, not a crash
	waitFor(t, 10*time.Second, "the rejected outcome", func() bool { return len(outcomeRecords(t, p.out)) == 3 })
	recs := outcomeRecords(t, p.out)
	if recs[2].Status != agent.StatusRejected || !strings.Contains(recs[2].Error, `unknown field "temprature"`) || recs[2].ID != "r" {
		t.Fatalf("third record %+v", recs[2])
	}

	// Counters follow the commit that readers see; give them a moment.
	wants := []string{
		`shmio_agent_prompts_total{outcome="answered"} 2`,
		`shmio_agent_prompts_total{outcome="rejected"} 1`,
		`shmio_agent_outcome_records_total 3`,
		`shmio_agent_in_flight 0`,
		`shmio_agent_lag_bytes 0`,
		`shmio_agent_api_latency_seconds_count{result="ok"} 2`,
		`shmio_agent_e2e_latency_seconds_count{outcome="answered"} 2`,
		`shmio_agent_tokens_total{direction="input"}`,
	}
	url := metricsURL(t, pr)
	var metrics string
	deadline := time.Now().Add(10 * time.Second)
	for {
		metrics = scrape(t, url)
		missing := 0
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, want := range wants {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopAgent(t, pr)
	if !strings.Contains(pr.stderr.String(), "answered=2") || !strings.Contains(pr.stderr.String(), "rejected=1") {
		t.Fatalf("summary missing: %s", pr.stderr.String())
	}
	cp, err := agent.ReadCheckpoint(p.cp)
	if err != nil {
		t.Fatal(err)
	}
	if end := statJSON(t, p.in).Committed; cp.Cursor != end {
		t.Fatalf("checkpoint %+v, want cursor %d", cp, end)
	}

	// A restart resumes at the checkpoint: nothing is answered twice.
	pr = startAgent(t, p, nil, "--client", "echo")
	wantLines(t, mustRun(t, p.promptArgs("again")), "again")
	stopAgent(t, pr)
	if n := len(outcomeRecords(t, p.out)); n != 4 {
		t.Fatalf("%d outcome records after the restart, want 4", n)
	}
}

func TestAgentCmdAnthropic(t *testing.T) {
	api := fakeapi.New("sk-test")
	srv := httptest.NewServer(api)
	defer srv.Close()
	p := newAgentPaths(t)
	pr := startAgent(t, p, []string{"ANTHROPIC_API_KEY=sk-test", "ANTHROPIC_BASE_URL=" + srv.URL}, "--model", "claude-test", "--max-attempts", "2")
	wantLines(t, mustRun(t, p.promptArgs("hi there")), "answer: hi there")
	r := runShmio(t, p.promptArgs("!400 bad prompt"))
	if r.code != 1 || !strings.Contains(r.stderr, "failed") || !strings.Contains(r.stderr, "prompt is too long") || r.stdout != "" {
		t.Fatalf("failed prompt: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runShmio(t, p.promptArgs("!refusal say it")); r.code != 1 || !strings.Contains(r.stderr, "refused by the model") {
		t.Fatalf("refusal: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	stopAgent(t, pr)
	if strings.Contains(pr.stderr.String(), "sk-test") {
		t.Fatal("the API key appears in the agent's output")
	}
	if reqs := api.Requests(); len(reqs) != 3 || reqs[0].Model != "claude-test" {
		t.Fatalf("requests %+v (a 400 must not be retried)", reqs)
	}
	recs := outcomeRecords(t, p.out)
	if len(recs) != 3 || recs[1].Status != agent.StatusFailed || recs[1].HTTPStatus != 400 || recs[1].Attempts != 1 ||
		recs[2].Status != agent.StatusRefused || recs[0].RequestID == "" || recs[0].MessageID == "" {
		t.Fatalf("records %+v", recs)
	}
}

// TestAgentCmdFatal: with a wrong key the agent answers nothing, says why on stderr and in
// /metrics, and exits non-zero (at once, or when stopped with --on-fatal pause); restarted with
// the right key it answers the prompt that waited.
func TestAgentCmdFatal(t *testing.T) {
	api := fakeapi.New("sk-test")
	srv := httptest.NewServer(api)
	defer srv.Close()
	p := newAgentPaths(t)
	wrong := []string{"ANTHROPIC_API_KEY=sk-wrong", "ANTHROPIC_BASE_URL=" + srv.URL}
	pr := startAgent(t, p, wrong, "--model", "claude-test", "--on-fatal", "pause", "--metrics-addr", "127.0.0.1:0")
	if r := runShmio(t, p.promptArgs("waits for the key", "--timeout", "2s")); r.code != 1 || !strings.Contains(r.stderr, "no outcome") {
		t.Fatalf("prompt under a wrong key: exit %d stderr %q", r.code, r.stderr)
	}
	if m := scrape(t, metricsURL(t, pr)); !strings.Contains(m, `shmio_agent_fatal{reason="authentication_error"} 1`) {
		t.Fatalf("metrics do not show the fatal error:\n%s", m)
	}
	pr.signal(t, syscall.SIGTERM)
	if code := pr.wait(t, 30*time.Second); code != 3 || !strings.Contains(pr.stderr.String(), "authentication_error") ||
		strings.Contains(pr.stderr.String(), "sk-wrong") {
		t.Fatalf("paused agent: exit %d stderr %s", code, pr.stderr.String())
	}
	// Without --on-fatal pause, the agent exits by itself.
	pr = startShmio(t, p.agentArgs("--model", "claude-test"), func(c *exec.Cmd) { c.Env = append(c.Env, wrong...) })
	if code := pr.wait(t, 30*time.Second); code != 3 || !strings.Contains(pr.stderr.String(), "fatal API error") {
		t.Fatalf("agent under a wrong key: exit %d stderr %s", code, pr.stderr.String())
	}
	if n := len(outcomeRecords(t, p.out)); n != 0 {
		t.Fatalf("%d outcome records under a wrong key", n)
	}
	pr = startAgent(t, p, []string{"ANTHROPIC_API_KEY=sk-test", "ANTHROPIC_BASE_URL=" + srv.URL}, "--model", "claude-test")
	wantLines(t, mustRun(t, p.promptArgs("second")), "answer: second")
	stopAgent(t, pr)
	recs := outcomeRecords(t, p.out)
	if len(recs) != 2 || recs[0].Text != "answer: waits for the key" || recs[0].Status != agent.StatusAnswered {
		t.Fatalf("records %+v", recs)
	}
}

func TestAgentCmdErrors(t *testing.T) {
	p := newAgentPaths(t)
	r := runShmio(t, p.agentArgs(), func(c *exec.Cmd) { c.Env = append(c.Env, "ANTHROPIC_API_KEY=") })
	if r.code != 2 || !strings.Contains(r.stderr, "ANTHROPIC_API_KEY") || !strings.Contains(r.stderr, "--client echo") {
		t.Fatalf("missing key: exit %d stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(p.in); err == nil {
		t.Fatal("logs were created before the configuration was checked")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{p.agentArgs("--client", "bogus"), `--client must be "anthropic" or "echo"`},
		{p.agentArgs("--client", "echo", "--max-in-flight", "0"), "at least 1"},
		{p.agentArgs("--client", "echo", "--from", "middle"), `--from must be "start" or "end"`},
		{[]string{"agent", "--in", p.in, "--client", "echo"}, `required flag(s) "checkpoint", "out" not set`},
	} {
		if r := runShmio(t, tc.args); r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	// The response log has one writer: a second agent on it is refused.
	pr := startAgent(t, p, nil, "--client", "echo")
	r = runShmio(t, newAgentPathsSharingOut(t, p).agentArgs("--client", "echo"))
	if r.code != 2 || !strings.Contains(r.stderr, "another process is writing to it") {
		t.Fatalf("second agent: exit %d stderr %q", r.code, r.stderr)
	}
	stopAgent(t, pr)
}

func newAgentPathsSharingOut(t testing.TB, p agentPaths) agentPaths {
	q := newAgentPaths(t)
	q.out = p.out
	return q
}

func TestAgentCmdQueues(t *testing.T) {
	d := t.TempDir()
	p := agentPaths{filepath.Join(d, "qin"), filepath.Join(d, "qout"), filepath.Join(d, "cp")}
	for _, dir := range []string{p.in, p.out} {
		q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: dir, SegmentSize: 64 << 10, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		q.Close()
	}
	pr := startAgent(t, p, nil, "--client", "echo")
	wantLines(t, mustRun(t, p.promptArgs("through queues")), "through queues")
	stopAgent(t, pr)
}

// TestAgentCmdStreamAndBatch: --stream through the SDK streams into the response log and
// "shmio prompt --stream" prints it; --batch-api answers through a message batch and leaves no
// batch state behind after a clean stop.
func TestAgentCmdStreamAndBatch(t *testing.T) {
	api := fakeapi.New("sk-test")
	srv := httptest.NewServer(api)
	defer srv.Close()
	env := []string{"ANTHROPIC_API_KEY=sk-test", "ANTHROPIC_BASE_URL=" + srv.URL}
	p := newAgentPaths(t)
	pr := startAgent(t, p, env, "--model", "claude-test", "--stream", "--metrics-addr", "127.0.0.1:0")
	wantLines(t, mustRun(t, p.promptArgs("--stream", "streamed words")), "answer: streamed words")
	if m := scrape(t, metricsURL(t, pr)); !strings.Contains(m, "shmio_agent_ttft_seconds_count 1") {
		t.Fatalf("no ttft in the metrics:\n%s", m)
	}
	stopAgent(t, pr)

	pr = startAgent(t, p, env, "--model", "claude-test", "--batch-api", "--batch-age", "100ms", "--batch-poll", "50ms")
	wantLines(t, mustRun(t, p.promptArgs("batched")), "answer: batched")
	stopAgent(t, pr)
	recs := outcomeRecords(t, p.out)
	last := recs[len(recs)-1]
	if last.Status != agent.StatusAnswered || !strings.HasPrefix(last.BatchID, "msgbatch_") {
		t.Fatalf("batch outcome %+v", last)
	}
	if _, err := os.Stat(agent.BatchStatePath(p.cp)); !os.IsNotExist(err) {
		t.Fatalf("batch state left behind: %v", err)
	}
	deltas := 0
	for _, r := range recs {
		if !r.IsFinal() {
			deltas++
		}
	}
	if deltas < 3 {
		t.Fatalf("%d delta records", deltas)
	}
}
