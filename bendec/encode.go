package bendec

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Encode writes v as the type into frame and returns the number of bytes written: the type's
// size, or for a union the chosen member's size. Every byte of the type is written (missing
// fields and string padding as zeros), so a frame from Writer.Allocate needs no clearing; for a
// union, bytes after the member up to the union's size are zeroed too. v is a dynamic value (as
// Decode returns, or as encoding/json produces with UseNumber), or a Go struct whose fields
// match the schema's by `bendec:"name"` tag or by name ignoring case.
func (t *Type) Encode(v any, frame []byte) (int, error) {
	nd := t.nd
	if nd.kind == nUnion {
		m, err := unionMember(nd, v)
		if err != nil {
			return 0, err
		}
		nd = m
	}
	if len(frame) < nd.size {
		return 0, verr(ErrShortFrame, "%s needs %d bytes, frame has %d", nd.name, nd.size, len(frame))
	}
	if err := encodeNode(nd, v, frame); err != nil {
		return 0, at(err, nd.name)
	}
	clear(frame[nd.size:min(len(frame), t.nd.size)])
	return nd.size, nil
}

// Encode encodes v as the named type into frame; see Type.Encode.
func (s *Schema) Encode(typeName string, v any, frame []byte) (int, error) {
	t, err := s.Type(typeName)
	if err != nil {
		return 0, err
	}
	return t.Encode(v, frame)
}

// EncodedSize returns the number of bytes Encode writes for v: the type's size, or the size of
// the union member v's discriminator picks.
func (t *Type) EncodedSize(v any) (int, error) {
	if t.nd.kind != nUnion {
		return t.nd.size, nil
	}
	m, err := unionMember(t.nd, v)
	if err != nil {
		return 0, err
	}
	return m.size, nil
}

func unionMember(nd *node, v any) (*node, error) {
	u := nd.union
	cur := v
	for _, step := range u.path {
		next, ok := fieldOf(cur, step)
		if !ok {
			return nil, verr(ErrUnionDiscriminator, "%s: value has no discriminator %s", nd.name, strings.Join(u.path, "."))
		}
		cur = next
	}
	bits, err := enumBits(u.disc, cur)
	if err != nil {
		return nil, at(err, nd.name+"."+strings.Join(u.path, "."))
	}
	m, ok := u.byValue[bits]
	if !ok {
		return nil, verr(ErrUnknownVariant, "%s: discriminator %s is %v, no member", nd.name, strings.Join(u.path, "."), cur)
	}
	return m, nil
}

// fieldOf returns the named field of a map or struct value.
func fieldOf(v any, name string) (any, bool) {
	switch m := v.(type) {
	case map[string]any:
		x, ok := m[name]
		return x, ok
	case nil:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil, false
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, false
		}
		x := rv.MapIndex(reflect.ValueOf(name).Convert(rv.Type().Key()))
		if !x.IsValid() {
			return nil, false
		}
		return x.Interface(), true
	case reflect.Struct:
		if i := goField(rv.Type(), name); i >= 0 {
			return rv.Field(i).Interface(), true
		}
	}
	return nil, false
}

// goField finds the exported field of a struct type for a schema field: by `bendec:"name"` tag,
// then by exact name, then by name ignoring case and underscores.
func goField(rt reflect.Type, name string) int {
	fold := -1
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if !f.IsExported() {
			continue
		}
		if tag, ok := f.Tag.Lookup("bendec"); ok {
			if tag == name {
				return i
			}
			continue
		}
		if f.Name == name {
			return i
		}
		if fold < 0 && strings.EqualFold(f.Name, strings.ReplaceAll(name, "_", "")) {
			fold = i
		}
	}
	return fold
}

func typeErr(v any, want string) error {
	return verr(ErrValue, "%T %v is not %s", v, v, want)
}

func encodeNode(nd *node, v any, b []byte) error {
	if rv, ok := v.(reflect.Value); ok {
		v = rv.Interface()
	}
	switch nd.kind {
	case nPrim:
		bits, err := primBits(nd.prim, nd.size, v)
		if err != nil {
			return err
		}
		writeBits(nd.size, b, bits)
		return nil
	case nString:
		s, err := bytesOf(v)
		if err != nil {
			return err
		}
		if len(s) > nd.n {
			return verr(ErrValue, "string of %d bytes, room for %d", len(s), nd.n)
		}
		copy(b, s)
		clear(b[len(s):nd.n])
		return nil
	case nEnum:
		bits, err := enumBits(nd, v)
		if err != nil {
			return err
		}
		writeBits(nd.size, b, bits)
		return nil
	case nArray:
		return encodeArray(nd, v, b)
	case nStruct:
		return encodeStruct(nd, v, b)
	}
	return verr(ErrUnsupported, "%s in a struct", nd.name)
}

func encodeArray(nd *node, v any, b []byte) error {
	es := nd.elem.size
	n := 0
	var err error
	each := func(i int, x any) bool {
		if i >= nd.n {
			err = verr(ErrValue, "more than %d elements", nd.n)
			return false
		}
		if e := encodeNode(nd.elem, x, b[i*es:]); e != nil {
			err = atIndex(e, i)
			return false
		}
		n = i + 1
		return true
	}
	switch a := v.(type) {
	case nil:
	case []any:
		for i, x := range a {
			if !each(i, x) {
				return err
			}
		}
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return typeErr(v, "an array")
		}
		for i := 0; i < rv.Len(); i++ {
			if !each(i, rv.Index(i)) {
				return err
			}
		}
	}
	if n < nd.n { // missing elements are zeros
		if err := zeroFill(nd.elem, b[n*es:]); err != nil {
			return atIndex(err, n)
		}
		clear(b[n*es : nd.size])
	}
	return nil
}

func encodeStruct(nd *node, v any, b []byte) error {
	switch m := v.(type) {
	case nil:
		return zeroFill(nd, b)
	case map[string]any:
		found := 0
		for i := range nd.fields {
			f := &nd.fields[i]
			x, ok := m[f.name]
			if ok {
				found++
			}
			if err := encodeField(f, x, ok, b); err != nil {
				return err
			}
		}
		if found < len(m) {
			for k := range m {
				if !nd.hasField(k) {
					return verr(ErrUnknownField, "%q is not a field of %s", k, nd.name)
				}
			}
		}
		return nil
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return zeroFill(nd, b)
		}
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Map {
		for i := range nd.fields {
			f := &nd.fields[i]
			x, ok := fieldOf(rv.Interface(), f.name)
			if err := encodeField(f, x, ok, b); err != nil {
				return err
			}
		}
		return nil
	}
	if rv.Kind() != reflect.Struct {
		return typeErr(v, "an object")
	}
	for i := range nd.fields {
		f := &nd.fields[i]
		j := goField(rv.Type(), f.name)
		var x any
		if j >= 0 {
			x = rv.Field(j)
		}
		if err := encodeField(f, x, j >= 0, b); err != nil {
			return err
		}
	}
	return nil
}

func (nd *node) hasField(name string) bool {
	for i := range nd.fields {
		if nd.fields[i].name == name {
			return true
		}
	}
	return false
}

// zeroFill writes the zeros a missing value encodes as, unless they would not decode.
func zeroFill(nd *node, b []byte) error {
	if !nd.zeroOK {
		return verr(ErrUnknownVariant, "missing, and zeros are not a valid %s (an enum in it has no 0 variant)", nd.name)
	}
	clear(b[:nd.size])
	return nil
}

func encodeField(f *field, x any, ok bool, b []byte) error {
	if !ok || x == nil {
		if err := zeroFill(f.node, b[f.off:]); err != nil {
			return at(err, f.name)
		}
		return nil
	}
	if err := encodeNode(f.node, x, b[f.off:]); err != nil {
		return at(err, f.name)
	}
	return nil
}

func bytesOf(v any) ([]byte, error) {
	switch s := v.(type) {
	case string:
		return []byte(s), nil
	case []byte:
		return s, nil
	case nil:
		return nil, nil
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.Kind() == reflect.String:
		return []byte(rv.String()), nil
	case (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array) && rv.Type().Elem().Kind() == reflect.Uint8:
		out := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(out), rv)
		return trimNUL(out), nil
	}
	return nil, typeErr(v, "a string")
}

// intOf reads an integer from any Go integer, an integral float, a json.Number or a decimal
// string (as JavaScript sends BigInts): its sign and magnitude.
func intOf(v any) (neg bool, mag uint64, err error) {
	switch x := v.(type) {
	case int:
		return x < 0, absU(int64(x)), nil
	case int64:
		return x < 0, absU(x), nil
	case uint64:
		return false, x, nil
	case uint8:
		return false, uint64(x), nil
	case float64:
		return floatInt(x, v)
	case json.Number:
		return parseInt(string(x), v)
	case string:
		return parseInt(x, v)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() < 0, absU(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return false, rv.Uint(), nil
	case reflect.Float32, reflect.Float64:
		return floatInt(rv.Float(), v)
	case reflect.String:
		return parseInt(rv.String(), v)
	}
	return false, 0, typeErr(v, "an integer")
}

func absU(x int64) uint64 {
	if x < 0 {
		return -uint64(x)
	}
	return uint64(x)
}

func floatInt(f float64, v any) (bool, uint64, error) {
	if f != math.Trunc(f) || math.Abs(f) >= 1<<64 || math.IsNaN(f) {
		return false, 0, typeErr(v, "an integer")
	}
	if f < 0 {
		return true, uint64(-f), nil
	}
	return false, uint64(f), nil
}

func parseInt(s string, v any) (bool, uint64, error) {
	neg := strings.HasPrefix(s, "-")
	u, err := strconv.ParseUint(strings.TrimPrefix(s, "-"), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64) // 1e3, 5.0
		if ferr != nil {
			return false, 0, typeErr(v, "an integer")
		}
		return floatInt(f, v)
	}
	return neg && u != 0, u, nil
}

// intBits range-checks an integer for a primitive of size bytes and returns its bit pattern.
func intBits(p primKind, size int, neg bool, mag uint64) (uint64, bool) {
	bits := uint(size * 8)
	if p.unsigned() {
		return mag, !neg && (bits == 64 || mag < 1<<bits)
	}
	limit := uint64(1) << (bits - 1)
	if neg {
		if mag > limit {
			return 0, false
		}
		return -mag & (1<<bits - 1), true
	}
	return mag, mag < limit
}

func primBits(p primKind, size int, v any) (uint64, error) {
	switch p {
	case pBool:
		switch x := v.(type) {
		case bool:
			if x {
				return 1, nil
			}
			return 0, nil
		}
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Bool {
			return primBits(p, size, rv.Bool())
		}
		neg, mag, err := intOf(v)
		if err != nil || neg || mag > 1 {
			return 0, typeErr(v, "a bool")
		}
		return mag, nil
	case pF32, pF64:
		f, err := floatOf(v)
		if err != nil {
			return 0, err
		}
		if p == pF32 {
			if !math.IsInf(f, 0) && math.IsInf(float64(float32(f)), 0) {
				return 0, verr(ErrValue, "%v overflows f32", f)
			}
			return uint64(math.Float32bits(float32(f))), nil
		}
		return math.Float64bits(f), nil
	}
	neg, mag, err := intOf(v)
	if err != nil {
		return 0, err
	}
	bits, ok := intBits(p, size, neg, mag)
	if !ok {
		return 0, verr(ErrValue, "%v out of range", v)
	}
	return bits, nil
}

func floatOf(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case json.Number:
		return parseFloat(string(x), v)
	case string:
		return parseFloat(x, v)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), nil
	}
	return 0, typeErr(v, "a number")
}

// parseFloat also takes the names the JSON mapping uses for the values JSON has no number for.
func parseFloat(s string, v any) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity", "+Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, typeErr(v, "a number")
	}
	return f, nil
}

// enumBits takes a variant name, a number equal to a variant's value, or for bitflags a list of
// names or numbers, or a number made of the flags' bits.
func enumBits(nd *node, v any) (uint64, error) {
	e := nd.enum
	if s, ok := v.(string); ok {
		if i, ok := e.byName[s]; ok {
			return e.variants[i].value, nil
		}
		if _, _, err := intOf(s); err != nil {
			return 0, verr(ErrUnknownVariant, "%s has no variant %q", nd.name, s)
		}
	}
	if e.bitflags {
		var list []any
		switch x := v.(type) {
		case []any:
			list = x
		case []string:
			list = make([]any, len(x))
			for i, s := range x {
				list[i] = s
			}
		default:
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
				list = make([]any, rv.Len())
				for i := range list {
					list[i] = rv.Index(i).Interface()
				}
			}
		}
		if list != nil {
			var bits uint64
			for _, x := range list {
				b, err := enumBits(nd, x)
				if err != nil {
					return 0, err
				}
				bits |= b
			}
			return bits, nil
		}
	}
	neg, mag, err := intOf(v)
	if err != nil {
		return 0, verr(ErrValue, "%s wants a variant name or number, got %T %v", nd.name, v, v)
	}
	bits, ok := intBits(nd.prim, nd.size, neg, mag)
	if !ok {
		return 0, verr(ErrValue, "%v out of range for %s", v, nd.name)
	}
	if e.bitflags {
		if _, err := flagNames(nd, bits); err != nil {
			return 0, err
		}
		return bits, nil
	}
	if _, ok := e.lookup(bits); !ok {
		return 0, unknownVariant(nd, bits)
	}
	return bits, nil
}
