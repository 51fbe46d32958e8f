package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain makes the test binary its own benchmark children, as the shmio command's main does.
func TestMain(m *testing.M) {
	if code, ok := ChildMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// noRaceExitSleep drops the race detector's one-second sleep at exit of the children a test starts.
func noRaceExitSleep(t *testing.T) {
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// TestRun runs every transport and latency mode once with small counts through the package API:
// every row verified, progress for every step, the logs in Dir and gone afterwards.
func TestRun(t *testing.T) {
	noRaceExitSleep(t)
	dir := t.TempDir()
	cfg := Config{Sizes: []int{40}, Frames: 3000, Pings: 200, CommitEvery: 100, Fanout: 2, Runs: 1,
		Transports: DefaultTransports, Dir: dir}
	var steps []Step
	rep, err := Run(context.Background(), cfg, func(s Step) { steps = append(steps, s) })
	if err != nil {
		t.Fatal(err)
	}
	const want = 2*5 + 3 // 1 and 2 readers x 5 transports (ceiling included), 3 latency modes
	if len(rep.Results) != want || len(steps) != want || !rep.Verified || rep.LogDir != dir || rep.CommitEvery != 100 {
		t.Fatalf("report %+v, %d steps", rep, len(steps))
	}
	for i, s := range steps {
		if s.N != i+1 || s.Of != want || s.What == "" {
			t.Errorf("step %d: %+v", i, s)
		}
	}
	if steps[0].What != "throughput shmio, 40 B frames, 1 reader(s)" {
		t.Errorf("first step %q", steps[0].What)
	}
	for _, r := range rep.Results {
		if !r.Verified || r.Runs != 1 || r.Size != 40 {
			t.Errorf("%s %s: %+v (%s)", r.Kind, r.Transport, r, r.Failure())
		}
		if r.Kind == "throughput" && (r.Frames != 3000 || len(r.Consumers) != r.Readers || r.FramesPerSec <= 0 ||
			r.VsCeiling <= 0 || r.Transport == "ceiling" && r.VsCeiling != 1) {
			t.Errorf("%s %d readers: %+v", r.Transport, r.Readers, r)
		}
		if r.Kind == "latency" && (r.Frames != 200 || r.Consumers[1].Frames != 200+20 || r.P50 <= 0) {
			t.Errorf("latency %s: %+v", r.Transport, r)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}

// TestRunCanceled: a context that ends stops Run after the current row with ctx's error.
func TestRunCanceled(t *testing.T) {
	noRaceExitSleep(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, Config{Sizes: []int{32}, Frames: 1000, CommitEvery: 10, Fanout: 1, Runs: 1, Transports: []string{"shmio"}, Dir: dir}, nil)
	if !errors.Is(err, context.Canceled) || len(rep.Results) != 1 || rep.Results[0].Verified {
		t.Fatalf("err %v, report %+v", err, rep)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	ok := Config{Sizes: []int{32}, CommitEvery: 1, Fanout: 1, Runs: 1, Transports: []string{"shmio"}, Dir: t.TempDir()}
	for name, c := range map[string]func(*Config){
		"no sizes": func(c *Config) { c.Sizes = nil }, "small size": func(c *Config) { c.Sizes = []int{7} },
		"large size": func(c *Config) { c.Sizes = []int{MaxSize + 1} }, "runs": func(c *Config) { c.Runs = 0 },
		"commit": func(c *Config) { c.CommitEvery = 0 }, "fanout": func(c *Config) { c.Fanout = 0 },
		"transport": func(c *Config) { c.Transports = []string{"carrier-pigeon"} },
	} {
		cfg := ok
		c(&cfg)
		if rep, err := Run(context.Background(), cfg, nil); err == nil || len(rep.Results) != 0 {
			t.Errorf("%s: err %v, %d results", name, err, len(rep.Results))
		}
	}
}

// TestDemo runs a short demo through the package API: the rate is lowered to what fits, every
// reader gets every event, and the log is removed.
func TestDemo(t *testing.T) {
	noRaceExitSleep(t)
	d, err := NewDemo(DemoConfig{Duration: 300 * time.Millisecond, Readers: 2, Capacity: 1 << 20, Rate: 1_000_000, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Capacity != 1<<20 || d.Rate <= 0 || d.Rate >= 1_000_000 {
		t.Errorf("capacity %d rate %v, want the rate lowered to fit 1MiB", d.Capacity, d.Rate)
	}
	res, err := d.Run(context.Background(), func(l DemoLive) {
		if len(l.ReaderRates) != 2 {
			t.Errorf("live %+v, want 2 readers", l)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Problems(); len(p) != 0 || res.Writer.Events == 0 || len(res.Readers) != 2 {
		t.Fatalf("result %+v, problems %q", res, p)
	}
	for i, r := range res.Readers {
		if r.Events != res.Writer.Events || !r.GotEnd || r.LastSeq != r.Events-1 || r.P50 <= 0 {
			t.Errorf("reader %d: %+v, writer %+v", i+1, r, res.Writer)
		}
	}
	if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
		t.Errorf("log left behind: %v", err)
	}
	// Problems names what a reader missed.
	res.Readers[1].Events--
	res.Readers[0].GotEnd = false
	if p := res.Problems(); len(p) != 2 || p[0] != "reader 1 never saw the end of the stream" || !strings.HasPrefix(p[1], "reader 2 got ") {
		t.Errorf("problems %q", p)
	}
}

func TestNewDemoError(t *testing.T) {
	dir := t.TempDir() + "/missing"
	_, err := NewDemo(DemoConfig{Duration: time.Second, Readers: 1, Capacity: 1 << 20, Rate: 1, Dir: dir})
	if err == nil || strings.Count(err.Error(), dir) != 1 || !strings.HasPrefix(err.Error(), "creating the demo log "+dir) ||
		!strings.HasSuffix(err.Error(), ": no such file or directory") {
		t.Fatalf("err %v", err)
	}
}

func TestChildMain(t *testing.T) {
	if _, ok := ChildMain([]string{"bench"}); ok {
		t.Error("handled a non-child command line")
	}
	if _, ok := ChildMain(nil); ok {
		t.Error("handled an empty command line")
	}
	if code, ok := ChildMain([]string{ChildArg, "no-such-role", "{}"}); !ok || code != 2 {
		t.Errorf("unknown role: code %d handled %v", code, ok)
	}
}
