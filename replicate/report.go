package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shmio/shmio"
)

// Report is the printable form of Status (its JSON is what `shmio replicate status --json`
// prints): cursors, distances, lags in milliseconds, rates between two looks, and the
// thresholds passed.
type Report struct {
	Stream   StreamReport `json:"stream"`
	Push     *PushReport  `json:"push,omitempty"`
	Pull     *PullReport  `json:"pull,omitempty"`
	Exceeded []string     `json:"exceeded,omitempty"` // thresholds passed (MaxLag, MaxBehind)
}

// StreamReport describes the stream.
type StreamReport struct {
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
}

// PushReport is how far the stream is behind the source.
type PushReport struct {
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

// PullReport is how far the destination is behind the stream.
type PullReport struct {
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

// ReportOptions names the sides for the report and sets its thresholds.
type ReportOptions struct {
	Log, PullLog string // paths shown for the push and pull sides
	PullExists   bool   // false: the pulled log does not exist yet
	// Interval > 0 looks twice, this far apart, and reports the rates between the looks.
	Interval  time.Duration
	MaxLag    time.Duration // a side lagging more passes the threshold (0: no limit)
	MaxBehind int64         // a side more frames behind passes the threshold (0: no limit)
}

// GetReport takes Status once (or twice, Interval apart) and turns it into a Report.
func GetReport(ctx context.Context, o StatusOptions, ro ReportOptions) (*Report, error) {
	if err := o.resolveDest(); err != nil {
		return nil, err
	}
	st, err := GetStatus(ctx, o)
	if err != nil {
		return nil, err
	}
	var prev *Status
	if ro.Interval > 0 {
		prev = st
		if !sleepCtx(ctx, ro.Interval) {
			return nil, ctx.Err()
		}
		if st, err = GetStatus(ctx, o); err != nil {
			return nil, err
		}
	}
	return NewReport(st, prev, o, ro), nil
}

// NewReport turns st (and an earlier look prev, if not nil, for the rates) into a Report.
func NewReport(st, prev *Status, o StatusOptions, ro ReportOptions) *Report {
	out := &Report{Exceeded: Exceeded(st, ro.MaxLag, ro.MaxBehind)}
	s := &out.Stream
	s.Name, s.Subjects, s.Replicas, s.Storage = st.Stream.Name, st.Stream.Subjects, st.Stream.Replicas, strings.ToLower(st.Stream.Storage)
	s.Messages, s.Bytes, s.FirstSeq, s.LastSeq = st.Stream.Msgs, st.Stream.Bytes, st.Stream.FirstSeq, st.Stream.LastSeq
	if st.Stream.LastEnd >= 0 {
		s.LastLogID = fmt.Sprintf("%016x", st.Stream.LastLogID)
		s.LastEnd = ptr(st.Stream.LastEnd)
	}
	s.Leader, s.Current, s.Unavailable = st.Stream.Leader, st.Stream.CurrentReplicas, st.Stream.UnhealthyReplicas
	if prev != nil {
		s.MsgsPerSec = rate(float64(st.Stream.LastSeq)-float64(prev.Stream.LastSeq), prev.Time, st.Time)
		s.BytesPerSec = rate(float64(st.Stream.Bytes)-float64(prev.Stream.Bytes), prev.Time, st.Time)
	}
	if p := st.Push; p != nil {
		out.Push = &PushReport{Log: ro.Log, LogID: fmt.Sprintf("%016x", p.LogID), Committed: p.Committed, StreamEnd: p.StreamEnd,
			BehindFrames: p.BehindFrames, BehindBytes: p.BehindBytes, Foreign: p.ForeignStream, LagMillis: millis(p.Lag)}
		if p.FileCursor >= 0 {
			out.Push.CursorFile = ptr(p.FileCursor)
		}
		if prev != nil && prev.Push != nil && o.Source != nil && p.StreamEnd >= prev.Push.StreamEnd {
			if n, _, err := o.Source.Distance(prev.Push.StreamEnd, p.StreamEnd); err == nil {
				out.Push.FramesPerSec = rate(float64(n), prev.Time, st.Time)
			}
		}
	}
	if p := st.Pull; p != nil {
		out.Pull = &PullReport{Log: ro.PullLog, Exists: ro.PullExists, BehindMessages: p.BehindMsgs, Durable: o.Durable, LagMillis: millis(p.Lag)}
		if p.TagOK {
			out.Pull.Tag = ptr(p.Tag)
		}
		if p.BehindBytes >= 0 {
			out.Pull.BehindBytes = ptr(p.BehindBytes)
		}
		if p.BehindFrames >= 0 {
			out.Pull.BehindFrames = ptr(p.BehindFrames)
		}
		if prev != nil && prev.Pull != nil {
			out.Pull.MsgsPerSec = rate(float64(p.Tag)-float64(prev.Pull.Tag), prev.Time, st.Time)
		}
		if p.ConsumerExists {
			out.Pull.ConsumerPending, out.Pull.ConsumerUnacked = ptr(p.ConsumerPending), ptr(p.ConsumerAckWait)
		}
	}
	return out
}

// Exceeded lists the thresholds a side passes: lag over maxLag, more than maxBehind frames (or
// stream messages, when the pull side's frames are unknown). Zero limits are off.
func Exceeded(st *Status, maxLag time.Duration, maxBehind int64) []string {
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

// StoreID is the identity of a log or queue (the pusher's message ids, the puller's default
// durable consumer).
func StoreID(s shmio.Store) uint64 {
	switch v := s.(type) {
	case *shmio.Log:
		return v.Header().ID
	case *shmio.Queue:
		return v.ID()
	}
	return 0
}

// DefaultDurable is the puller's durable consumer for the destination with identity id.
func DefaultDurable(id uint64) string { return fmt.Sprintf("shmio-pull-%016x", id) }

func ptr[T any](v T) *T { return &v }

func rate(delta float64, from, to time.Time) *float64 { return ptr(delta / to.Sub(from).Seconds()) }

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ErrForeignFrames: a destination holds frames without a commit tag, so pull did not write them.
var ErrForeignFrames = errors.New("holds frames that pull did not write (no commit tag); pull into a new or empty log or queue")

// DestTag is the commit tag a puller resumes after in dst: its commit tag, or 0 when dst is
// empty. A destination holding frames but no tag is refused with ErrForeignFrames.
func DestTag(dst shmio.Store) (uint64, error) {
	tag, ok, err := dst.CommitTag()
	if err != nil || ok {
		return tag, err
	}
	it, err := dst.OpenReader(shmio.IteratorOptions{})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	f, err := it.NextFrame()
	if err == nil && f.Data != nil {
		err = ErrForeignFrames
	}
	return 0, err
}
