package bendec

import (
	"reflect"
)

// DecodeInto decodes a frame into dst, a non-nil pointer: to a struct whose fields match the
// schema's (by `bendec:"name"` tag, else by name ignoring case and underscores; schema fields
// without a Go field are skipped), or to any value the dynamic form can be assigned to. Enums go
// into string fields as names and into integer fields as values; char arrays into string, []byte
// or [N]byte fields. For a union, the member's fields fill dst. For allocation-free typed access
// generate code with GenerateGo instead.
func (t *Type) DecodeInto(frame []byte, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return verr(ErrValue, "DecodeInto needs a non-nil pointer, got %T", dst)
	}
	nd, err := t.member(frame)
	if err != nil {
		return err
	}
	v, err := decodeNode(nd, frame)
	if err != nil {
		return at(err, nd.name)
	}
	if err := assign(rv.Elem(), nd, v); err != nil {
		return at(err, nd.name)
	}
	return nil
}

// DecodeInto decodes a frame as the named type into dst; see Type.DecodeInto.
func (s *Schema) DecodeInto(typeName string, frame []byte, dst any) error {
	t, err := s.Type(typeName)
	if err != nil {
		return err
	}
	return t.DecodeInto(frame, dst)
}

func assign(dst reflect.Value, nd *node, v any) error {
	for dst.Kind() == reflect.Pointer {
		if dst.IsNil() {
			dst.Set(reflect.New(dst.Type().Elem()))
		}
		dst = dst.Elem()
	}
	if dst.Kind() == reflect.Interface || dst.Kind() == reflect.Map && nd.kind == nStruct {
		rv := reflect.ValueOf(v)
		if !rv.Type().AssignableTo(dst.Type()) {
			return verr(ErrValue, "cannot put %T into %s", v, dst.Type())
		}
		dst.Set(rv)
		return nil
	}
	switch nd.kind {
	case nStruct:
		if dst.Kind() != reflect.Struct {
			return verr(ErrValue, "cannot put struct %s into %s", nd.name, dst.Type())
		}
		m := v.(map[string]any)
		for i := range nd.fields {
			f := &nd.fields[i]
			j := goField(dst.Type(), f.name)
			if j < 0 {
				continue
			}
			if err := assign(dst.Field(j), f.node, m[f.name]); err != nil {
				return at(err, f.name)
			}
		}
		return nil
	case nArray:
		a := v.([]any)
		switch dst.Kind() {
		case reflect.Slice:
			dst.Set(reflect.MakeSlice(dst.Type(), len(a), len(a)))
		case reflect.Array:
			if dst.Len() < len(a) {
				return verr(ErrValue, "%d elements into %s", len(a), dst.Type())
			}
		default:
			return verr(ErrValue, "cannot put an array into %s", dst.Type())
		}
		for i, x := range a {
			if err := assign(dst.Index(i), nd.elem, x); err != nil {
				return atIndex(err, i)
			}
		}
		return nil
	case nString:
		s := v.(string)
		switch {
		case dst.Kind() == reflect.String:
			dst.SetString(s)
		case dst.Kind() == reflect.Slice && dst.Type().Elem().Kind() == reflect.Uint8:
			dst.SetBytes([]byte(s))
		case dst.Kind() == reflect.Array && dst.Type().Elem().Kind() == reflect.Uint8 && dst.Len() >= len(s):
			reflect.Copy(dst, reflect.ValueOf([]byte(s)))
			for i := len(s); i < dst.Len(); i++ {
				dst.Index(i).SetUint(0)
			}
		default:
			return verr(ErrValue, "cannot put a %d-byte string into %s", len(s), dst.Type())
		}
		return nil
	case nEnum:
		if dst.Kind() == reflect.String {
			if s, ok := v.(string); ok {
				dst.SetString(s)
				return nil
			}
		}
		if dst.Kind() == reflect.Slice && dst.Type().Elem().Kind() == reflect.String {
			if names, ok := v.([]string); ok {
				dst.Set(reflect.MakeSlice(dst.Type(), len(names), len(names)))
				for i, n := range names {
					dst.Index(i).SetString(n)
				}
				return nil
			}
		}
		bits, err := enumBits(nd, v)
		if err != nil {
			return err
		}
		return setInt(dst, nd.prim, nd.size, bits)
	case nPrim:
		switch x := v.(type) {
		case bool:
			if dst.Kind() != reflect.Bool {
				return verr(ErrValue, "cannot put a bool into %s", dst.Type())
			}
			dst.SetBool(x)
			return nil
		case float32, float64:
			f, _ := floatOf(x)
			if dst.Kind() != reflect.Float32 && dst.Kind() != reflect.Float64 || dst.OverflowFloat(f) {
				return verr(ErrValue, "cannot put %v into %s", f, dst.Type())
			}
			dst.SetFloat(f)
			return nil
		}
		bits, err := primBits(nd.prim, nd.size, v)
		if err != nil {
			return err
		}
		return setInt(dst, nd.prim, nd.size, bits)
	}
	return verr(ErrUnsupported, "%s", nd.name)
}

// setInt stores the bit pattern of an integer of the schema into an integer field, checking range.
func setInt(dst reflect.Value, p primKind, size int, bits uint64) error {
	var i int64
	neg := false
	if p.signed() {
		shift := 64 - 8*uint(size)
		i = int64(bits<<shift) >> shift
		neg = i < 0
	}
	switch dst.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !p.signed() {
			if bits > 1<<63-1 {
				return verr(ErrValue, "%d overflows %s", bits, dst.Type())
			}
			i = int64(bits)
		}
		if dst.OverflowInt(i) {
			return verr(ErrValue, "%d overflows %s", i, dst.Type())
		}
		dst.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if p.signed() {
			if neg {
				return verr(ErrValue, "%d into %s", i, dst.Type())
			}
			bits = uint64(i)
		}
		if dst.OverflowUint(bits) {
			return verr(ErrValue, "%d overflows %s", bits, dst.Type())
		}
		dst.SetUint(bits)
	case reflect.Float32, reflect.Float64:
		if p.signed() {
			dst.SetFloat(float64(i))
		} else {
			dst.SetFloat(float64(bits))
		}
	default:
		return verr(ErrValue, "cannot put an integer into %s", dst.Type())
	}
	return nil
}
