package shmio

import (
	"fmt"
	"runtime/debug"
)

// What tools (the shmio command) show an operator about a log or queue, computed here so that
// they never read frame lengths or name files themselves.

// FrameProblem says what is wrong with the frame at cursor c (or, when ending, with the frame
// that ends at c, read from its trailing length as Prev reads it), in terms an operator can check
// with a hex dump; "" when its lengths look right. Tools call it to explain an ErrCorrupt from a
// read. It reads the mapping under a fault guard.
func (l *Log) FrameProblem(c int64, ending bool) (what string) {
	if l.closed.Load() {
		return ""
	}
	var err error
	defer func() {
		if err != nil {
			what = err.Error()
		}
	}()
	defer recoverFault(debug.SetPanicOnFault(true), "check frame", l.path, c, &err)
	mem, base, ls := l.mem, int(l.lo.dataOffset), l.lo.lenSize
	end := min(int(l.size.Load()), len(mem))
	if c < 0 || c > int64(end-base) {
		return fmt.Sprintf("cursor %d is outside the committed data [0, %d]", c, end-base)
	}
	if ending {
		return frameEndCheck(mem, base, base+int(c), ls)
	}
	return frameCheck(mem, base, end, base+int(c), ls)
}

// Bytes returns a copy of up to n bytes of the log from cursor c on (fewer at the end of the
// file), for showing an operator what sits at a damaged place.
func (l *Log) Bytes(c int64, n int) (b []byte, err error) {
	if l.closed.Load() {
		return nil, newError("bytes", l.path, -1, ErrClosed)
	}
	defer recoverFault(debug.SetPanicOnFault(true), "bytes", l.path, c, &err)
	pos := l.lo.dataOffset + c
	if c < 0 || pos > int64(len(l.mem)) {
		return nil, errorf("bytes", l.path, pos, ErrCursor, "cursor %d is outside the file", c)
	}
	return append([]byte(nil), l.mem[pos:min(pos+int64(n), int64(len(l.mem)))]...), nil
}

// SegmentPath is the file of segment n in the queue's directory.
func (q *Queue) SegmentPath(n int64) string { return q.segPath(n) }

// FitPayload is the largest payload one frame can carry in this log's file: MaxPayload, or less
// when the data area is smaller (a wide log's format allows frames of up to 4 GiB).
func (l *Log) FitPayload() int {
	return int(max(0, min(int64(l.MaxPayload()), l.Header().Capacity-l.lo.dataOffset-int64(l.lo.overhead()))))
}
