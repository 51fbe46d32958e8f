package bendec

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// readBits loads a little-endian integer of size bytes (1, 2, 4 or 8); b holds at least size.
func readBits(size int, b []byte) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	default:
		return binary.LittleEndian.Uint64(b)
	}
}

func writeBits(size int, b []byte, v uint64) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	default:
		binary.LittleEndian.PutUint64(b, v)
	}
}

// primValue is the Go value of a primitive: bool, uintN, intN or floatN of the schema's width.
func primValue(p primKind, b []byte) any {
	switch p {
	case pBool:
		return b[0] != 0 // bendec: !!readUInt8
	case pU8:
		return b[0]
	case pU16:
		return binary.LittleEndian.Uint16(b)
	case pU32:
		return binary.LittleEndian.Uint32(b)
	case pU64:
		return binary.LittleEndian.Uint64(b)
	case pI8:
		return int8(b[0])
	case pI16:
		return int16(binary.LittleEndian.Uint16(b))
	case pI32:
		return int32(binary.LittleEndian.Uint32(b))
	case pI64:
		return int64(binary.LittleEndian.Uint64(b))
	case pF32:
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	default:
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
}

// trimNUL drops trailing NUL bytes, as bendec's ascii and utf8 readers do.
func trimNUL(b []byte) []byte {
	i := len(b)
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return b[:i]
}

// Decode decodes a frame into a dynamic value (see the package documentation for the mapping).
// Bytes after the type's size are ignored. A frame too short for the type is ErrShortFrame; an
// enum value or union discriminator matching no variant is ErrUnknownVariant.
func (t *Type) Decode(frame []byte) (any, error) {
	nd, err := t.member(frame)
	if err != nil {
		return nil, err
	}
	v, err := decodeNode(nd, frame)
	if err != nil {
		return nil, at(err, nd.name)
	}
	return v, nil
}

// Decode decodes a frame as the named type; see Type.Decode.
func (s *Schema) Decode(typeName string, frame []byte) (any, error) {
	t, err := s.Type(typeName)
	if err != nil {
		return nil, err
	}
	return t.Decode(frame)
}

// member checks the frame's length and, for a union, picks the member its discriminator names.
func (t *Type) member(frame []byte) (*node, error) {
	nd := t.nd
	if nd.kind == nUnion {
		u := nd.union
		if len(frame) < u.discOff+u.disc.size {
			return nil, verr(ErrShortFrame, "%s: %d bytes, the discriminator ends at %d", nd.name, len(frame), u.discOff+u.disc.size)
		}
		v := readBits(u.disc.size, frame[u.discOff:])
		m, ok := u.byValue[v]
		if !ok {
			return nil, verr(ErrUnknownVariant, "%s: discriminator %s is %s, no member", nd.name, strings.Join(u.path, "."), bitsString(u.disc.prim, u.disc.size, v))
		}
		nd = m
	}
	if len(frame) < nd.size {
		return nil, verr(ErrShortFrame, "%s needs %d bytes, got %d", nd.name, nd.size, len(frame))
	}
	return nd, nil
}

func bitsString(p primKind, size int, v uint64) string {
	if p.signed() {
		shift := 64 - 8*uint(size)
		return strconv.FormatInt(int64(v<<shift)>>shift, 10)
	}
	return strconv.FormatUint(v, 10)
}

func decodeNode(nd *node, b []byte) (any, error) {
	switch nd.kind {
	case nPrim:
		return primValue(nd.prim, b), nil
	case nString:
		return string(trimNUL(b[:nd.n])), nil
	case nEnum:
		v := readBits(nd.size, b)
		if nd.enum.bitflags {
			return flagNames(nd, v)
		}
		i, ok := nd.enum.lookup(v)
		if !ok {
			return nil, unknownVariant(nd, v)
		}
		return nd.enum.variants[i].boxed, nil
	case nArray:
		out := make([]any, nd.n)
		es := nd.elem.size
		for i := range out {
			v, err := decodeNode(nd.elem, b[i*es:])
			if err != nil {
				return nil, atIndex(err, i)
			}
			out[i] = v
		}
		return out, nil
	case nStruct:
		m := make(map[string]any, len(nd.fields))
		for i := range nd.fields {
			f := &nd.fields[i]
			v, err := decodeNode(f.node, b[f.off:])
			if err != nil {
				return nil, at(err, f.name)
			}
			m[f.name] = v
		}
		return m, nil
	}
	return nil, verr(ErrUnsupported, "%s in a struct", nd.name) // unions: refused at Load
}

func unknownVariant(nd *node, v uint64) error {
	return verr(ErrUnknownVariant, "%s has no variant %s", nd.name, bitsString(nd.prim, nd.size, v))
}

// flagNames lists the variants whose bits are all set in v, in definition order.
func flagNames(nd *node, v uint64) ([]string, error) {
	names := []string{}
	var seen uint64
	for _, va := range nd.enum.variants {
		if va.value != 0 && v&va.value == va.value {
			names = append(names, va.name)
			seen |= va.value
		}
	}
	if v&^seen != 0 {
		return nil, verr(ErrUnknownVariant, "%s has no flag for bits %#x", nd.name, v&^seen)
	}
	return names, nil
}
