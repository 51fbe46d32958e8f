package shmio

import (
	"fmt"
	"time"
)

// LogStat is what `shmio stat` shows of a log: its header, fill level, frames and writer. Its
// JSON form is the command's --json output.
type LogStat struct {
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
	CommittedEnd   int64   `json:"committed_end"` // file offset of the committed end
	Committed      int64   `json:"committed_bytes"`
	FillPercent    float64 `json:"fill_percent"`
	MaxPayload     int     `json:"max_payload"`
	Frames         int64   `json:"frames"`
	FirstCursor    *int64  `json:"first_cursor"` // nil when empty
	LastCursor     *int64  `json:"last_cursor"`
	Sealed         bool    `json:"sealed"`
	WriterLockHeld bool    `json:"writer_lock_held"`
	WriterPID      int     `json:"writer_pid,omitempty"`
	LastWriterPID  int     `json:"last_writer_pid,omitempty"`
	ReadersWaiting uint32  `json:"readers_waiting"`
	CommitTag      *uint64 `json:"commit_tag,omitempty"`
	Corrupt        string  `json:"corrupt,omitempty"` // the first problem Verify found
}

// Stat walks the frames committed when it starts (a busy writer cannot keep it walking) and
// reports the log. A damaged log is no error: Corrupt says where, and the counts stop there.
func (l *Log) Stat() (LogStat, error) {
	h := l.Header()
	s := LogStat{Path: l.Path(), WideFrames: h.WideFrames, NodeCompatible: !h.WideFrames, Version: h.Version,
		HeaderSize: h.HeaderSize, DataOffset: h.DataOffset, Capacity: h.Capacity, DataCapacity: h.Capacity - h.DataOffset,
		MaxPayload: l.MaxPayload(), Sealed: h.Sealed, LastWriterPID: h.WriterPID, ReadersWaiting: h.Waiters}
	if h.ID != 0 {
		s.ID = fmt.Sprintf("%016x", h.ID)
	}
	switch {
	case h.NodeFormat:
		s.Format = "node"
	case h.WideFrames:
		s.Format = "shmio-go-wide"
	default:
		s.Format = "shmio-go"
	}
	if tag, ok, err := l.CommitTag(); err == nil && ok {
		s.CommitTag = &tag
	}
	if held, pid, err := l.WriterStatus(); err == nil {
		s.WriterLockHeld, s.WriterPID = held, pid
	}
	res, err := l.Verify()
	if len(res.Problems) > 0 {
		s.Corrupt = res.Problems[0].String()
	} else if err != nil {
		return s, err
	}
	s.Committed, s.CommittedEnd, s.Frames = res.End, res.End+h.DataOffset, res.Frames
	if s.DataCapacity > 0 {
		s.FillPercent = float64(res.End) * 100 / float64(s.DataCapacity)
	}
	if s.Frames > 0 {
		last, err := l.lastGoodCursor(res)
		if err != nil {
			return s, err
		}
		first := int64(0)
		s.FirstCursor, s.LastCursor = &first, &last
	}
	return s, nil
}

// lastGoodCursor is the cursor of the last frame Verify found good: one step back from the end,
// or on a damaged log, the last frame before the damage (where no backward step can start).
func (l *Log) lastGoodCursor(res VerifyResult) (int64, error) {
	start := int64(0)
	if len(res.Problems) == 0 {
		start = res.Bytes
	}
	it, err := l.NewIterator(IteratorOptions{StartCursor: start})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if len(res.Problems) == 0 {
		f, err := it.PrevFrame()
		return f.Cursor, err
	}
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

// QueueStat is what `shmio stat` shows of a queue: its segments, retention, named readers and
// writer. Its JSON form is the command's --json output.
type QueueStat struct {
	Path           string            `json:"path"`
	Kind           string            `json:"kind"` // "queue"
	SegmentSize    int64             `json:"segment_size"`
	MaxPayload     int               `json:"max_payload"`
	Retention      RetentionPolicy   `json:"retention"`
	RetentionText  string            `json:"retention_text"`
	Segments       []SegmentStat     `json:"segments"`
	TotalBytes     int64             `json:"total_file_bytes"`
	Committed      int64             `json:"committed_bytes"`
	FirstCursor    int64             `json:"first_cursor"`
	Readers        []NamedReaderStat `json:"readers"`
	WriterLockHeld bool              `json:"writer_lock_held"`
	WriterPID      int               `json:"writer_pid,omitempty"`
	CommitTag      *uint64           `json:"commit_tag,omitempty"`
}

// SegmentStat is one segment in QueueStat.
type SegmentStat struct {
	Number    int64  `json:"number"`
	Path      string `json:"path"`
	FileSize  int64  `json:"file_size"`
	Committed int64  `json:"committed_bytes"`
	Sealed    bool   `json:"sealed"`
	State     string `json:"state"` // sealed, head (being written) or prepared (made ahead, empty)
	Created   string `json:"created,omitempty"`
	SealedAt  string `json:"sealed_at,omitempty"`
	Error     string `json:"error,omitempty"`
	Err       error  `json:"-"` // the error Error describes
}

// NamedReaderStat is one named reader in QueueStat.
type NamedReaderStat struct {
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
	Err       error   `json:"-"` // the error Error describes
}

// Stat reports the queue's segments, retention, named readers and writer.
func (q *Queue) Stat() (QueueStat, error) {
	s := QueueStat{Path: q.Dir(), Kind: "queue", SegmentSize: q.SegmentSize(), MaxPayload: q.MaxPayload(),
		Segments: []SegmentStat{}, Readers: []NamedReaderStat{}}
	if qi, err := q.Info(); err == nil {
		s.Retention = qi.Retention
		if qi.SegmentSize != 0 {
			s.SegmentSize = qi.SegmentSize
		}
	}
	s.RetentionText = s.Retention.String()
	segs, err := q.Segments()
	if err != nil {
		return s, err
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	headSeen := false
	for i, g := range segs {
		ss := SegmentStat{Number: g.Number, Path: g.Path, FileSize: g.FileSize, Committed: g.Committed,
			Sealed: g.Sealed, Created: stamp(g.Created), SealedAt: stamp(g.SealedAt), Err: g.Err}
		switch {
		case g.Sealed:
			ss.State = "sealed"
		case !headSeen:
			ss.State, headSeen = "head", true
		default:
			ss.State = "prepared"
		}
		if g.Err != nil {
			ss.Error = g.Err.Error()
		}
		if i == 0 {
			s.FirstCursor = g.FirstCursor
		}
		s.TotalBytes += g.FileSize
		s.Committed += g.Committed
		s.Segments = append(s.Segments, ss)
	}
	readers, err := q.Readers()
	if err != nil {
		return s, err
	}
	for _, r := range readers {
		seg, off := SplitQueueCursor(r.Cursor)
		rs := NamedReaderStat{Name: r.Name, Cursor: r.Cursor, Segment: seg, Offset: off, Active: r.Active, PID: r.PID,
			LagFrames: r.LagFrames, LagBytes: r.LagBytes, LagSecs: r.Lag.Seconds(), Err: r.Err}
		if r.Err != nil {
			rs.Error = r.Err.Error()
		}
		s.Readers = append(s.Readers, rs)
	}
	if held, pid, err := q.WriterStatus(); err == nil {
		s.WriterLockHeld, s.WriterPID = held, pid
	}
	if tag, ok, err := q.CommitTag(); err == nil && ok {
		s.CommitTag = &tag
	}
	return s, nil
}
