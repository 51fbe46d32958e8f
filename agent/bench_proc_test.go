package agent

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/internal/testproc"
)

// envFakeAPIChild makes the test binary serve the fake API on loopback and, at SIGTERM, write the
// commit-to-arrival latency of every request ("<prompt index> <ns>" lines) to the named file.
const envFakeAPIChild = "SHMIO_AGENT_TEST_FAKEAPI"

func fakeAPIChild(out string) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	var mu sync.Mutex
	var lines []string
	api := newFakeAPI(testKey)
	api.OnRequest = func(prompt string, at time.Time) {
		ts, rest, _ := strings.Cut(strings.TrimPrefix(prompt, "t="), " #")
		ns, _ := strconv.ParseInt(ts, 10, 64)
		mu.Lock()
		lines = append(lines, fmt.Sprintf("%s %d", rest, at.Sub(time.Unix(0, ns)).Nanoseconds()))
		mu.Unlock()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api}
	go srv.Serve(ln)
	fmt.Printf("http://%s\n", ln.Addr())
	<-sig
	srv.Close()
	mu.Lock()
	defer mu.Unlock()
	return os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// BenchmarkAgentDispatchLatencyProcesses measures the time from a prompt's commit to its request
// reaching the API with the producer (this process), the agent and the fake API each in its own
// process: 1,000 prompts/s for 3 s after 200 warm-up prompts, MaxInFlight 16, the real SDK client
// over loopback TCP. Run with -benchtime=1x (a quiet machine matters).
func BenchmarkAgentDispatchLatencyProcesses(b *testing.B) {
	for range b.N {
		dispatchLatencyProcesses(b)
	}
}

func dispatchLatencyProcesses(b *testing.B) {
	dir := shmDir(b)
	in, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "prompts"), Capacity: 16 << 20, Writable: true})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := shmio.Open(shmio.Options{Path: filepath.Join(dir, "outcomes"), Capacity: 16 << 20, Writable: true})
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	latFile := filepath.Join(dir, "latencies")

	child := func(role string, env ...string) (*exec.Cmd, *bufio.Reader) {
		cmd := testproc.Command(role)
		cmd.Env = append(cmd.Env, env...)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, bufio.NewReader(stdout)
	}
	api, apiOut := child("fakeapi", envFakeAPIChild+"="+latFile)
	url, err := apiOut.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	agentCmd, agentOut := child("agent", envCrashChild+"="+dir, envCrashURL+"="+strings.TrimSpace(url), envCrashID+"=bench")
	if line, _ := agentOut.ReadString('\n'); line != "ready\n" {
		b.Fatalf("agent child said %q", line)
	}
	time.Sleep(200 * time.Millisecond) // let the agent open its logs and start following

	prod, err := in.Writer()
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	const warm, n = 200, 3000
	start := time.Now()
	for i := range warm + n {
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		if err := prod.Append(fmt.Appendf(nil, `{"prompt":"t=%d #%d"}`, time.Now().UnixNano(), i)); err != nil {
			b.Fatal(err)
		}
		if err := prod.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(warm+n) / time.Since(start).Seconds()
	waitRecords(b, out, warm+n, 30*time.Second)
	agentCmd.Process.Signal(syscall.SIGTERM)
	agentCmd.Wait()
	api.Process.Signal(syscall.SIGTERM)
	api.Wait()
	data, err := os.ReadFile(latFile)
	if err != nil {
		b.Fatal(err)
	}
	var got []time.Duration
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		idx, ns, _ := strings.Cut(line, " ")
		i, _ := strconv.Atoi(idx)
		d, _ := strconv.ParseInt(ns, 10, 64)
		if i >= warm {
			got = append(got, time.Duration(d))
		}
	}
	if len(got) < n {
		b.Fatalf("%d requests measured, want %d", len(got), n)
	}
	slices.Sort(got)
	b.ReportMetric(float64(percentile(got, 0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(got, 0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(got[len(got)-1].Microseconds()), "max-µs")
	b.ReportMetric(rate, "prompts/s")
}
