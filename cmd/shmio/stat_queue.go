package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

// queueStatInfo is what stat reports for a queue; its JSON form is the --json output.
type queueStatInfo struct {
	Path           string                `json:"path"`
	Kind           string                `json:"kind"` // "queue"
	SegmentSize    int64                 `json:"segment_size"`
	MaxPayload     int                   `json:"max_payload"`
	Retention      shmio.RetentionPolicy `json:"retention"`
	RetentionText  string                `json:"retention_text"`
	Segments       []queueSegStat        `json:"segments"`
	TotalBytes     int64                 `json:"total_file_bytes"`
	Committed      int64                 `json:"committed_bytes"`
	FirstCursor    int64                 `json:"first_cursor"`
	Readers        []queueReaderStat     `json:"readers"`
	WriterLockHeld bool                  `json:"writer_lock_held"`
	WriterPID      int                   `json:"writer_pid,omitempty"`
	CommitTag      *uint64               `json:"commit_tag,omitempty"`
}

type queueSegStat struct {
	Number    int64  `json:"number"`
	Path      string `json:"path"`
	FileSize  int64  `json:"file_size"`
	Committed int64  `json:"committed_bytes"`
	Sealed    bool   `json:"sealed"`
	State     string `json:"state"` // sealed, head (being written) or prepared (made ahead, empty)
	Created   string `json:"created,omitempty"`
	SealedAt  string `json:"sealed_at,omitempty"`
	Error     string `json:"error,omitempty"`
}

type queueReaderStat struct {
	Name      string  `json:"name"`
	Cursor    int64   `json:"cursor"`
	Segment   int64   `json:"segment"`
	Offset    int64   `json:"offset"`
	Active    bool    `json:"active"`
	PID       int     `json:"pid,omitempty"`
	LagFrames int64   `json:"lag_frames"`
	LagBytes  int64   `json:"lag_bytes"`
	LagSecs   float64 `json:"lag_seconds"`
	Error     string  `json:"error,omitempty"`
}

func runStatQueue(cmd *cobra.Command, dir string, asJSON bool) error {
	info, err := collectQueueStat(dir)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(out, info)
	}
	printQueueStat(out, info)
	return nil
}

func collectQueueStat(dir string) (*queueStatInfo, error) {
	q, err := openQueue(dir, false)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	info := &queueStatInfo{Path: dir, Kind: "queue", SegmentSize: q.SegmentSize(), MaxPayload: q.MaxPayload(),
		Segments: []queueSegStat{}, Readers: []queueReaderStat{}}
	if qi, err := q.Info(); err == nil {
		info.Retention = qi.Retention
		if qi.SegmentSize != 0 {
			info.SegmentSize = qi.SegmentSize
		}
	}
	info.RetentionText = info.Retention.String()
	segs, err := q.Segments()
	if err != nil {
		return nil, fmt.Errorf("%s: %s", dir, rootCause(err))
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	headSeen := false
	for i, s := range segs {
		ss := queueSegStat{Number: s.Number, Path: s.Path, FileSize: s.FileSize, Committed: s.Committed,
			Sealed: s.Sealed, Created: stamp(s.Created), SealedAt: stamp(s.SealedAt)}
		switch {
		case s.Sealed:
			ss.State = "sealed"
		case !headSeen:
			ss.State, headSeen = "head", true
		default:
			ss.State = "prepared"
		}
		if s.Err != nil {
			ss.Error = rootCause(s.Err)
		}
		if i == 0 {
			info.FirstCursor = s.FirstCursor
		}
		info.TotalBytes += s.FileSize
		info.Committed += s.Committed
		info.Segments = append(info.Segments, ss)
	}
	readers, err := q.Readers()
	if err != nil {
		return nil, fmt.Errorf("%s: %s", dir, rootCause(err))
	}
	for _, r := range readers {
		seg, off := shmio.SplitQueueCursor(r.Cursor)
		rs := queueReaderStat{Name: r.Name, Cursor: r.Cursor, Segment: seg, Offset: off, Active: r.Active, PID: r.PID,
			LagFrames: r.LagFrames, LagBytes: r.LagBytes, LagSecs: r.Lag.Seconds()}
		if r.Err != nil {
			rs.Error = rootCause(r.Err)
		}
		info.Readers = append(info.Readers, rs)
	}
	if held, pid, err := q.WriterStatus(); err == nil {
		info.WriterLockHeld, info.WriterPID = held, pid
	}
	if tag, ok, err := q.CommitTag(); err == nil && ok {
		info.CommitTag = &tag
	}
	return info, nil
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
	switch {
	case s.WriterLockHeld && s.WriterPID != 0:
		row("writer", "lock held by pid %d", s.WriterPID)
	case s.WriterLockHeld:
		row("writer", "lock held (pid unknown)")
	default:
		row("writer", "none")
	}
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
