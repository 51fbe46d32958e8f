package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newExporterCmd()) }

func newExporterCmd() *cobra.Command {
	var dirs []string
	var listen string
	cmd := &cobra.Command{
		Use:   "exporter --dir DIR --listen ADDR",
		Short: "Serve Prometheus metrics for every log and queue in a directory",
		Long: `exporter serves, at http://ADDR/metrics, metrics for every log file and queue directory
in each --dir (one level deep), inspected afresh at each scrape exactly as "shmio top" does:
read-only, without a lock, writing nothing.

Every store has the labels path and queue (the queue's directory name; empty for a log file):
  shmio_committed_bytes_total     counter  bytes of frames committed (queues: since first seen)
  shmio_committed_frames_total    counter  frames committed (estimated beyond 1 MiB of new frames
                                           per scrape, see "shmio top --help")
  shmio_capacity_bytes            gauge    bytes frames may fill (queues: the head segment)
  shmio_fill_ratio                gauge    committed / capacity, 0 to 1 (queues: the head segment)
  shmio_writer_up                 gauge    1 while a process holds the writer lock
  shmio_writer_dead               gauge    1 when the recorded writer ended without closing
  shmio_sleepers                  gauge    1 when a reader may sleep waiting for a commit
  shmio_queue_segments            gauge    segments present (queues only)
  shmio_queue_bytes               gauge    committed bytes in those segments (queues only)
and every named reader of a queue also the label reader:
  shmio_reader_lag_bytes, shmio_reader_lag_frames, shmio_reader_lag_seconds, shmio_reader_active
A log that disappears disappears from the next scrape, series and all.`,
		Example: `  shmio exporter --dir /dev/shm --listen 127.0.0.1:9465
  curl -s localhost:9465/metrics | grep shmio_reader_lag_seconds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExporter(cmd.Context(), cmd, dirs, listen)
		},
	}
	cmd.Flags().StringSliceVar(&dirs, "dir", []string{"/dev/shm"}, "directory to watch (repeat or comma-separate for several)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9465", "address to serve /metrics on")
	return cmd
}

func runExporter(ctx context.Context, cmd *cobra.Command, dirs []string, listen string) error {
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return fmt.Errorf("--dir %s: not a directory", d)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStoreCollector(dirs))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "shmio exporter: metrics at /metrics")
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(cmd.OutOrStdout(), "shmio exporter: serving http://%s/metrics\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// storeCollector inspects the directories at each scrape; the series it reports are exactly
// the stores found then, so a store that is gone has no series left.
type storeCollector struct {
	dirs []string
	in   *shmio.Inspector

	bytes, frames, capacity, fill, up, dead, sleepers, segments, queueBytes *prometheus.Desc
	lagBytes, lagFrames, lagSeconds, active                                 *prometheus.Desc
}

func newStoreCollector(dirs []string) *storeCollector {
	store := []string{"path", "queue"}
	reader := []string{"path", "queue", "reader"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("shmio_"+name, help, labels, nil)
	}
	return &storeCollector{
		dirs:       dirs,
		in:         shmio.NewInspector(shmio.InspectOptions{}),
		bytes:      d("committed_bytes_total", "Bytes of frames committed (a queue: since the exporter first saw it).", store),
		frames:     d("committed_frames_total", "Frames committed (estimated past 1 MiB of new frames per scrape).", store),
		capacity:   d("capacity_bytes", "Bytes frames may fill (a queue: its head segment).", store),
		fill:       d("fill_ratio", "Committed bytes over capacity, 0 to 1 (a queue: its head segment).", store),
		up:         d("writer_up", "1 while a process holds the writer lock.", store),
		dead:       d("writer_dead", "1 when the recorded writer ended without closing (killed or crashed).", store),
		sleepers:   d("sleepers", "1 when a reader may be asleep waiting for the next commit.", store),
		segments:   d("queue_segments", "Segments present in the queue, up to the head.", store),
		queueBytes: d("queue_bytes", "Committed bytes in the queue's segments.", store),
		lagBytes:   d("reader_lag_bytes", "Bytes committed after the named reader's cursor.", reader),
		lagFrames:  d("reader_lag_frames", "Frames committed after the named reader's cursor.", reader),
		lagSeconds: d("reader_lag_seconds", "How long the named reader has had frames to read (0 when caught up).", reader),
		active:     d("reader_active", "1 while a process holds the named reader.", reader),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bytes, c.frames, c.capacity, c.fill, c.up, c.dead, c.sleepers, c.segments,
		c.queueBytes, c.lagBytes, c.lagFrames, c.lagSeconds, c.active} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ss, _ := c.in.Sample(c.dirs...) // an unlistable directory yields no series
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, s := range ss {
		if s.Err != nil {
			continue
		}
		queue := ""
		if s.Kind == shmio.KindQueue {
			queue = filepath.Base(s.Path)
		}
		m := func(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, t, v, append([]string{s.Path, queue}, extra...)...)
		}
		m(c.bytes, prometheus.CounterValue, float64(s.BytesTotal))
		m(c.frames, prometheus.CounterValue, float64(s.FramesTotal))
		m(c.capacity, prometheus.GaugeValue, float64(s.Capacity))
		m(c.fill, prometheus.GaugeValue, s.Fill)
		m(c.up, prometheus.GaugeValue, b(s.WriterAlive))
		m(c.dead, prometheus.GaugeValue, b(s.WriterDead))
		m(c.sleepers, prometheus.GaugeValue, b(s.Sleepers))
		if s.Kind != shmio.KindQueue {
			continue
		}
		m(c.segments, prometheus.GaugeValue, float64(s.Segments))
		m(c.queueBytes, prometheus.GaugeValue, float64(s.Committed))
		for _, r := range s.Readers {
			if r.Err != nil {
				continue
			}
			m(c.lagBytes, prometheus.GaugeValue, float64(r.LagBytes), r.Name)
			m(c.lagFrames, prometheus.GaugeValue, float64(r.LagFrames), r.Name)
			m(c.lagSeconds, prometheus.GaugeValue, r.Lag.Seconds(), r.Name)
			m(c.active, prometheus.GaugeValue, b(r.Active), r.Name)
		}
	}
}
