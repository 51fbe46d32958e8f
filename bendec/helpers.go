package bendec

import "fmt"

// TrimNUL returns b without its trailing NUL bytes: a char array's string, as bendec's ascii
// and utf8 readers read it. It does not copy.
func TrimNUL(b []byte) []byte { return trimNUL(b) }

// SetString copies s into a char array and zero-fills the rest; a string longer than the array
// is ErrValue and leaves dst unchanged.
func SetString(dst []byte, s string) error {
	if len(s) > len(dst) {
		return fmt.Errorf("%w: string of %d bytes, room for %d", ErrValue, len(s), len(dst))
	}
	clear(dst[copy(dst, s):])
	return nil
}

// ShortFrameError is the error generated code returns for a frame shorter than its type.
func ShortFrameError(typeName string, need, got int) error {
	return fmt.Errorf("%w: %s needs %d bytes, got %d", ErrShortFrame, typeName, need, got)
}

// UnknownVariantError is the error generated code returns for a union discriminator naming no
// member.
func UnknownVariantError(typeName string, value int64) error {
	return fmt.Errorf("%w: %s: discriminator %d names no member", ErrUnknownVariant, typeName, value)
}
