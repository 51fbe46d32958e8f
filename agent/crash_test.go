package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/shmio/shmio"
	"github.com/shmio/shmio/internal/testproc"
)

// Environment of the re-executed test binary when it plays the agent process.
// The child runs through the shared harness, internal/testproc, in role "agent".
const (
	envCrashChild = testproc.EnvPrefix + "DIR"  // directory holding the logs and the checkpoint
	envCrashURL   = testproc.EnvPrefix + "URL"  // the fake API
	envCrashID    = testproc.EnvPrefix + "ID"   // child number, sent as a header so the fake knows who asked
	envCrashMode  = testproc.EnvPrefix + "MODE" // "", "stream" or "batch"
)

func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func() error{
		"agent":   func() error { return crashChild(os.Getenv(envCrashChild)) },
		"fakeapi": func() error { return fakeAPIChild(os.Getenv(envFakeAPIChild)) },
	})
}

// crashChild runs the agent as the command would, until SIGTERM (or SIGKILL).
func crashChild(dir string) error {
	// Handle SIGTERM before anything else, then tell the parent it may send it.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Println("ready")
	in, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "prompts")})
	if err != nil {
		return err
	}
	out, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "outcomes"), Writable: true})
	if err != nil {
		return err
	}
	w, err := out.Writer()
	if err != nil {
		return err
	}
	inIt, err := in.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return err
	}
	outIt, err := out.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return err
	}
	client, err := NewAnthropicClient(AnthropicConfig{APIKey: testKey, BaseURL: os.Getenv(envCrashURL),
		Options: []option.RequestOption{option.WithHeader("X-Child", os.Getenv(envCrashID))}})
	if err != nil {
		return err
	}
	mode := os.Getenv(envCrashMode)
	a, err := New(Config{Input: inIt, Output: w, Outcomes: outIt, Client: client, MaxInFlight: 16, Model: "claude-test",
		CheckpointPath: filepath.Join(dir, "checkpoint"), CheckpointInterval: 20 * time.Millisecond,
		InputID: strconv.FormatUint(in.Header().ID, 10), MaxRecordBytes: out.MaxPayload(), DrainTimeout: 5 * time.Second,
		Stream: mode == "stream", Batch: mode == "batch", BatchSize: crashBatchSize, BatchAge: 50 * time.Millisecond,
		BatchPoll: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

const crashBatchSize = 50

// TestAgentCrashRestart kills the agent process with SIGKILL at random moments while 2,000
// prompts flow, restarts it each time, and checks that every prompt ends with an outcome record,
// that only prompts in flight at a kill were sent twice, and that the checkpoint never passed a
// prompt without an outcome.
func TestAgentCrashRestart(t *testing.T) { crashRestart(t, "") }

// TestAgentCrashRestartStream is TestAgentCrashRestart with streaming: delta records of answers
// cut by a kill may stay in the log, but every prompt has its one outcome.
func TestAgentCrashRestartStream(t *testing.T) { crashRestart(t, "stream") }

// TestAgentCrashRestartBatch is TestAgentCrashRestart with the Message Batches API: kills land
// while batches are in flight; the restarted agent resumes polling them rather than submitting
// their prompts again, and no prompt is answered twice in the log.
func TestAgentCrashRestartBatch(t *testing.T) { crashRestart(t, "batch") }

func crashRestart(t *testing.T, mode string) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := shmDir(t)
	in, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "prompts"), Capacity: 1 << 20, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "outcomes"), Capacity: 4 << 20, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	api := newFakeAPI(testKey)
	api.Delay = func(string) time.Duration { return time.Duration(rand.IntN(15)+1) * time.Millisecond }
	api.BatchDelay = 100 * time.Millisecond
	srv := httptest.NewServer(api)
	defer srv.Close()

	// The producer writes 2,000 prompts at about 1,000 a second.
	const total = 2000
	prod, err := in.Writer()
	if err != nil {
		t.Fatal(err)
	}
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := range total {
			prod.Append(fmt.Appendf(nil, `{"id":"p%d","prompt":"prompt %d"}`, i, i))
			prod.Commit()
			if i%4 == 3 {
				time.Sleep(4 * time.Millisecond)
			}
		}
	}()
	defer prod.Close()

	cpPath := filepath.Join(dir, "checkpoint")
	var ready chan struct{} // closed when the current child handles SIGTERM
	start := func(id int) *exec.Cmd {
		cmd := testproc.Command("agent")
		cmd.Env = append(cmd.Env, envCrashChild+"="+dir, envCrashURL+"="+srv.URL, envCrashID+"="+strconv.Itoa(id), envCrashMode+"="+mode)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := make(chan struct{})
		ready = r
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if line == "ready\n" {
				close(r)
			}
			io.Copy(io.Discard, stdout)
		}()
		return cmd
	}
	// Both logs are followed incrementally: re-reading everything each time would slow the test.
	promptIt, err := in.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer promptIt.Close()
	prompts := map[int64]string{}
	promptCursors := func() map[int64]string {
		for {
			c := promptIt.Cursor()
			f, err := promptIt.Next()
			if err != nil {
				t.Fatal(err)
			}
			if f == nil {
				return prompts
			}
			var p Prompt
			json.Unmarshal(f, &p)
			prompts[c] = p.Prompt
		}
	}
	outIt, err := out.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer outIt.Close()
	counts := map[int64]int{}
	outcomes := func() map[int64]int {
		for {
			r, err := outIt.Next()
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				return counts
			}
			o, err := ParseOutcome(r)
			if err != nil {
				t.Fatalf("outcome record %q: %v", r, err)
			}
			if o.IsFinal() {
				counts[o.Cursor]++
			}
		}
	}

	kills := 0
	const maxKills = 12
	afterKill := map[string]map[int64]int{} // child id -> outcome counts once it was dead
	deadline := time.Now().Add(60 * time.Second)
	for id := 0; ; id++ {
		cmd := start(id)
		producing := true
		select {
		case <-prodDone:
			producing = false
		default:
		}
		if kills >= maxKills || (!producing && len(outcomes()) == total) {
			// Let this one finish, then stop it gracefully (SIGTERM: drain, checkpoint, exit 0).
			for len(outcomes()) < total {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("not done after 60s: %d of %d prompts have outcomes", len(outcomes()), total)
				}
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case <-ready:
			case <-time.After(30 * time.Second):
				t.Fatal("the last child never became ready")
			}
			// Every prompt has an outcome, but some may come from children killed before their
			// checkpoint moved: let this child catch up (it skips those) before stopping it,
			// or its final checkpoint rightly stops short of the end.
			end := in.Header().Size - in.Header().DataOffset
			for {
				if cp, err := ReadCheckpoint(cpPath); err == nil && cp.Cursor == end {
					break
				}
				if time.Now().After(deadline) {
					break // the assertion below reports it
				}
				time.Sleep(20 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("graceful stop: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("not done after 60s: %d of %d prompts have outcomes", len(outcomes()), total)
		}
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		kills++

		// The checkpoint never passes a prompt without an outcome.
		cp, err := ReadCheckpoint(cpPath)
		if err != nil && !isNotExist(err) {
			t.Fatalf("after kill %d: %v", kills, err)
		}
		have := outcomes()
		for c := range promptCursors() {
			if c < cp.Cursor && have[c] == 0 {
				t.Fatalf("after kill %d: checkpoint %d passes prompt %d, which has no outcome", kills, cp.Cursor, c)
			}
		}
		snap := make(map[int64]int, len(have))
		for c, n := range have {
			snap[c] = n
		}
		afterKill[strconv.Itoa(id)] = snap
	}

	// In flight at a kill: sent by a killed child that wrote no outcome for it before dying.
	promptCursors()
	byPrompt := map[string]int64{}
	for c, p := range prompts {
		byPrompt[p] = c
	}
	inFlightAtKill := map[string]bool{}
	perChild := map[string]map[string]bool{}
	for _, r := range api.Requests() {
		if snap, killed := afterKill[r.Child]; killed && snap[byPrompt[r.Prompt]] == 0 {
			inFlightAtKill[r.Prompt] = true
			if perChild[r.Child] == nil {
				perChild[r.Child] = map[string]bool{}
			}
			perChild[r.Child][r.Prompt] = true
		}
	}
	// At most MaxPending prompts (2*16 + 64, or 2*BatchSize + 64) are read and not yet covered by
	// a committed outcome; with batches, those of batches resumed from earlier children too.
	maxPending := 96
	if mode == "batch" {
		maxPending = 3 * (2*crashBatchSize + 64)
	}
	for child, ps := range perChild {
		if len(ps) > maxPending {
			t.Errorf("child %s had %d prompts in flight, more than %d", child, len(ps), maxPending)
		}
	}
	have := outcomes()
	dupRecords, resent := 0, 0
	for c, p := range prompts {
		switch n := have[c]; {
		case n == 0:
			t.Errorf("prompt %q at %d has no outcome", p, c)
		case n > 1:
			dupRecords++
			if !inFlightAtKill[p] {
				t.Errorf("prompt %q has %d outcomes but was not in flight at a kill", p, n)
			}
		}
		if api.Attempts(p) > 1 {
			resent++
			if !inFlightAtKill[p] {
				t.Errorf("prompt %q was sent %d times but was not in flight at a kill", p, api.Attempts(p))
			}
		}
	}
	if len(prompts) != total {
		t.Fatalf("%d prompts in the log", len(prompts))
	}
	cp, err := ReadCheckpoint(cpPath)
	if err != nil || cp.Cursor != in.Header().Size-in.Header().DataOffset {
		t.Fatalf("final checkpoint %+v (%v)", cp, err)
	}
	if kills < 3 {
		t.Fatalf("only %d kills", kills)
	}
	if mode == "batch" {
		if dupRecords != 0 {
			t.Errorf("%d prompts answered twice in the log", dupRecords)
		}
		// Batches in flight at a kill are resumed, not submitted again (a kill between the
		// submission and the state file's update is the rare exception).
		if len(inFlightAtKill) >= 100 && resent*2 > len(inFlightAtKill) {
			t.Errorf("%d of %d prompts in flight at a kill were submitted again", resent, len(inFlightAtKill))
		}
	}
	t.Logf("%d kills; %d prompts in flight at a kill, %d of them sent again; %d duplicate outcome records", kills, len(inFlightAtKill), resent, dupRecords)
}
