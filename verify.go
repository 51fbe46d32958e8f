package shmio

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
)

// VerifyResult is what Log.Verify or Queue.Verify found.
type VerifyResult struct {
	Segments int   // segments checked (a queue; 0 for a log)
	Head     int64 // the segment being written (a queue; -1 for a log, and for a sealed queue)
	// Sealed: the queue ends (QueueWriter.Seal): its last segment is sealed and none follows.
	// A roll makes the next segment before it seals the last one, so only Seal leaves this.
	Sealed bool
	Frames int64 // frames checked before the first damage (in a queue, summed over segments)
	Bytes  int64 // bytes of those frames, length fields included
	// End is the committed end a log's walk checked up to: frames committed later are not checked.
	End int64
	// TailFrames frames of a damaged log, from cursor TailStart up to End, are intact read
	// backward from the end with the trailing lengths, as a reader recovering from the end reads.
	TailFrames, TailStart int64
	Problems              []Problem // empty when consistent; a queue's in the order of its segments
}

// ProblemKind says what a Problem is about.
type ProblemKind uint8

const (
	ProblemFrame    ProblemKind = iota + 1 // the frame starting at Cursor, read forward
	ProblemFrameEnd                        // the frame ending at Cursor, read backward from its trailing length
	ProblemSegment                         // a queue segment's header or place in the chain
	ProblemChain                           // the queue as a whole (segments missing, no head)
	ProblemRead                            // a segment Verify could not read (not proof of damage)
)

// Problem is one thing Verify found wrong, located so that a tool can point at it without
// parsing the message or re-reading the file.
type Problem struct {
	Kind ProblemKind
	// Segment is the number of the queue segment at fault, -1 for a log or when the problem is
	// about the queue as a whole.
	Segment int64
	// Cursor is the cursor of the damaged frame (a queue cursor in a queue; for ProblemFrameEnd
	// the cursor where the frame ends), -1 when the problem is not about a frame.
	Cursor int64
	// Offset is that place's offset in the log or segment file, -1 when none applies.
	Offset int64
	// What says what is wrong, without the location.
	What string
	// Err wraps ErrCorrupt (ErrBadHeader for an unreadable header) when the store is damaged, or
	// the I/O error that kept Verify from checking a segment.
	Err error
}

// String gives the problem with its location: "segment 3: frame at queue cursor 12884902023
// (offset 135, file offset 327): head length 40 but tail length 12336 (asymmetric frame)", or for
// a log "frame at cursor 9 (file offset 201): length 3 is smaller than the smallest frame (5 bytes)".
func (p Problem) String() string {
	var b strings.Builder
	if p.Segment >= 0 {
		fmt.Fprintf(&b, "segment %d: ", p.Segment)
	}
	if p.Cursor >= 0 {
		switch {
		case p.Segment >= 0:
			_, off := SplitQueueCursor(p.Cursor)
			fmt.Fprintf(&b, "frame at queue cursor %d (offset %d", p.Cursor, off)
		case p.Kind == ProblemFrameEnd:
			fmt.Fprintf(&b, "frame ending at cursor %d (", p.Cursor)
		default:
			fmt.Fprintf(&b, "frame at cursor %d (", p.Cursor)
		}
		if p.Offset >= 0 {
			if p.Segment >= 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "file offset %d", p.Offset)
		}
		b.WriteString("): ")
	}
	switch {
	case p.What != "":
		b.WriteString(p.What)
	case p.Err != nil:
		b.WriteString(p.Err.Error())
	}
	return b.String()
}

// damage reports whether the problem is damage to the store rather than a failure to read it.
func (p Problem) damage() bool {
	return errors.Is(p.Err, ErrCorrupt) || errors.Is(p.Err, ErrBadHeader)
}

// Verify walks every committed frame forward from the first, checking that each frame's two
// lengths agree and that the chain of frames ends exactly at the committed end; whatever
// DebugChecks says. Then the backward walk a reader recovering from the end makes visits the same
// frames, so it is walked only when the forward walk found damage, to report how much of the end
// is still intact (TailFrames). The error wraps ErrCorrupt when the log is damaged. Safe on a
// live log: frames committed after Verify started are not checked.
func (l *Log) Verify() (res VerifyResult, err error) {
	res.Head = -1
	if l.closed.Load() {
		return res, newError("verify", l.path, -1, ErrClosed)
	}
	defer recoverFault(debug.SetPanicOnFault(true), "verify", l.path, -1, &err)
	mem, base, ls := l.mem, int(l.lo.dataOffset), l.lo.lenSize
	end := int(l.size.Load())
	if end < base || end > len(mem) {
		what := fmt.Sprintf("committed end %d outside the data [%d, %d]", end, base, len(mem))
		res.Problems = append(res.Problems, Problem{Kind: ProblemFrame, Segment: -1, Cursor: -1, Offset: -1, What: what,
			Err: errorf("verify", l.path, int64(end), ErrCorrupt, "%s", what)})
		return res, res.Problems[0].Err
	}
	res.End = int64(end - base)
	pos := base
	for pos < end {
		if what := frameCheck(mem, base, end, pos, ls); what != "" {
			l.addProblem(&res, ProblemFrame, pos, what)
			break
		}
		pos += lenAt(mem, pos, ls)
		res.Frames++
	}
	res.Bytes = int64(pos - base)
	if len(res.Problems) == 0 {
		return res, nil
	}
	back := end
	for back > base {
		what := frameEndCheck(mem, base, back, ls)
		if what != "" {
			l.addProblem(&res, ProblemFrameEnd, back, what)
			break
		}
		back -= lenAt(mem, back-ls, ls)
		res.TailFrames++
	}
	res.TailStart = int64(back - base)
	return res, errorf("verify", l.path, res.Problems[0].Offset, ErrCorrupt, "%s", res.Problems[0])
}

func (l *Log) addProblem(res *VerifyResult, kind ProblemKind, pos int, what string) {
	c := int64(pos) - l.lo.dataOffset
	res.Problems = append(res.Problems, Problem{Kind: kind, Segment: -1, Cursor: c, Offset: int64(pos), What: what,
		Err: errorf("verify", l.path, int64(pos), ErrCorrupt, "%s", what)})
}

// frameCheck says what is wrong with the frame at file offset pos of mem, whose data starts at
// base and whose committed end is end; "" when both lengths agree within the committed data.
// Offsets in the words are cursors (relative to base).
func frameCheck(mem []byte, base, end, pos, ls int) string {
	c := pos - base
	if pos < base || pos+ls > end {
		return fmt.Sprintf("length field at cursor %d runs past the committed end %d", c, end-base)
	}
	head := lenAt(mem, pos, ls)
	switch {
	case head < 2*ls+1:
		return fmt.Sprintf("length %d is smaller than the smallest frame (%d bytes)", head, 2*ls+1)
	case pos+head > end:
		return fmt.Sprintf("length %d runs past the committed end %d (the frame would end at %d)", head, end-base, c+head)
	}
	if tail := lenAt(mem, pos+head-ls, ls); tail != head {
		return fmt.Sprintf("head length %d but tail length %d (asymmetric frame)", head, tail)
	}
	return ""
}

// frameEndCheck is frameCheck for the frame ending at file offset pos, read from its trailing
// length first, as Prev does.
func frameEndCheck(mem []byte, base, pos, ls int) string {
	c := pos - base
	if pos-ls < base {
		return fmt.Sprintf("tail length field before cursor %d runs past the start of the data", c)
	}
	tail := lenAt(mem, pos-ls, ls)
	switch {
	case tail < 2*ls+1:
		return fmt.Sprintf("tail length %d of the frame ending at cursor %d is smaller than the smallest frame (%d bytes)", tail, c, 2*ls+1)
	case tail > c:
		return fmt.Sprintf("tail length %d of the frame ending at cursor %d reaches before the first frame", tail, c)
	}
	if head := lenAt(mem, pos-tail, ls); head != tail {
		return fmt.Sprintf("tail length %d points back to cursor %d, where the head length is %d (asymmetric frame)", tail, c-tail, head)
	}
	return ""
}

// frameDamage says what is wrong with the frame at file offset pos of l, which an iterator
// refused with err; it falls back to err's own words.
func frameDamage(l *Log, pos int, err error) string {
	if what := l.FrameProblem(int64(pos)-l.lo.dataOffset, false); what != "" {
		return what
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Err.Error()
	}
	return err.Error()
}
