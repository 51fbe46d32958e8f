package bendec

import (
	"fmt"
	"strconv"
	"strings"
)

// TrimNUL returns b without its trailing NUL bytes: a char array's string, as bendec's ascii
// and utf8 readers read it. It does not copy.
func TrimNUL(b []byte) []byte { return trimNUL(b) }

// SetString copies s into a char array and zero-fills the rest; a string longer than the array
// is ErrValue and leaves dst unchanged.
func SetString(dst []byte, s string) error {
	if len(s) > len(dst) {
		return verr(ErrValue, "string of %d bytes, room for %d", len(s), len(dst))
	}
	clear(dst[copy(dst, s):])
	return nil
}

// ShortFrameError is the error generated code returns for a frame shorter than its type.
func ShortFrameError(typeName string, need, got int) error {
	return verr(ErrShortFrame, "%s needs %d bytes, got %d", typeName, need, got)
}

// UnknownVariantError is the error generated code returns for a union discriminator naming no
// member.
func UnknownVariantError(typeName string, value int64) error {
	return verr(ErrUnknownVariant, "%s: discriminator %d names no member", typeName, value)
}

// valueError is an error about a value inside a type. It reads "<sentinel>: <path>: <detail>",
// for example "bendec: value matches no enum variant: LogEvent.level: Level has no variant 9",
// and unwraps to the sentinel.
type valueError struct {
	sentinel error
	path     []string // innermost first
	detail   string
}

func (e *valueError) Error() string {
	var b strings.Builder
	b.WriteString(e.sentinel.Error())
	if len(e.path) > 0 {
		b.WriteString(": ")
		for i := len(e.path) - 1; i >= 0; i-- {
			if i < len(e.path)-1 && !strings.HasPrefix(e.path[i], "[") {
				b.WriteByte('.')
			}
			b.WriteString(e.path[i])
		}
	}
	if e.detail != "" {
		b.WriteString(": ")
		b.WriteString(e.detail)
	}
	return b.String()
}

func (e *valueError) Unwrap() error { return e.sentinel }

func verr(sentinel error, format string, args ...any) error {
	return &valueError{sentinel: sentinel, detail: fmt.Sprintf(format, args...)}
}

// at puts err inside the field or type seg.
func at(err error, seg string) error {
	if ve, ok := err.(*valueError); ok {
		ve.path = append(ve.path, seg)
		return ve
	}
	return fmt.Errorf("%s: %w", seg, err)
}

func atIndex(err error, i int) error { return at(err, "["+strconv.Itoa(i)+"]") }
