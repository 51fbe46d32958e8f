package bendec

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendJSON decodes a frame and appends it to dst as one JSON object (no newline), with the
// package's JSON mapping: struct fields in schema order, integers as exact JSON numbers, char
// arrays as strings, enums as variant names, bitflags as lists of names, unions as their member.
// It allocates nothing beyond growing dst. On error dst is returned unchanged.
func (t *Type) AppendJSON(dst []byte, frame []byte) ([]byte, error) {
	nd, err := t.member(frame)
	if err != nil {
		return dst, err
	}
	out, err := appendNode(dst, nd, frame)
	if err != nil {
		return dst, at(err, nd.name)
	}
	return out, nil
}

// DecodeJSON appends the frame decoded as the named type to dst as one JSON object; see
// Type.AppendJSON. Resolve the type once with Schema.Type in a loop.
func (s *Schema) DecodeJSON(typeName string, frame []byte, dst []byte) ([]byte, error) {
	t, err := s.Type(typeName)
	if err != nil {
		return dst, err
	}
	return t.AppendJSON(dst, frame)
}

// EncodeJSON encodes one JSON value (typically one line of input) as the type into frame and
// returns the bytes written, as Encode does. Unknown object keys are refused (ErrUnknownField),
// missing fields are zero, integers must be exact and in range, enums take names or numbers.
// frame needs at least Size bytes to take any member of a union; bytes up to Size after the
// member are zeroed, so appending frame[:Size()] matches Node's allocate(getSize(type)).
//
// To append lines to a log, encode into a scratch frame and Writer.Append it: a line that does
// not encode then leaves nothing allocated behind it.
//
//	scratch := make([]byte, t.Size())
//	for n, line := range lines {
//		if _, err := t.EncodeJSON(line, scratch); err != nil {
//			return fmt.Errorf("line %d: %w", n+1, err)
//		}
//		if err := w.Append(scratch); err != nil { ... }
//	}
func (t *Type) EncodeJSON(line []byte, frame []byte) (int, error) {
	v, err := ParseJSON(line)
	if err != nil {
		return 0, err
	}
	if _, ok := v.(map[string]any); !ok && (t.nd.kind == nStruct || t.nd.kind == nUnion) {
		return 0, at(verr(ErrValue, "want a JSON object, got %s", jsonKind(v)), t.nd.name)
	}
	return t.Encode(v, frame)
}

// EncodeJSON encodes one JSON value as the named type into frame; see Type.EncodeJSON.
func (s *Schema) EncodeJSON(typeName string, line []byte, frame []byte) (int, error) {
	t, err := s.Type(typeName)
	if err != nil {
		return 0, err
	}
	return t.EncodeJSON(line, frame)
}

// ParseJSON parses one JSON value into the dynamic form Encode takes (what encoding/json gives
// with UseNumber: numbers kept exact as json.Number). Data after the value is an error.
func ParseJSON(line []byte) (any, error) {
	p := jsonParser{s: line}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if p.ws(); p.i != len(line) {
		return nil, p.fail("data after the JSON value")
	}
	return v, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

func appendNode(dst []byte, nd *node, b []byte) ([]byte, error) {
	switch nd.kind {
	case nPrim:
		return appendPrim(dst, nd.prim, b), nil
	case nString:
		return appendString(dst, trimNUL(b[:nd.n])), nil
	case nEnum:
		v := readBits(nd.size, b)
		e := nd.enum
		if e.bitflags {
			if _, err := flagNames(nd, v); err != nil { // checks, and allocates only on error
				return dst, err
			}
			dst = append(dst, '[')
			first := true
			for _, va := range e.variants {
				if va.value != 0 && v&va.value == va.value {
					if !first {
						dst = append(dst, ',')
					}
					first = false
					dst = appendString(dst, []byte(va.name))
				}
			}
			return append(dst, ']'), nil
		}
		i, ok := e.lookup(v)
		if !ok {
			return dst, unknownVariant(nd, v)
		}
		return appendString(dst, []byte(e.variants[i].name)), nil
	case nArray:
		dst = append(dst, '[')
		es := nd.elem.size
		var err error
		for i := 0; i < nd.n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendNode(dst, nd.elem, b[i*es:]); err != nil {
				return dst, atIndex(err, i)
			}
		}
		return append(dst, ']'), nil
	case nStruct:
		dst = append(dst, '{')
		var err error
		for i := range nd.fields {
			f := &nd.fields[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, []byte(f.name))
			dst = append(dst, ':')
			if dst, err = appendNode(dst, f.node, b[f.off:]); err != nil {
				return dst, at(err, f.name)
			}
		}
		return append(dst, '}'), nil
	}
	return dst, verr(ErrUnsupported, "%s in a struct", nd.name)
}

func appendPrim(dst []byte, p primKind, b []byte) []byte {
	switch p {
	case pBool:
		return strconv.AppendBool(dst, b[0] != 0)
	case pU8:
		return strconv.AppendUint(dst, uint64(b[0]), 10)
	case pU16:
		return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint16(b)), 10)
	case pU32:
		return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(b)), 10)
	case pU64:
		return strconv.AppendUint(dst, binary.LittleEndian.Uint64(b), 10)
	case pI8:
		return strconv.AppendInt(dst, int64(int8(b[0])), 10)
	case pI16:
		return strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(b))), 10)
	case pI32:
		return strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(b))), 10)
	case pI64:
		return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(b)), 10)
	case pF32:
		return appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), 32)
	default:
		return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(b)), 64)
	}
}

// appendFloat writes a JSON number, or "NaN", "Infinity" or "-Infinity" as strings (JSON has
// no such numbers; EncodeJSON reads them back).
func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, bits)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD, as in encoding/json.
func appendString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
