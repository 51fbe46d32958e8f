package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newTopCmd()) }

// topOptions configure top; the thresholds also decide which rows are red.
type topOptions struct {
	once     bool
	json     bool
	interval time.Duration
	full     float64       // percent: a log fuller than this is red
	lag      time.Duration // a named reader behind for longer than this is red
	sort     string
}

func newTopCmd() *cobra.Command {
	o := &topOptions{}
	cmd := &cobra.Command{
		Use:   "top [DIR|LOG|QUEUE...]",
		Short: "Live view of every log and queue in a directory: writers, rates, fill, reader lag",
		Long: `top shows every log and queue found (default: in /dev/shm), refreshed every --interval:
path, kind (log, node for Node-made logs, queue), the writer's pid and whether it is alive, the
commit rate in frames/s and bytes/s, the fill level (logs) or segments and bytes (queues), the
readers asleep waiting for frames, and for queues every named reader's lag in frames, bytes and
time.

top never disturbs what it watches: it maps headers read-only, reads frames with pread and takes
no lock; it writes nothing. Rates come from successive samples of the committed end; frames are
counted by walking only the frames committed since the previous sample (at most 1 MiB per store
per refresh; beyond that the count is estimated from the mean frame size and marked "~").

A row is red (and marked "!") when:
  full      a log (not sealed) is fuller than --full percent
  dead      the header records a writer pid, no process holds the writer lock (so that writer
            ended without closing: killed or crashed), and a frame it allocated is still
            uncommitted at the committed end (a new writer will overwrite it)
  lag       a named reader has had frames to read for longer than --lag

Keys: r, f, l, p sort by rate, fill, lag, path; up/down (k/j) move; q or ctrl-c quits.
--once prints one snapshot (two samples --interval apart, for the rates) and exits; with
--json it is a JSON array with the same fields, for scripts. No terminal is needed then.`,
		Example: `  shmio top
  shmio top /dev/shm/orders.q /dev/shm/events
  shmio top --once --json /dev/shm | jq '.[] | select(.alerts)'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"/dev/shm"}
			}
			if !slices.Contains([]string{"rate", "fill", "lag", "path"}, o.sort) {
				return fmt.Errorf("invalid --sort %q: want rate, fill, lag or path", o.sort)
			}
			if o.interval < 0 || (!o.once && o.interval < 50*time.Millisecond) {
				return fmt.Errorf("invalid --interval %v: want at least 50ms", o.interval)
			}
			if o.json && !o.once {
				return errors.New("--json needs --once")
			}
			if o.once {
				return runTopOnce(cmd.OutOrStdout(), args, o)
			}
			return runTopView(args, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.once, "once", false, "print one snapshot and exit (no terminal needed)")
	f.BoolVar(&o.json, "json", false, "with --once: print JSON")
	f.DurationVar(&o.interval, "interval", time.Second, "time between refreshes (--once: between its two samples; 0: no rates)")
	f.Float64Var(&o.full, "full", 90, "a log fuller than this percentage is red")
	f.DurationVar(&o.lag, "lag", 10*time.Second, "a named reader behind for longer than this is red")
	f.StringVar(&o.sort, "sort", "rate", "sort by rate, fill, lag or path")
	return cmd
}

// topStore is one store as top shows it; its JSON form is the --once --json output.
type topStore struct {
	Path         string      `json:"path"`
	Kind         string      `json:"kind"`
	ID           string      `json:"id,omitempty"`
	WriterPID    int         `json:"writer_pid"`
	WriterAlive  bool        `json:"writer_alive"`
	WriterDead   bool        `json:"writer_dead"`
	Uncommitted  bool        `json:"uncommitted"`
	FramesPerSec float64     `json:"frames_per_sec"`
	BytesPerSec  float64     `json:"bytes_per_sec"`
	Rated        bool        `json:"rated"`
	Frames       int64       `json:"frames"`
	FramesExact  bool        `json:"frames_exact"`
	Bytes        int64       `json:"bytes"` // committed bytes of frames (all segments for a queue)
	Capacity     int64       `json:"capacity"`
	FillPercent  float64     `json:"fill_percent"` // queue: the head segment's
	Sealed       bool        `json:"sealed"`
	Segments     int         `json:"segments,omitempty"`
	Sleepers     bool        `json:"sleepers"`
	Waiters      uint32      `json:"waiters"`
	Readers      []topReader `json:"readers,omitempty"`
	Alerts       []string    `json:"alerts,omitempty"`
	Error        string      `json:"error,omitempty"`
}

type topReader struct {
	Name       string  `json:"name"`
	Active     bool    `json:"active"`
	PID        int     `json:"pid,omitempty"`
	Cursor     string  `json:"cursor"`
	LagFrames  int64   `json:"lag_frames"`
	LagBytes   int64   `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
	LagExact   bool    `json:"lag_exact"`
	Error      string  `json:"error,omitempty"`
}

func toTopStore(s shmio.Snapshot, o *topOptions) topStore {
	t := topStore{Path: s.Path, Kind: s.Kind, WriterPID: s.WriterPID, WriterAlive: s.WriterAlive,
		WriterDead: s.WriterDead, Uncommitted: s.Uncommitted, FramesPerSec: s.FramesPerSec, BytesPerSec: s.BytesPerSec,
		Rated: s.Rated, Frames: s.FramesTotal, FramesExact: s.FramesExact, Bytes: s.Committed, Capacity: s.Capacity,
		FillPercent: 100 * s.Fill, Sealed: s.Sealed, Segments: s.Segments, Sleepers: s.Sleepers, Waiters: s.Waiters}
	if s.ID != 0 {
		t.ID = fmt.Sprintf("%016x", s.ID)
	}
	if s.Err != nil {
		t.Error = s.Err.Error()
		t.Alerts = append(t.Alerts, "unreadable")
	}
	if s.Kind != shmio.KindQueue && !s.Sealed && t.FillPercent > o.full {
		t.Alerts = append(t.Alerts, fmt.Sprintf("full: %.1f%%", t.FillPercent))
	}
	if s.WriterDead && s.Uncommitted {
		t.Alerts = append(t.Alerts, fmt.Sprintf("dead: writer %d died with frames uncommitted", s.WriterPID))
	}
	for _, r := range s.Readers {
		tr := topReader{Name: r.Name, Active: r.Active, PID: r.PID, Cursor: queueCursorString(r.Cursor),
			LagFrames: r.LagFrames, LagBytes: r.LagBytes, LagSeconds: r.Lag.Seconds(), LagExact: r.LagExact}
		if r.Err != nil {
			tr.Error = r.Err.Error()
		}
		if r.Lag > o.lag {
			t.Alerts = append(t.Alerts, fmt.Sprintf("lag: reader %s %s behind", r.Name, fmtLag(r.Lag)))
		}
		t.Readers = append(t.Readers, tr)
	}
	return t
}

// maxLag is the longest lag of the store's named readers, for sorting.
func (t topStore) maxLag() float64 {
	var m float64
	for _, r := range t.Readers {
		m = max(m, r.LagSeconds)
	}
	return m
}

// sortTop orders stores by key, largest first (path: alphabetical), ties by path.
func sortTop(ts []topStore, key string) {
	slices.SortStableFunc(ts, func(a, b topStore) int {
		var c int
		switch key {
		case "rate":
			c = cmp.Compare(b.BytesPerSec, a.BytesPerSec)
		case "fill":
			c = cmp.Compare(b.FillPercent, a.FillPercent)
		case "lag":
			c = cmp.Compare(b.maxLag(), a.maxLag())
		}
		return cmp.Or(c, strings.Compare(a.Path, b.Path))
	})
}

// topSample takes one sample of targets and returns it as rows, sorted.
func topSample(in *shmio.Inspector, targets []string, o *topOptions, key string) ([]topStore, error) {
	ss, err := in.Sample(targets...)
	ts := make([]topStore, 0, len(ss))
	for _, s := range ss {
		ts = append(ts, toTopStore(s, o))
	}
	sortTop(ts, key)
	return ts, err
}

func runTopOnce(w io.Writer, targets []string, o *topOptions) error {
	in := shmio.NewInspector(shmio.InspectOptions{})
	ts, err := topSample(in, targets, o, o.sort)
	if err == nil && o.interval > 0 {
		time.Sleep(o.interval)
		ts, err = topSample(in, targets, o, o.sort)
	}
	if err != nil {
		return err
	}
	if o.json {
		if ts == nil {
			ts = []topStore{}
		}
		return writeJSON(w, ts)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, topHeader)
	for _, t := range ts {
		fmt.Fprintln(tw, t.line())
		for _, r := range t.Readers {
			fmt.Fprintln(tw, r.line())
		}
	}
	return tw.Flush()
}

const topHeader = "  PATH\tKIND\tWRITER\tFRAMES/S\tBYTES/S\tFRAMES\tFILL\tSLEEP\tALERT"

// line is the store's row, tab-separated; "!" in front marks an alert.
func (t topStore) line() string {
	mark := " "
	if len(t.Alerts) > 0 {
		mark = "!"
	}
	writer := "-"
	switch {
	case t.WriterAlive:
		writer = strconv.Itoa(t.WriterPID) + " up"
		if t.WriterPID == 0 {
			writer = "up"
		}
	case t.WriterDead:
		writer = strconv.Itoa(t.WriterPID) + " dead"
	}
	fps, bps := "-", "-"
	if t.Rated {
		fps, bps = fmtRate(t.FramesPerSec), fmtBytesRate(t.BytesPerSec)
	}
	frames := fmtCount(t.Frames)
	if !t.FramesExact {
		frames = "~" + frames
	}
	fill := fmt.Sprintf("%.1f%%", t.FillPercent)
	if t.Kind == shmio.KindQueue {
		fill = fmt.Sprintf("%d seg %s", t.Segments, humanBytes(t.Bytes))
	}
	if t.Sealed {
		fill += " sealed"
	}
	sleep := "-"
	if t.Sleepers {
		sleep = fmt.Sprintf("yes (%d)", t.Waiters)
	}
	alert := strings.Join(t.Alerts, "; ")
	if t.Error != "" {
		alert = t.Error
	}
	return fmt.Sprintf("%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", mark, t.Path, t.Kind, writer, fps, bps, frames, fill, sleep, alert)
}

// line is a named reader's row under its queue.
func (r topReader) line() string {
	state := "idle"
	if r.Active {
		state = fmt.Sprintf("pid %d", r.PID)
	}
	lag := fmt.Sprintf("lag %s frames, %s, %s", fmtCount(r.LagFrames), humanBytes(r.LagBytes), fmtLag(time.Duration(r.LagSeconds*float64(time.Second))))
	if !r.LagExact {
		lag = "lag ~" + strings.TrimPrefix(lag, "lag ")
	}
	if r.Error != "" {
		lag = r.Error
	}
	return fmt.Sprintf("    └ reader %s\t%s\t\t\t\t\t%s", r.Name, state, lag)
}

// fmtLag prints a lag time: 0s, 850ms, 12.3s, 4m05s.
func fmtLag(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
}
