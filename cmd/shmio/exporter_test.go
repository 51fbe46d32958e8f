package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches url and parses it with the Prometheus text parser.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	c := http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// metricValue returns the value of the series of family name whose labels include want, and
// whether there is one.
func exporterValue(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func TestExporterScrape(t *testing.T) {
	dir := topFixture(t)
	p := startShmio(t, []string{"exporter", "--dir", dir, "--listen", "127.0.0.1:0"})
	addr := regexp.MustCompile(`serving (http://\S+/metrics)`)
	waitFor(t, 20*time.Second, "the exporter's address", func() bool { return addr.MatchString(p.stdout.String()) })
	url := addr.FindStringSubmatch(p.stdout.String())[1]

	mfs := scrapeMetrics(t, url)
	busy, full, q := filepath.Join(dir, "busy"), filepath.Join(dir, "full"), filepath.Join(dir, "q")
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"shmio_committed_bytes_total", map[string]string{"path": busy, "queue": ""}, 640},
		{"shmio_committed_frames_total", map[string]string{"path": busy}, 10},
		{"shmio_capacity_bytes", map[string]string{"path": busy}, 64<<10 - 192},
		{"shmio_fill_ratio", map[string]string{"path": full}, 1},
		{"shmio_writer_up", map[string]string{"path": full}, 0},
		{"shmio_writer_dead", map[string]string{"path": full}, 0},
		{"shmio_sleepers", map[string]string{"path": busy}, 0},
		{"shmio_committed_frames_total", map[string]string{"path": q, "queue": "q"}, 20},
		{"shmio_queue_segments", map[string]string{"path": q, "queue": "q"}, 1},
		{"shmio_reader_lag_frames", map[string]string{"path": q, "queue": "q", "reader": "slow"}, 19},
		{"shmio_reader_active", map[string]string{"reader": "slow"}, 0},
	}
	for _, w := range want {
		got, ok := exporterValue(mfs, w.name, w.labels)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	if mfs["shmio_committed_bytes_total"].GetType() != dto.MetricType_COUNTER || mfs["shmio_fill_ratio"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("metric types: %v, %v", mfs["shmio_committed_bytes_total"].GetType(), mfs["shmio_fill_ratio"].GetType())
	}
	if v, ok := exporterValue(mfs, "shmio_reader_lag_bytes", map[string]string{"reader": "slow"}); !ok || v <= 0 {
		t.Errorf("lag bytes %v %v", v, ok)
	}
	if v, ok := exporterValue(mfs, "shmio_reader_lag_seconds", map[string]string{"reader": "slow"}); !ok || v <= 0 {
		t.Errorf("lag seconds %v %v", v, ok)
	}
	if _, ok := exporterValue(mfs, "shmio_queue_segments", map[string]string{"path": busy}); ok {
		t.Error("a log has a queue_segments series")
	}
	if n := len(mfs["shmio_capacity_bytes"].GetMetric()); n != 3 {
		t.Errorf("%d capacity series, want 3", n)
	}

	// A log that disappears drops its series.
	if err := os.Remove(busy); err != nil {
		t.Fatal(err)
	}
	mfs = scrapeMetrics(t, url)
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "path" && l.GetValue() == busy {
					t.Errorf("%s still has a series for the removed log", name)
				}
			}
		}
	}
	if _, ok := exporterValue(mfs, "shmio_committed_bytes_total", map[string]string{"path": full}); !ok {
		t.Error("the other log lost its series")
	}
	p.signal(t, os.Interrupt)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
}
