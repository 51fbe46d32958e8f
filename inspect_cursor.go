package shmio

// Cursors and damaged frames as the shmio command takes and shows them (see inspect.go).

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseCursor parses a cursor as a person writes it: a decimal number, or for a queue (queue
// true) also SEGMENT:OFFSET, the two halves of a queue cursor (see QueueCursor and FORMAT.md).
// Errors wrap ErrCursor.
func ParseCursor(s string, queue bool) (int64, error) {
	s = strings.TrimSpace(s)
	if a, b, ok := strings.Cut(s, ":"); ok && queue {
		seg, err1 := strconv.ParseInt(a, 10, 64)
		off, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil && seg >= 0 && off >= 0 && seg <= 1<<31-1 && off <= 1<<32-1 {
			return QueueCursor(seg, off), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: invalid cursor %q", ErrCursor, s)
	}
	return n, nil
}

// FrameProblemAt is FrameProblem as a Problem, placed at the frame's cursor and file offset
// (Kind ProblemFrameEnd when ending). Its What is "" when the frame's lengths look right: the
// caller then says what the read reported.
func (l *Log) FrameProblemAt(c int64, ending bool) Problem {
	p := Problem{Kind: ProblemFrame, Segment: -1, Cursor: c, Offset: l.lo.dataOffset + c, What: l.FrameProblem(c, ending)}
	if ending {
		p.Kind = ProblemFrameEnd
	}
	return p
}
