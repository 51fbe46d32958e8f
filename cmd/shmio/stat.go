package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newStatCmd()) }

// statInfo and queueStatInfo are what stat reports; their JSON form is the --json output.
type (
	statInfo      = shmio.LogStat
	queueStatInfo = shmio.QueueStat
)

func newStatCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stat PATH|DIR",
		Short: "Show a log's format, header, fill level, frame count and writer",
		Long: `Show a log's format, header fields, capacity, committed bytes and fill level, the number of
frames and the first and last cursor (found by walking the frames), whether a writer holds the
lock (and its pid), and how many readers are asleep waiting for frames (a count the readers
keep themselves: one killed while asleep stays counted). A damaged log exits with status 1.

Cursors are byte offsets from the first frame, as tail, dump and Node shmio use them.
stat only reads; it is safe on a live log (it counts the frames committed when it started).

Given a queue directory, stat lists its segments (number, size, committed bytes, sealed), the
retention policy, every named reader's lag in frames, bytes and time, and the writer.`,
		Example: `  shmio stat /dev/shm/events
  shmio stat --json /dev/shm/events | jq .fill_percent
  shmio stat /dev/shm/events.q`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := openTarget(args[0], false)
			if err != nil {
				return err
			}
			defer t.Close()
			out := cmd.OutOrStdout()
			if t.q != nil {
				info, err := collectQueueStat(t)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(out, info)
				}
				printQueueStat(out, info)
				return nil
			}
			info, err := collectStat(t)
			if err != nil {
				return err
			}
			if asJSON {
				err = writeJSON(out, info)
			} else {
				printStat(out, info)
			}
			if err == nil && info.Corrupt != "" {
				err = &exitError{1, fmt.Errorf("%s: corrupt %s (run shmio verify)", t.path, info.Corrupt)}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object (for scripts)")
	return cmd
}

func collectStat(t *target) (*statInfo, error) {
	info, err := t.log.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %s", t.path, rootCause(err))
	}
	info.Path = t.path
	return &info, nil
}

func printStat(w io.Writer, s *statInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("path", "%s", s.Path)
	switch s.Format {
	case "node":
		row("format", "Node shmio (u16 frame lengths, no shmio-go header: readers poll)")
	case "shmio-go-wide":
		row("format", "shmio-go v%d, wide (u32 frame lengths; not readable by Node shmio)", s.Version)
	default:
		row("format", "shmio-go v%d, u16 frame lengths (Node shmio compatible)", s.Version)
	}
	if s.ID != "" {
		row("id", "%s", s.ID)
	}
	row("header", "%d bytes, data offset %d", s.HeaderSize, s.DataOffset)
	row("capacity", "%s (%d bytes), %d bytes for frames", formatSize(s.Capacity), s.Capacity, s.DataCapacity)
	row("committed", "%d bytes (%s full), committed end at file offset %d", s.Committed, percent(s.FillPercent), s.CommittedEnd)
	row("max payload", "%d bytes", s.MaxPayload)
	frames := fmt.Sprintf("%d", s.Frames)
	if s.Corrupt != "" {
		frames += " before a corrupt frame (run shmio verify)"
	}
	row("frames", "%s", frames)
	if s.FirstCursor != nil {
		row("first cursor", "%d", *s.FirstCursor)
		row("last cursor", "%d", *s.LastCursor)
	} else {
		row("first cursor", "- (empty)")
		row("last cursor", "- (empty)")
	}
	if s.Sealed {
		row("sealed", "yes (no frame will follow)")
	}
	row("writer", "%s", writerText(s.WriterLockHeld, s.WriterPID, s.LastWriterPID))
	waiting := fmt.Sprint(s.ReadersWaiting)
	if s.ReadersWaiting > 0 {
		waiting += " (possibly stale: a reader killed while waiting stays counted)"
	}
	row("readers waiting", "%s", waiting)
	if s.CommitTag != nil {
		row("commit tag", "%d", *s.CommitTag)
	}
	if s.Corrupt != "" {
		row("CORRUPT", "%s", strings.TrimSpace(s.Corrupt))
	}
	tw.Flush()
}

// writerText says who holds the writer lock, or which writer did not close cleanly (lastPID).
func writerText(held bool, pid, lastPID int) string {
	switch {
	case held && pid != 0:
		return fmt.Sprintf("lock held by pid %d", pid)
	case held:
		return "lock held (pid unknown)"
	case lastPID != 0:
		return fmt.Sprintf("none (last writer pid %d did not close cleanly)", lastPID)
	}
	return "none"
}

// percent prints a fill level with one decimal, never rounding a non-empty log down to 0.0%.
func percent(p float64) string {
	if p > 0 && p < 0.1 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", p)
}

func collectQueueStat(t *target) (*queueStatInfo, error) {
	info, err := t.q.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %s", t.path, rootCause(err))
	}
	info.Path = t.path
	for i, g := range info.Segments {
		if g.Err != nil {
			info.Segments[i].Error = rootCause(g.Err)
		}
	}
	for i, r := range info.Readers {
		if r.Err != nil {
			info.Readers[i].Error = rootCause(r.Err)
		}
	}
	return &info, nil
}

func printQueueStat(w io.Writer, s *queueStatInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("path", "%s", s.Path)
	row("format", "shmio-go queue (segments are u16-frame logs, Node shmio compatible)")
	row("segment size", "%s (%d bytes), max payload %d bytes", formatSize(s.SegmentSize), s.SegmentSize, s.MaxPayload)
	row("retention", "%s", s.RetentionText)
	row("segments", "%d, %s of files, %d bytes committed", len(s.Segments), formatSize(s.TotalBytes), s.Committed)
	row("first cursor", "%s", queueCursorString(s.FirstCursor))
	row("writer", "%s", writerText(s.WriterLockHeld, s.WriterPID, 0))
	if s.CommitTag != nil {
		row("commit tag", "%d", *s.CommitTag)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nsegments:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  number\tsize\tcommitted\tstate\t")
	for _, g := range s.Segments {
		state := g.State
		if g.Error != "" {
			state = "error: " + g.Error
		}
		fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\t\n", g.Number, formatSize(g.FileSize), g.Committed, state)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nnamed readers:")
	if len(s.Readers) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\tcursor\tlag frames\tlag bytes\tlag time\tstate")
	for _, r := range s.Readers {
		state := "idle"
		if r.Active {
			state = "active"
			if r.PID != 0 {
				state = fmt.Sprintf("active (pid %d)", r.PID)
			}
		}
		if r.Error != "" {
			state += "; " + r.Error
		}
		lag := time.Duration(r.LagSecs * float64(time.Second)).Round(time.Millisecond)
		fmt.Fprintf(tw, "  %s\t%d (segment %d offset %d)\t%d\t%d\t%s\t%s\n", r.Name, r.Cursor, r.Segment, r.Offset, r.LagFrames, r.LagBytes, lag, state)
	}
	tw.Flush()
}
