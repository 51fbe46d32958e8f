package replicate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The replication message (a run of frames) is described in FORMAT.md, "Replication message".

// Header names carried by every replicated message.
const (
	// HeaderEncoding names the payload encoding; EncodingRuns is the only one this version writes.
	// A message without it is one frame, as written by versions before batching.
	HeaderEncoding = "Shmio-Enc"
	// HeaderEnd is the source cursor just past the run's last frame (decimal): where the next
	// message's run starts.
	HeaderEnd = "Shmio-End"
	// HeaderCursor is the source cursor of a pre-batching message's frame (decimal).
	HeaderCursor = "Shmio-Cursor"
)

// EncodingRuns is encoding 1: the payload is each frame as uvarint(length) then the payload.
const EncodingRuns = "1"

// ErrEncoding is returned by pull for a message in an encoding it does not know or a payload
// that does not decode; retrying cannot fix it.
var ErrEncoding = errors.New("replicate: message encoding")

// MsgID is the Nats-Msg-Id of the run starting at cursor in the log identified by logID.
func MsgID(logID uint64, cursor int64) string {
	b := make([]byte, 0, 40)
	b = appendHex16(b, logID)
	b = append(b, ':')
	b = strconv.AppendInt(b, cursor, 10)
	return string(b)
}

func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, digits[(v>>uint(i))&0xf])
	}
	return b
}

// ParseMsgID splits a Nats-Msg-Id made by MsgID.
func ParseMsgID(id string) (logID uint64, cursor int64, err error) {
	hexPart, curPart, ok := strings.Cut(id, ":")
	if !ok || len(hexPart) != 16 {
		return 0, 0, fmt.Errorf("replicate: message id %q is not <log id>:<cursor>", id)
	}
	if logID, err = strconv.ParseUint(hexPart, 16, 64); err != nil {
		return 0, 0, fmt.Errorf("replicate: message id %q: %w", id, err)
	}
	if cursor, err = strconv.ParseInt(curPart, 10, 64); err != nil || cursor < 0 {
		return 0, 0, fmt.Errorf("replicate: message id %q: bad cursor", id)
	}
	return logID, cursor, nil
}

// runHeader is what a message's headers say about the run it carries.
type runHeader struct {
	logID      uint64
	first, end int64 // end < 0: unknown (a pre-batching message: one frame)
	legacy     bool  // no Shmio-Enc: the payload is one raw frame
}

// headerGetter is nats.Header's Get, so both message kinds share parseRunHeader.
type headerGetter interface{ Get(string) string }

// parseRunHeader reads a message's id, encoding and end cursor.
func parseRunHeader(h headerGetter, msgID string) (runHeader, error) {
	logID, first, err := ParseMsgID(msgID)
	if err != nil {
		return runHeader{}, err
	}
	rh := runHeader{logID: logID, first: first, end: -1}
	switch enc := h.Get(HeaderEncoding); enc {
	case "":
		rh.legacy = true
		return rh, nil
	case EncodingRuns:
	default:
		return runHeader{}, fmt.Errorf("%w %q is unknown to this version (it reads %q): upgrade shmio on this side",
			ErrEncoding, enc, EncodingRuns)
	}
	end, err := strconv.ParseInt(h.Get(HeaderEnd), 10, 64)
	if err != nil || end < first {
		return runHeader{}, fmt.Errorf("%w: message %s has a bad %s header %q", ErrEncoding, msgID, HeaderEnd, h.Get(HeaderEnd))
	}
	rh.end = end
	return rh, nil
}

// appendFrame appends one frame to a run's payload.
func appendFrame(b, frame []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(frame)))
	return append(b, frame...)
}

// encodedSize is what appendFrame adds for a frame of n bytes.
func encodedSize(n int) int {
	s := 1
	for v := uint64(n); v >= 0x80; v >>= 7 {
		s++
	}
	return s + n
}

// nextFrame splits the first frame off a run's payload; ok is false at its end.
func nextFrame(b []byte) (frame, rest []byte, ok bool, err error) {
	if len(b) == 0 {
		return nil, nil, false, nil
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > uint64(len(b)-k) {
		return nil, nil, false, fmt.Errorf("%w: bad frame length in the payload", ErrEncoding)
	}
	return b[k : k+int(n)], b[k+int(n):], true, nil
}
