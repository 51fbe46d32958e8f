package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

// StatusOptions says what to inspect. The stream is always inspected; the push side when Source
// is set, the pull side when Pull is set.
type StatusOptions struct {
	Conn   *nats.Conn
	Stream string

	Source     shmio.Store // the source log or queue
	LogID      uint64      // the source log's identity
	CursorFile string      // the pusher's cursor file, if any

	// Dest is the pulled log or queue, if it exists: it sets Pull, Tag, TagOK, and Durable
	// when empty (DefaultDurable of its identity).
	Dest    shmio.Store
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
	LastTime          time.Time // when the last message was stored
	LastLogID         uint64    // source log of the last message (0 if unknown)
	LastEnd           int64     // source cursor after the last message's run (-1 if unknown)
	Leader            string
	CurrentReplicas   int // replicas (leader included) that are current
	UnhealthyReplicas int // replicas offline or lagging
}

// PushStatus is how far the stream is behind the source log.
type PushStatus struct {
	LogID         uint64
	Committed     int64 // cursor of the source's committed end
	StreamEnd     int64 // source cursor after the stream's last run of this log (0 if none)
	FileCursor    int64 // cursor in the cursor file (-1 without one)
	BehindFrames  int64 // committed frames not in the stream yet
	BehindBytes   int64 // their size in the source (payloads and frame lengths)
	ForeignStream bool  // the stream's last message comes from another log
	// Lag is how long the stream has not grown while frames wait: the time since its last
	// message when BehindFrames > 0 (a lower bound on the oldest waiting frame's age), else 0.
	Lag time.Duration
}

// PullStatus is how far the destination log is behind the stream.
type PullStatus struct {
	Tag             uint64        // stream sequence of the last message in the log
	TagOK           bool          // false: the log has no commit tag (nothing pulled yet)
	BehindMsgs      uint64        // stream messages (runs of frames) after the tag
	BehindFrames    int64         // frames in them (-1 unknown: needs the source)
	BehindBytes     int64         // their size in the source's cursor space (-1 if unknown)
	Lag             time.Duration // age of the oldest message not pulled yet; 0 when caught up
	ConsumerPending uint64        // the durable's undelivered messages (when it exists)
	ConsumerAckWait uint64        // the durable's delivered but unacknowledged messages
	ConsumerExists  bool
}

// Status is the answer of GetStatus.
type Status struct {
	Time   time.Time // when it was taken
	Stream StreamStatus
	Push   *PushStatus
	Pull   *PullStatus
}

// GetStatus reports how far behind each side is.
func GetStatus(ctx context.Context, o StatusOptions) (*Status, error) {
	if err := o.resolveDest(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("replicate: %w", err)
	}
	s, err := js.Stream(ctx, o.Stream)
	if err != nil {
		return nil, fmt.Errorf("replicate: stream %s: %w", o.Stream, err)
	}
	info := s.CachedInfo()
	st := &Status{Time: time.Now(), Stream: StreamStatus{
		Name: info.Config.Name, Subjects: info.Config.Subjects, Replicas: info.Config.Replicas,
		Storage: info.Config.Storage.String(), Msgs: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, LastTime: info.State.LastTime, LastEnd: -1,
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
	var last *runPos
	if info.State.LastSeq > 0 {
		if last, err = readPos(ctx, s, info.State.LastSeq); err != nil {
			return nil, err
		}
		if last != nil {
			st.Stream.LastLogID, st.Stream.LastEnd = last.logID, last.end
		}
	}
	if o.Source != nil {
		if st.Push, err = pushStatus(o, st, last); err != nil {
			return nil, err
		}
	}
	if o.Pull {
		if st.Pull, err = pullStatus(ctx, s, o, st, last); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// resolveDest fills Pull, Tag, TagOK and Durable from Dest.
func (o *StatusOptions) resolveDest() error {
	if o.Dest == nil {
		return nil
	}
	o.Pull = true
	var err error
	if o.Tag, o.TagOK, err = o.Dest.CommitTag(); err != nil {
		return fmt.Errorf("replicate: %s: %w", o.Dest.Path(), err)
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable(StoreID(o.Dest))
	}
	return nil
}

// runPos is where a stream message's run sits in the source log.
type runPos struct {
	logID      uint64
	first, end int64 // end < 0: a pre-batching message, whose end needs the source
	data       []byte
	time       time.Time
}

// readPos loads message seq's position; nil when it is gone or carries no shmio id.
func readPos(ctx context.Context, s jetstream.Stream, seq uint64) (*runPos, error) {
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replicate: read message %d: %w", seq, err)
	}
	rh, err := parseRunHeader(raw.Header, raw.Header.Get(jetstream.MsgIDHeader))
	if err != nil {
		return nil, nil
	}
	return &runPos{logID: rh.logID, first: rh.first, end: rh.end, data: raw.Data, time: raw.Time}, nil
}

// endOf returns the source cursor after the run at pos, reading the source for a legacy message.
func endOf(src shmio.Store, pos *runPos) (int64, error) {
	if pos.end >= 0 {
		return pos.end, nil
	}
	it, err := src.OpenReader(shmio.IteratorOptions{})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if _, err := it.Seek(pos.first, io.SeekStart); err != nil {
		return 0, fmt.Errorf("replicate: the stream's frame at cursor %d is not in this log: %w", pos.first, err)
	}
	f, err := it.NextFrame()
	if err != nil || f.Data == nil {
		return 0, fmt.Errorf("replicate: read source at %d: %v", pos.first, err)
	}
	return f.End, nil
}

func pushStatus(o StatusOptions, st *Status, last *runPos) (*PushStatus, error) {
	end, err := o.Source.EndCursor()
	if err != nil {
		return nil, err
	}
	ps := &PushStatus{LogID: o.LogID, Committed: end, FileCursor: -1}
	if o.CursorFile != "" {
		cs, ok, err := ReadCursorFile(o.CursorFile)
		if err != nil {
			return nil, err
		}
		if ok {
			ps.FileCursor = cs.Cursor
		}
	}
	from := max(ps.FileCursor, 0)
	switch {
	case last == nil:
	case last.logID != o.LogID:
		ps.ForeignStream = true
	default:
		if from, err = endOf(o.Source, last); err != nil {
			return nil, err
		}
		ps.StreamEnd = from
	}
	if ps.BehindFrames, ps.BehindBytes, err = o.Source.Distance(from, -1); err != nil {
		return nil, fmt.Errorf("replicate: count source frames after cursor %d: %w", from, err)
	}
	if ps.BehindFrames > 0 && !st.Stream.LastTime.IsZero() {
		ps.Lag = max(st.Time.Sub(st.Stream.LastTime), 0)
	}
	return ps, nil
}

func pullStatus(ctx context.Context, s jetstream.Stream, o StatusOptions, st *Status, last *runPos) (*PullStatus, error) {
	ps := &PullStatus{BehindBytes: -1, BehindFrames: -1}
	ps.Tag, ps.TagOK = o.Tag, o.TagOK
	if st.Stream.LastSeq > ps.Tag {
		ps.BehindMsgs = st.Stream.LastSeq - ps.Tag
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
	if ps.BehindMsgs == 0 {
		ps.BehindBytes, ps.BehindFrames = 0, 0
		return ps, nil
	}
	// The oldest message not pulled says how old the copy is, and where its run starts.
	first, err := readPos(ctx, s, max(ps.Tag+1, st.Stream.FirstSeq))
	if err != nil {
		return nil, err
	}
	if first != nil {
		ps.Lag = max(st.Time.Sub(first.time), 0)
	}
	if first == nil || last == nil || first.logID != last.logID {
		return ps, nil
	}
	if o.Source != nil && o.LogID == last.logID {
		lastEnd, err := endOf(o.Source, last)
		if err != nil {
			return nil, err
		}
		if ps.BehindFrames, ps.BehindBytes, err = o.Source.Distance(first.first, lastEnd); err != nil {
			return nil, fmt.Errorf("replicate: count source frames from %d to %d: %w", first.first, lastEnd, err)
		}
		return ps, nil
	}
	// Without the source only a difference of cursors is known: right for a log, and for a
	// queue within one segment (whose number is the cursor's high half).
	if last.end >= 0 && first.first>>32 == last.end>>32 {
		ps.BehindBytes = last.end - first.first
	}
	return ps, nil
}
