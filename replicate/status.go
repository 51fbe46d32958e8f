package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

// StatusOptions says what to inspect. The stream is always inspected; the push side when Source
// is set, the pull side when Pull is set.
type StatusOptions struct {
	Conn   *nats.Conn
	Stream string

	Source     Source // the source log, positioned anywhere; Status moves its cursor
	LogID      uint64 // the source log's identity
	CursorFile string // the pusher's cursor file, if any

	Pull    bool
	Tag     uint64 // the destination log's commit tag
	TagOK   bool   // false: the destination log has no tag (nothing pulled yet)
	Durable string // the puller's durable consumer, if any
}

// StreamStatus describes the stream.
type StreamStatus struct {
	Name              string
	Subjects          []string
	Replicas          int
	Storage           string
	Msgs, Bytes       uint64
	FirstSeq, LastSeq uint64
	LastLogID         uint64 // source log of the last message (0 if unknown)
	LastCursor        int64  // source cursor of the last message (-1 if unknown)
	Leader            string
	CurrentReplicas   int // replicas (leader included) that are current
	UnhealthyReplicas int // replicas offline or lagging
}

// PushStatus is how far the stream is behind the source log.
type PushStatus struct {
	LogID         uint64
	Committed     int64 // committed end of the source log
	StreamEnd     int64 // source cursor after the stream's last frame of this log (0 if none)
	FileCursor    int64 // cursor in the cursor file (-1 without one)
	BehindFrames  int64 // committed frames not in the stream yet
	BehindBytes   int64 // their size in the source log (payloads and frame lengths)
	ForeignStream bool  // the stream's last message comes from another log
}

// PullStatus is how far the destination log is behind the stream.
type PullStatus struct {
	Tag             uint64 // stream sequence of the last message in the log
	TagOK           bool   // false: the log has no commit tag (nothing pulled yet)
	BehindMsgs      uint64 // stream messages after the tag
	BehindBytes     int64  // their size in the source log's cursor space (-1 if unknown)
	ConsumerPending uint64 // the durable's undelivered messages (when it exists)
	ConsumerAckWait uint64 // the durable's delivered but unacknowledged messages
	ConsumerExists  bool
}

// Status is the answer of GetStatus.
type Status struct {
	Stream StreamStatus
	Push   *PushStatus
	Pull   *PullStatus
}

// GetStatus reports how far behind each side is.
func GetStatus(ctx context.Context, o StatusOptions) (*Status, error) {
	js, err := jetstream.New(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("replicate: %w", err)
	}
	s, err := js.Stream(ctx, o.Stream)
	if err != nil {
		return nil, fmt.Errorf("replicate: stream %s: %w", o.Stream, err)
	}
	info := s.CachedInfo()
	st := &Status{Stream: StreamStatus{
		Name: info.Config.Name, Subjects: info.Config.Subjects, Replicas: info.Config.Replicas,
		Storage: info.Config.Storage.String(), Msgs: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, LastCursor: -1,
	}}
	if ci := info.Cluster; ci != nil {
		st.Stream.Leader = ci.Leader
		if ci.Leader != "" {
			st.Stream.CurrentReplicas++
		}
		for _, r := range ci.Replicas {
			if r.Current && !r.Offline {
				st.Stream.CurrentReplicas++
			} else {
				st.Stream.UnhealthyReplicas++
			}
		}
	}
	var last *framePos
	if info.State.LastSeq > 0 {
		if last, err = readPos(ctx, s, info.State.LastSeq); err != nil {
			return nil, err
		}
		if last != nil {
			st.Stream.LastLogID, st.Stream.LastCursor = last.logID, last.start
		}
	}
	if o.Source != nil {
		if st.Push, err = pushStatus(o, last); err != nil {
			return nil, err
		}
	}
	if o.Pull {
		if st.Pull, err = pullStatus(ctx, s, o, info, last); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// framePos is where a stream message's frame sits in the source log.
type framePos struct {
	logID uint64
	start int64
	size  int // payload length
}

// readPos loads message seq's position; nil when it is gone or carries no shmio id.
func readPos(ctx context.Context, s jetstream.Stream, seq uint64) (*framePos, error) {
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replicate: read message %d: %w", seq, err)
	}
	id, cur, err := ParseMsgID(raw.Header.Get(jetstream.MsgIDHeader))
	if err != nil {
		return nil, nil
	}
	if h := raw.Header.Get(HeaderCursor); h != "" {
		if c, err := strconv.ParseInt(h, 10, 64); err == nil {
			cur = c
		}
	}
	return &framePos{logID: id, start: cur, size: len(raw.Data)}, nil
}

func pushStatus(o StatusOptions, last *framePos) (*PushStatus, error) {
	ps := &PushStatus{LogID: o.LogID, Committed: o.Source.End(), FileCursor: -1}
	if o.CursorFile != "" {
		cs, ok, err := ReadCursorFile(o.CursorFile)
		if err != nil {
			return nil, err
		}
		if ok {
			ps.FileCursor = cs.Cursor
		}
	}
	from := int64(0)
	switch {
	case last == nil:
		from = max(ps.FileCursor, 0)
	case last.logID != o.LogID:
		ps.ForeignStream = true
		from = max(ps.FileCursor, 0)
	default:
		if _, err := o.Source.Seek(last.start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("replicate: the stream's last frame (cursor %d) is not in this log: %w", last.start, err)
		}
		if _, err := o.Source.NextBatch(nil, shmio.BatchOptions{MaxFrames: 1}); err != nil {
			return nil, fmt.Errorf("replicate: read source at %d: %w", last.start, err)
		}
		from = o.Source.Cursor()
		ps.StreamEnd = from
	}
	if _, err := o.Source.Seek(from, io.SeekStart); err != nil {
		return nil, fmt.Errorf("replicate: seek source to %d: %w", from, err)
	}
	var batch [][]byte
	for {
		var err error
		batch, err = o.Source.NextBatch(batch[:0], shmio.BatchOptions{MaxFrames: 4096, MaxBytes: 4 << 20})
		if err != nil {
			return nil, fmt.Errorf("replicate: count source frames: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		ps.BehindFrames += int64(len(batch))
	}
	ps.BehindBytes = o.Source.Cursor() - from
	return ps, nil
}

func pullStatus(ctx context.Context, s jetstream.Stream, o StatusOptions, info *jetstream.StreamInfo, last *framePos) (*PullStatus, error) {
	ps := &PullStatus{BehindBytes: -1}
	ps.Tag, ps.TagOK = o.Tag, o.TagOK
	if info.State.LastSeq > ps.Tag {
		ps.BehindMsgs = info.State.LastSeq - ps.Tag
	}
	if o.Durable != "" {
		c, err := s.Consumer(ctx, o.Durable)
		if err == nil {
			ci := c.CachedInfo()
			ps.ConsumerExists, ps.ConsumerPending, ps.ConsumerAckWait = true, ci.NumPending, uint64(ci.NumAckPending)
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("replicate: consumer %s: %w", o.Durable, err)
		}
	}
	switch {
	case ps.BehindMsgs == 0:
		ps.BehindBytes = 0
	case last == nil:
	case ps.Tag > 0:
		// end(last) - end(tag); the per-frame overhead cancels out.
		if t, err := readPos(ctx, s, ps.Tag); err == nil && t != nil {
			ps.BehindBytes = last.start + int64(last.size) - t.start - int64(t.size)
		}
	default:
		// Nothing pulled: from the first message's start to the last one's end, with the frame
		// overhead taken from two neighbouring messages.
		first, err := readPos(ctx, s, info.State.FirstSeq)
		if err != nil || first == nil {
			break
		}
		overhead := int64(4)
		if info.State.LastSeq > info.State.FirstSeq {
			if second, err := readPos(ctx, s, info.State.FirstSeq+1); err == nil && second != nil {
				overhead = second.start - first.start - int64(first.size)
			}
		}
		ps.BehindBytes = last.start + int64(last.size) + overhead - first.start
	}
	return ps, nil
}
