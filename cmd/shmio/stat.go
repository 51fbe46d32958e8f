package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

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
lock (and its pid), and how many readers are asleep waiting for frames.

Cursors are byte offsets from the first frame, as tail, dump and Node shmio use them.
stat only reads; it is safe on a live log (it counts the frames committed when it started).

Given a queue directory, stat lists its segments (number, size, committed bytes, sealed), the
retention policy, every named reader's lag in frames, bytes and time, and the writer.`,
		Example: `  shmio stat /dev/shm/events
  shmio stat --json /dev/shm/events | jq .fill_percent
  shmio stat /dev/shm/events.q`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if shmio.IsQueue(args[0]) {
				return runStatQueue(cmd, args[0], asJSON)
			}
			info, err := collectStat(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, info)
			}
			printStat(out, info)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object (for scripts)")
	return cmd
}

func collectStat(path string) (*statInfo, error) {
	l, err := openLog(path, false, true)
	if err != nil {
		return nil, err
	}
	defer l.Close()
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
	}
	switch {
	case h.NodeFormat:
		info.Format = "node"
	case h.WideFrames:
		info.Format = "shmio-go-wide"
	default:
		info.Format = "shmio-go"
	}
	info.ID = logID(h)
	if tag, ok, err := l.CommitTag(); err == nil && ok {
		info.CommitTag = &tag
	}
	if held, pid, err := l.WriterStatus(); err == nil {
		info.WriterLockHeld, info.WriterPID = held, pid
	}

	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	// Count what was committed when we started, so a busy writer cannot keep stat walking.
	end := it.End()
	info.Committed, info.CommittedEnd = end, end+h.DataOffset
	if info.DataCapacity > 0 {
		info.FillPercent = float64(end) * 100 / float64(info.DataCapacity)
	}
	bar := newTermProgress("counting frames", end)
	defer bar.finish()
	var last int64 = -1
	for it.Cursor() < end {
		c := it.Cursor()
		p, err := it.Next()
		if err != nil {
			info.Corrupt = describeCorrupt(path, h, c, end, err)
			break
		}
		if p == nil {
			break
		}
		last = c
		info.Frames++
		if info.Frames&0xfff == 0 {
			bar.update(c)
		}
	}
	if info.Frames > 0 {
		first := int64(0)
		info.FirstCursor, info.LastCursor = &first, &last
	}
	return info, nil
}

// describeCorrupt words a corrupt-frame error met at cursor c, preferring the raw diagnosis.
func describeCorrupt(path string, h shmio.Header, c, end int64, err error) string {
	if p := frameProblem(path, h, c, end); p != "" {
		return fmt.Sprintf("frame at cursor %d (file offset %d): %s", c, h.DataOffset+c, p)
	}
	return fmt.Sprintf("frame at cursor %d (file offset %d): %s", c, h.DataOffset+c, rootCause(err))
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
	row("readers waiting", "%d", s.ReadersWaiting)
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
