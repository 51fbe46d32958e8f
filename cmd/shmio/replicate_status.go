package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/replicate"
)

// statusJSON is the --json form of replicate status.
type statusJSON struct {
	Stream struct {
		Name        string   `json:"name"`
		Subjects    []string `json:"subjects"`
		Replicas    int      `json:"replicas"`
		Storage     string   `json:"storage"`
		Messages    uint64   `json:"messages"`
		Bytes       uint64   `json:"bytes"`
		FirstSeq    uint64   `json:"first_seq"`
		LastSeq     uint64   `json:"last_seq"`
		LastLogID   string   `json:"last_log_id,omitempty"`
		LastEnd     *int64   `json:"last_end_cursor,omitempty"`
		Leader      string   `json:"leader,omitempty"`
		Current     int      `json:"replicas_current,omitempty"`
		Unavailable int      `json:"replicas_unavailable,omitempty"`
		MsgsPerSec  *float64 `json:"msgs_per_s,omitempty"`
		BytesPerSec *float64 `json:"bytes_per_s,omitempty"`
	} `json:"stream"`
	Push     *pushStatusJSON `json:"push,omitempty"`
	Pull     *pullStatusJSON `json:"pull,omitempty"`
	Exceeded []string        `json:"exceeded,omitempty"` // thresholds passed (--max-lag, --max-behind)
}

type pushStatusJSON struct {
	Log          string   `json:"log"`
	LogID        string   `json:"log_id"`
	Committed    int64    `json:"committed_cursor"`
	StreamEnd    int64    `json:"stream_end_cursor"`
	CursorFile   *int64   `json:"cursor_file_cursor,omitempty"`
	BehindFrames int64    `json:"behind_frames"`
	BehindBytes  int64    `json:"behind_bytes"`
	LagMillis    float64  `json:"lag_ms"`
	FramesPerSec *float64 `json:"frames_per_s,omitempty"`
	Foreign      bool     `json:"stream_from_another_log,omitempty"`
}

type pullStatusJSON struct {
	Log             string   `json:"log"`
	Exists          bool     `json:"exists"`
	Tag             *uint64  `json:"commit_tag"`
	BehindMessages  uint64   `json:"behind_messages"`
	BehindFrames    *int64   `json:"behind_frames"`
	BehindBytes     *int64   `json:"behind_bytes"`
	LagMillis       float64  `json:"lag_ms"`
	MsgsPerSec      *float64 `json:"msgs_per_s,omitempty"`
	Durable         string   `json:"durable,omitempty"`
	ConsumerPending *uint64  `json:"consumer_pending,omitempty"`
	ConsumerUnacked *uint64  `json:"consumer_unacked,omitempty"`
}

// exitBehind is status's exit code when a side passes --max-lag or --max-behind.
const exitBehind = 3

func newReplicateStatusCmd() *cobra.Command {
	var (
		nf                                                natsFlags
		stream, logPath, cursor, idFlag, pullLog, durable string
		asJSON                                            bool
		interval, maxLag                                  time.Duration
		maxBehind                                         int64
	)
	cmd := &cobra.Command{
		Use:   "status --nats URL --stream NAME [--log SRC] [--pull-log DST]",
		Short: "Show how far behind the stream and the pulled log are (frames, bytes, time, rates)",
		Long: `Show the stream, and how far behind each side is:
with --log, how many committed frames (and bytes) of the source the stream does not hold yet;
with --pull-log, how many stream messages (runs of frames) the pulled log does not hold yet,
their frames and bytes (frames need --log too), the age of the oldest of them, and the durable
consumer's pending counts. With --interval, status looks twice and shows the rates between.

status exits with code 3 when a side is more than --max-lag behind (push: time since the stream
last grew while frames wait; pull: age of the oldest message not pulled) or more than
--max-behind frames behind (the pull side counts messages when its frames are unknown).

Point --nats at the server or cluster push and pull use (for an embedded server, the address
it listens on, nats://127.0.0.1:4222 by default). status only reads. --log and --pull-log may
be queue directories.`,
		Example: `  shmio replicate status --nats nats://127.0.0.1:4222 --stream EVENTS --log /dev/shm/events
  shmio replicate status --nats nats://127.0.0.1:4222 --stream EVENTS --pull-log /dev/shm/copy --json
  shmio replicate status --nats nats://127.0.0.1:4222 --stream EVENTS --pull-log /dev/shm/copy --max-lag 5s || alert`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nf.url == "embedded" {
				return errors.New(`status connects to a running server: use the address of the embedded one (--nats nats://127.0.0.1:4222 by default)`)
			}
			o := replicate.StatusOptions{Stream: stream}
			if logPath != "" {
				rs, err := openReplSource(logPath, idFlag)
				if err != nil {
					return err
				}
				defer rs.store.Close()
				o.Source, o.LogID = rs.store, rs.id
				if cursor == "" {
					cursor = defaultCursorFile(logPath, stream)
				}
				o.CursorFile = cursor
			}
			pullExists := false
			if pullLog != "" {
				o.Pull = true
				if _, err := os.Stat(pullLog); errors.Is(err, fs.ErrNotExist) {
					if durable == "" {
						durable = "(none: the log does not exist yet)"
					}
				} else {
					ds, err := shmio.OpenStore(pullLog, shmio.StoreOptions{})
					if err != nil {
						return fmt.Errorf("%s: %s", pullLog, rootCause(err))
					}
					defer ds.Close()
					pullExists = true
					if o.Tag, o.TagOK, err = ds.CommitTag(); err != nil {
						return fmt.Errorf("%s: %s", pullLog, rootCause(err))
					}
					if durable == "" {
						durable = fmt.Sprintf("shmio-pull-%016x", storeID(ds))
					}
					o.Durable = durable
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second+nf.connectTimeout+interval)
			defer cancel()
			nc, stop, err := nf.connect(ctx, "shmio replicate status")
			if err != nil {
				return err
			}
			defer stop()
			o.Conn = nc
			st, err := replicate.GetStatus(ctx, o)
			if err != nil {
				return err
			}
			var prev *replicate.Status
			if interval > 0 {
				prev = st
				if !sleepCmd(ctx, interval) {
					return ctx.Err()
				}
				if st, err = replicate.GetStatus(ctx, o); err != nil {
					return err
				}
			}
			var out statusJSON
			fillStatusJSON(&out, st, prev, o.Source, logPath, pullLog, durable, pullExists)
			out.Exceeded = exceeded(st, maxLag, maxBehind)
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), out)
			} else {
				printReplicateStatus(cmd.OutOrStdout(), &out)
			}
			if err == nil && len(out.Exceeded) > 0 {
				err = &exitError{code: exitBehind, err: fmt.Errorf("replication behind: %s", strings.Join(out.Exceeded, "; "))}
			}
			return err
		},
	}
	nf.add(cmd, false, 10*time.Second)
	f := cmd.Flags()
	f.StringVar(&stream, "stream", "", "JetStream stream name (required)")
	f.StringVar(&logPath, "log", "", "the pushed (source) log or queue directory")
	f.StringVar(&cursor, "cursor-file", "", "the pusher's cursor file (default <log>.<stream>.cursor)")
	f.StringVar(&idFlag, "log-id", "", "identity of a Node-made source log, as given to push")
	f.StringVar(&pullLog, "pull-log", "", "the pulled (destination) log or queue directory")
	f.StringVar(&durable, "durable", "", "the puller's durable consumer (default shmio-pull-<pull log id>)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (for scripts)")
	f.DurationVar(&interval, "interval", 0, "look twice, this far apart, and show the rates (0: once)")
	f.DurationVar(&maxLag, "max-lag", 0, "exit 3 when a side lags more than this (0: no limit)")
	f.Int64Var(&maxBehind, "max-behind", 0, "exit 3 when a side is more than this many frames behind (0: no limit)")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

// storeID is the identity of a log or queue (it names the default durable consumer).
func storeID(s shmio.Store) uint64 {
	switch v := s.(type) {
	case *shmio.Log:
		return v.Header().ID
	case *shmio.Queue:
		return v.ID()
	}
	return 0
}

func sleepCmd(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// exceeded lists the thresholds a side passes.
func exceeded(st *replicate.Status, maxLag time.Duration, maxBehind int64) []string {
	var out []string
	if p := st.Push; p != nil {
		if maxLag > 0 && p.Lag > maxLag {
			out = append(out, fmt.Sprintf("push lags %v (more than %v)", p.Lag.Round(time.Millisecond), maxLag))
		}
		if maxBehind > 0 && p.BehindFrames > maxBehind {
			out = append(out, fmt.Sprintf("push is %d frames behind (more than %d)", p.BehindFrames, maxBehind))
		}
	}
	if p := st.Pull; p != nil {
		if maxLag > 0 && p.Lag > maxLag {
			out = append(out, fmt.Sprintf("pull lags %v (more than %v)", p.Lag.Round(time.Millisecond), maxLag))
		}
		behind, what := p.BehindFrames, "frames"
		if behind < 0 {
			behind, what = int64(p.BehindMsgs), "messages"
		}
		if maxBehind > 0 && behind > maxBehind {
			out = append(out, fmt.Sprintf("pull is %d %s behind (more than %d)", behind, what, maxBehind))
		}
	}
	return out
}

func rate(delta float64, from, to time.Time) *float64 {
	r := delta / to.Sub(from).Seconds()
	return &r
}

func fillStatusJSON(out *statusJSON, st, prev *replicate.Status, src shmio.Store, logPath, pullLog, durable string, pullExists bool) {
	s := &out.Stream
	s.Name, s.Subjects, s.Replicas, s.Storage = st.Stream.Name, st.Stream.Subjects, st.Stream.Replicas, strings.ToLower(st.Stream.Storage)
	s.Messages, s.Bytes, s.FirstSeq, s.LastSeq = st.Stream.Msgs, st.Stream.Bytes, st.Stream.FirstSeq, st.Stream.LastSeq
	if st.Stream.LastEnd >= 0 {
		s.LastLogID = fmt.Sprintf("%016x", st.Stream.LastLogID)
		c := st.Stream.LastEnd
		s.LastEnd = &c
	}
	s.Leader, s.Current, s.Unavailable = st.Stream.Leader, st.Stream.CurrentReplicas, st.Stream.UnhealthyReplicas
	if prev != nil {
		s.MsgsPerSec = rate(float64(st.Stream.LastSeq)-float64(prev.Stream.LastSeq), prev.Time, st.Time)
		s.BytesPerSec = rate(float64(st.Stream.Bytes)-float64(prev.Stream.Bytes), prev.Time, st.Time)
	}
	if p := st.Push; p != nil {
		out.Push = &pushStatusJSON{Log: logPath, LogID: fmt.Sprintf("%016x", p.LogID), Committed: p.Committed, StreamEnd: p.StreamEnd,
			BehindFrames: p.BehindFrames, BehindBytes: p.BehindBytes, Foreign: p.ForeignStream, LagMillis: millis(p.Lag)}
		if p.FileCursor >= 0 {
			c := p.FileCursor
			out.Push.CursorFile = &c
		}
		if prev != nil && prev.Push != nil && src != nil && p.StreamEnd >= prev.Push.StreamEnd {
			if n, _, err := src.Distance(prev.Push.StreamEnd, p.StreamEnd); err == nil {
				out.Push.FramesPerSec = rate(float64(n), prev.Time, st.Time)
			}
		}
	}
	if p := st.Pull; p != nil {
		out.Pull = &pullStatusJSON{Log: pullLog, Exists: pullExists, BehindMessages: p.BehindMsgs, Durable: durable, LagMillis: millis(p.Lag)}
		if p.TagOK {
			t := p.Tag
			out.Pull.Tag = &t
		}
		if p.BehindBytes >= 0 {
			b := p.BehindBytes
			out.Pull.BehindBytes = &b
		}
		if p.BehindFrames >= 0 {
			b := p.BehindFrames
			out.Pull.BehindFrames = &b
		}
		if prev != nil && prev.Pull != nil {
			out.Pull.MsgsPerSec = rate(float64(p.Tag)-float64(prev.Pull.Tag), prev.Time, st.Time)
		}
		if p.ConsumerExists {
			pend, unacked := p.ConsumerPending, p.ConsumerAckWait
			out.Pull.ConsumerPending, out.Pull.ConsumerUnacked = &pend, &unacked
		}
	}
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printReplicateStatus(w io.Writer, s *statusJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	st := s.Stream
	fmt.Fprintf(tw, "stream\t%s (subjects %s, %d replica(s), %s storage)\n", st.Name, strings.Join(st.Subjects, " "), st.Replicas, st.Storage)
	fmt.Fprintf(tw, "  messages\t%d (%d bytes), sequences %d..%d\n", st.Messages, st.Bytes, st.FirstSeq, st.LastSeq)
	if st.MsgsPerSec != nil {
		fmt.Fprintf(tw, "  growing\t%.0f messages/s, %.0f bytes/s\n", *st.MsgsPerSec, *st.BytesPerSec)
	}
	if st.LastEnd != nil {
		fmt.Fprintf(tw, "  last run\tlog %s, up to cursor %d\n", st.LastLogID, *st.LastEnd)
	}
	if st.Replicas > 1 {
		fmt.Fprintf(tw, "  cluster\tleader %s, %d replica(s) current, %d unavailable or lagging\n", st.Leader, st.Current, st.Unavailable)
	}
	if p := s.Push; p != nil {
		fmt.Fprintf(tw, "push\t%s (log id %s)\n", p.Log, p.LogID)
		if p.Foreign {
			fmt.Fprintf(tw, "  warning\tthe stream's last message comes from another log\n")
		}
		fmt.Fprintf(tw, "  committed\tup to cursor %d; the stream holds up to cursor %d\n", p.Committed, p.StreamEnd)
		if p.CursorFile != nil {
			fmt.Fprintf(tw, "  cursor file\t%d\n", *p.CursorFile)
		}
		fmt.Fprintf(tw, "  behind\t%d frames, %d bytes, %s\n", p.BehindFrames, p.BehindBytes, lagText(p.LagMillis))
		if p.FramesPerSec != nil {
			fmt.Fprintf(tw, "  rate\t%.0f frames/s into the stream\n", *p.FramesPerSec)
		}
	}
	if p := s.Pull; p != nil {
		fmt.Fprintf(tw, "pull\t%s\n", p.Log)
		switch {
		case !p.Exists:
			fmt.Fprintf(tw, "  holds\tnothing: %s does not exist yet (pull creates it)\n", p.Log)
		case p.Tag != nil:
			fmt.Fprintf(tw, "  holds\tstream sequences up to %d\n", *p.Tag)
		default:
			fmt.Fprintf(tw, "  holds\tnothing pulled yet\n")
		}
		frames, bytes := "unknown frames", "unknown bytes"
		if p.BehindFrames != nil {
			frames = fmt.Sprintf("%d frames", *p.BehindFrames)
		}
		if p.BehindBytes != nil {
			bytes = fmt.Sprintf("%d bytes", *p.BehindBytes)
		}
		fmt.Fprintf(tw, "  behind\t%d messages (%s, %s), %s\n", p.BehindMessages, frames, bytes, lagText(p.LagMillis))
		if p.MsgsPerSec != nil {
			fmt.Fprintf(tw, "  rate\t%.0f messages/s into the log\n", *p.MsgsPerSec)
		}
		if p.ConsumerPending != nil {
			fmt.Fprintf(tw, "  consumer\t%s: %d undelivered, %d unacknowledged\n", p.Durable, *p.ConsumerPending, *p.ConsumerUnacked)
		} else if p.Exists && p.Durable != "" {
			fmt.Fprintf(tw, "  consumer\t%s does not exist (yet)\n", p.Durable)
		}
	}
	for _, e := range s.Exceeded {
		fmt.Fprintf(tw, "ALERT\t%s\n", e)
	}
	tw.Flush()
}

func lagText(ms float64) string {
	if ms == 0 {
		return "no lag"
	}
	return fmt.Sprintf("lag %v", time.Duration(ms*float64(time.Millisecond)).Round(time.Millisecond))
}
