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
type statusJSON = replicate.Report

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
					cursor = replicate.DefaultCursorFile(logPath, stream)
				}
				o.CursorFile = cursor
			}
			ro := replicate.ReportOptions{Log: logPath, PullLog: pullLog, Interval: interval, MaxLag: maxLag, MaxBehind: maxBehind}
			if pullLog != "" {
				o.Pull, o.Durable = true, durable
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
					o.Dest, ro.PullExists = ds, true
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
			out, err := replicate.GetReport(ctx, o, ro)
			if err != nil {
				return err
			}
			if out.Pull != nil && out.Pull.Durable == "" {
				out.Pull.Durable = durable // the placeholder for a log not made yet
			}
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), out)
			} else {
				printReplicateStatus(cmd.OutOrStdout(), out)
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
