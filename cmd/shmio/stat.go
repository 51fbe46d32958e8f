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

// statInfo is what stat reports; its JSON form is the --json output.
type statInfo struct {
	Path           string  `json:"path"`
	Format         string  `json:"format"` // "node", "shmio-go" or "shmio-go-wide"
	WideFrames     bool    `json:"wide_frames"`
	NodeCompatible bool    `json:"node_compatible"`
	Version        uint32  `json:"version"`
	ID             string  `json:"id,omitempty"`
	HeaderSize     int64   `json:"header_size"`
	DataOffset     int64   `json:"data_offset"`
	Capacity       int64   `json:"capacity"`
	DataCapacity   int64   `json:"data_capacity"`
	CommittedEnd   int64   `json:"committed_end"`
	Committed      int64   `json:"committed_bytes"`
	FillPercent    float64 `json:"fill_percent"`
	MaxPayload     int     `json:"max_payload"`
	Frames         int64   `json:"frames"`
	FirstCursor    *int64  `json:"first_cursor"`
	LastCursor     *int64  `json:"last_cursor"`
	Sealed         bool    `json:"sealed"`
	WriterLockHeld bool    `json:"writer_lock_held"`
	WriterPID      int     `json:"writer_pid,omitempty"`
	LastWriterPID  int     `json:"last_writer_pid,omitempty"`
	ReadersWaiting uint32  `json:"readers_waiting"`
	CommitTag      *uint64 `json:"commit_tag,omitempty"`
	Corrupt        string  `json:"corrupt,omitempty"`
}

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
	l, path := t.log, t.path
	h := l.Header()
	info := &statInfo{
		Path:           path,
		WideFrames:     h.WideFrames,
		NodeCompatible: !h.WideFrames,
		Version:        h.Version,
		HeaderSize:     h.HeaderSize,
		DataOffset:     h.DataOffset,
		Capacity:       h.Capacity,
		DataCapacity:   h.Capacity - h.DataOffset,
		MaxPayload:     l.MaxPayload(),
		Sealed:         h.Sealed,
		LastWriterPID:  h.WriterPID,
		ReadersWaiting: h.Waiters,
		ID:             logID(h),
	}
	switch {
	case h.NodeFormat:
		info.Format = "node"
	case h.WideFrames:
		info.Format = "shmio-go-wide"
	default:
		info.Format = "shmio-go"
	}
	if tag, ok, err := l.CommitTag(); err == nil && ok {
		info.CommitTag = &tag
	}
	if held, pid, err := l.WriterStatus(); err == nil {
		info.WriterLockHeld, info.WriterPID = held, pid
	}
	// The library walks what was committed when it started, so a busy writer cannot keep stat walking.
	res, err := l.Verify()
	if len(res.Problems) > 0 {
		info.Corrupt = res.Problems[0].String()
	} else if err != nil {
		return nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	end := res.End
	info.Committed, info.CommittedEnd, info.Frames = end, end+h.DataOffset, res.Frames
	if info.DataCapacity > 0 {
		info.FillPercent = float64(end) * 100 / float64(info.DataCapacity)
	}
	if info.Frames > 0 {
		last, err := lastCursor(l, res)
		if err != nil {
			return nil, fmt.Errorf("%s: %s", path, rootCause(err))
		}
		first := int64(0)
		info.FirstCursor, info.LastCursor = &first, &last
	}
	return info, nil
}

// lastCursor is the cursor of the last frame Verify found good: one step back from the end, or
// on a damaged log, the last frame before the damage (where no backward step can start).
func lastCursor(l *shmio.Log, res shmio.VerifyResult) (int64, error) {
	if len(res.Problems) == 0 {
		it, err := l.NewIterator(shmio.IteratorOptions{StartCursor: res.Bytes})
		if err != nil {
			return 0, err
		}
		defer it.Close()
		f, err := it.PrevFrame()
		return f.Cursor, err
	}
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var last int64
	for n := int64(0); n < res.Frames; n++ {
		f, err := it.NextFrame()
		if err != nil || f.Data == nil {
			return last, err
		}
		last = f.Cursor
	}
	return last, nil
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
	switch {
	case s.WriterLockHeld && s.WriterPID != 0:
		row("writer", "lock held by pid %d", s.WriterPID)
	case s.WriterLockHeld:
		row("writer", "lock held (pid unknown)")
	case s.LastWriterPID != 0:
		row("writer", "none (last writer pid %d did not close cleanly)", s.LastWriterPID)
	default:
		row("writer", "none")
	}
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

// percent prints a fill level with one decimal, never rounding a non-empty log down to 0.0%.
func percent(p float64) string {
	if p > 0 && p < 0.1 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", p)
}

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

func collectQueueStat(t *target) (*queueStatInfo, error) {
	q, dir := t.q, t.path
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
