package bendec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Errors, matched with errors.Is; the returned errors wrap them with the type and field path.
var (
	ErrSyntax             = errors.New("bendec: schema is not a JSON array of type definitions")
	ErrBadDefinition      = errors.New("bendec: bad type definition")
	ErrUnknownType        = errors.New("bendec: unknown type")
	ErrCycle              = errors.New("bendec: type refers to itself")
	ErrBadSize            = errors.New("bendec: bad size or length")
	ErrBadEnum            = errors.New("bendec: bad enum")
	ErrUnionDiscriminator = errors.New("bendec: bad union discriminator")
	ErrUnsupported        = errors.New("bendec: unsupported")
	ErrShortFrame         = errors.New("bendec: frame too short for type")
	ErrUnknownVariant     = errors.New("bendec: value matches no enum variant")
	ErrValue              = errors.New("bendec: value does not fit the type")
	ErrUnknownField       = errors.New("bendec: unknown field")
)

// maxTypeSize bounds every type so sizes cannot overflow; frames are far smaller anyway.
const maxTypeSize = 1 << 30

type primKind uint8

const (
	pNone primKind = iota
	pBool
	pU8
	pU16
	pU32
	pU64
	pI8
	pI16
	pI32
	pI64
	pF32
	pF64
	pChar
)

// prims are the primitive names with a codec, and their sizes. Node bendec 0.51.0 ships
// readers for bool, u8, u16, u32, u64, i64, f64 and char arrays; the rest need custom readers
// there, and are encoded the obvious little-endian way here.
var prims = map[string]struct {
	kind primKind
	size int
}{
	"bool": {pBool, 1}, "u8": {pU8, 1}, "u16": {pU16, 2}, "u32": {pU32, 4}, "u64": {pU64, 8},
	"i8": {pI8, 1}, "i16": {pI16, 2}, "i32": {pI32, 4}, "i64": {pI64, 8},
	"f32": {pF32, 4}, "f64": {pF64, 8}, "char": {pChar, 1},
}

func (p primKind) signed() bool   { return p >= pI8 && p <= pI64 }
func (p primKind) unsigned() bool { return p >= pU8 && p <= pU64 }
func (p primKind) integer() bool  { return p.signed() || p.unsigned() }

type nodeKind uint8

const (
	nPrim   nodeKind = iota + 1
	nString          // an array of char: a string, NUL-padded
	nEnum
	nArray
	nStruct
	nUnion
)

// node is a type compiled to its layout: aliases are resolved away and every offset is known,
// so encoding and decoding walk nodes without looking anything up by name.
type node struct {
	kind   nodeKind
	name   string // schema name of the type (of the alias target for aliases)
	desc   string
	size   int
	prim   primKind // nPrim; nEnum: the underlying integer
	fields []field  // nStruct
	elem   *node    // nArray
	n      int      // nArray: element count; nString: bytes
	enum   *enumInfo
	union  *unionInfo
	state  uint8 // compile state: 1 visiting, 2 done
	// zeroOK: all-zero bytes decode (every enum inside has a 0 variant or is bitflags), so a
	// missing value may be encoded as zeros.
	zeroOK bool
}

type field struct {
	name string
	desc string
	off  int
	node *node
}

type variant struct {
	name  string
	boxed any    // name as an interface, made once so decoding does not allocate it
	value uint64 // the bit pattern in the underlying integer (sign-extended for signed)
	desc  string
}

type enumInfo struct {
	variants []variant
	bitflags bool
	dense    []int32 // value -> variant index+1 when all values are small; else byValue
	byValue  map[uint64]int
	byName   map[string]int
}

func (e *enumInfo) lookup(v uint64) (int, bool) {
	if e.dense != nil {
		if v < uint64(len(e.dense)) && e.dense[v] != 0 {
			return int(e.dense[v] - 1), true
		}
		return 0, false
	}
	i, ok := e.byValue[v]
	return i, ok
}

type unionInfo struct {
	path    []string
	discOff int
	disc    *node // the discriminator enum
	members []*node
	byValue map[uint64]*node
}

// Schema is a loaded and validated set of bendec type definitions. It is safe for concurrent use.
type Schema struct {
	defs  map[string]*rawDef
	nodes map[string]*node
	order []string // type names in definition order
}

type rawField struct {
	Name        *string      `json:"name"`
	Type        *string      `json:"type"`
	Length      *json.Number `json:"length"`
	Description string       `json:"description"`
}

type rawDef struct {
	Name          *string         `json:"name"`
	Description   string          `json:"description"`
	Size          *json.Number    `json:"size"`
	Type          *string         `json:"type"`
	Length        *json.Number    `json:"length"`
	Alias         *string         `json:"alias"`
	Fields        *[]rawField     `json:"fields"`
	Underlying    *string         `json:"underlying"`
	Offset        any             `json:"offset"`
	Variants      *[][]any        `json:"variants"`
	Bitflags      any             `json:"bitflags"`
	Discriminator *[]string       `json:"discriminator"`
	Members       *[]string       `json:"members"`
	Kind          json.RawMessage `json:"kind"` // ignored, as Node bendec does: keys decide
}

// Load parses and validates a schema: the JSON array of type definitions Node bendec 0.51.0
// takes as `new Bendec({ types })`. As in bendec, a definition's kind follows from its keys, in
// this order: size (primitive), type and length (array), alias, fields (struct), variants
// (enum), members (union); "kind" is ignored. Primitives must be declared, as bendec requires.
func Load(schemaJSON []byte) (*Schema, error) {
	dec := json.NewDecoder(bytes.NewReader(schemaJSON))
	dec.UseNumber()
	var defs []rawDef
	if err := dec.Decode(&defs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if defs == nil {
		return nil, fmt.Errorf("%w: null", ErrSyntax)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the array", ErrSyntax)
	}
	s := &Schema{defs: map[string]*rawDef{}, nodes: map[string]*node{}}
	for i := range defs {
		d := &defs[i]
		if d.Name == nil || *d.Name == "" {
			return nil, fmt.Errorf("%w: definition %d has no name", ErrBadDefinition, i)
		}
		if _, dup := s.defs[*d.Name]; dup {
			return nil, fmt.Errorf("%w: %s: defined twice", ErrBadDefinition, *d.Name)
		}
		s.defs[*d.Name] = d
		s.order = append(s.order, *d.Name)
	}
	for _, name := range s.order {
		if _, err := s.compile(name, name); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Types returns the names of the schema's types in definition order.
func (s *Schema) Types() []string { return append([]string(nil), s.order...) }

func intNumber(n *json.Number, what string) (int64, error) {
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(n.String(), 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, fmt.Errorf("%w: %s %s is not an integer", ErrBadSize, what, n)
		}
		v = int64(f)
	}
	return v, nil
}

// compile builds the node of a type by name; path names the place that refers to it, for errors.
func (s *Schema) compile(name, path string) (*node, error) {
	if nd, ok := s.nodes[name]; ok {
		if nd.state == 1 {
			return nil, fmt.Errorf("%w: %s refers back to %s", ErrCycle, path, name)
		}
		return nd, nil
	}
	d, ok := s.defs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (in %s)", ErrUnknownType, name, path)
	}
	nd := &node{name: name, desc: d.Description, state: 1}
	s.nodes[name] = nd
	var err error
	switch {
	case d.Size != nil:
		err = s.compilePrim(nd, d)
	case d.Type != nil && d.Length != nil:
		err = s.compileArray(nd, d)
	case d.Alias != nil:
		t, err := s.compile(*d.Alias, name)
		if err != nil {
			delete(s.nodes, name)
			return nil, err
		}
		s.nodes[name] = t // an alias is its target
		return t, nil
	case d.Fields != nil:
		err = s.compileStruct(nd, d)
	case d.Variants != nil:
		err = s.compileEnum(nd, d)
	case d.Members != nil:
		err = s.compileUnion(nd, d)
	default:
		err = fmt.Errorf("%w: %s: none of size, type+length, alias, fields, variants, members", ErrBadDefinition, name)
	}
	if err != nil {
		delete(s.nodes, name)
		return nil, err
	}
	if nd.size > maxTypeSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrBadSize, name, nd.size, maxTypeSize)
	}
	nd.state = 2
	return nd, nil
}

func (s *Schema) compilePrim(nd *node, d *rawDef) error {
	size, err := intNumber(d.Size, "size")
	if err != nil {
		return fmt.Errorf("%s: %w", nd.name, err)
	}
	p, ok := prims[nd.name]
	if !ok {
		return fmt.Errorf("%w: primitive %s: no codec; known primitives are bool, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, char", ErrUnsupported, nd.name)
	}
	if size != int64(p.size) {
		return fmt.Errorf("%w: primitive %s has size %d, want %d", ErrBadSize, nd.name, size, p.size)
	}
	nd.kind, nd.prim, nd.size, nd.zeroOK = nPrim, p.kind, p.size, true
	if p.kind == pChar { // a lone char is a string of at most one byte
		nd.kind, nd.n = nString, 1
	}
	return nil
}

// arrayOf makes the node of n elements of type elem: a string when elem is char.
func arrayOf(elem *node, n int64, path string) (*node, error) {
	if n <= 0 || n > maxTypeSize {
		return nil, fmt.Errorf("%w: %s: length %d", ErrBadSize, path, n)
	}
	if elem.kind == nUnion {
		return nil, fmt.Errorf("%w: %s: array of union %s (bendec decodes unions only at the top level)", ErrUnsupported, path, elem.name)
	}
	if int64(elem.size)*n > maxTypeSize {
		return nil, fmt.Errorf("%w: %s: %d x %d bytes", ErrBadSize, path, n, elem.size)
	}
	if elem.kind == nString && elem.prim == pChar {
		return &node{kind: nString, name: path, size: int(n), n: int(n), state: 2, zeroOK: true}, nil
	}
	return &node{kind: nArray, name: path, elem: elem, n: int(n), size: elem.size * int(n), state: 2, zeroOK: elem.zeroOK}, nil
}

func (s *Schema) compileArray(nd *node, d *rawDef) error {
	n, err := intNumber(d.Length, "length")
	if err != nil {
		return fmt.Errorf("%s: %w", nd.name, err)
	}
	elem, err := s.compile(*d.Type, nd.name)
	if err != nil {
		return err
	}
	a, err := arrayOf(elem, n, nd.name)
	if err != nil {
		return err
	}
	name, desc := nd.name, nd.desc
	*nd = *a
	nd.name, nd.desc, nd.state = name, desc, 1
	return nil
}

func (s *Schema) compileStruct(nd *node, d *rawDef) error {
	nd.kind, nd.zeroOK = nStruct, true
	seen := map[string]bool{}
	for i, f := range *d.Fields {
		if f.Name == nil || *f.Name == "" || f.Type == nil {
			return fmt.Errorf("%w: %s: field %d needs a name and a type", ErrBadDefinition, nd.name, i)
		}
		path := nd.name + "." + *f.Name
		if seen[*f.Name] {
			return fmt.Errorf("%w: %s: field defined twice", ErrBadDefinition, path)
		}
		seen[*f.Name] = true
		ft, err := s.compile(*f.Type, path)
		if err != nil {
			return err
		}
		if ft.kind == nUnion {
			return fmt.Errorf("%w: %s: union %s as a field (bendec decodes unions only at the top level)", ErrUnsupported, path, ft.name)
		}
		if f.Length != nil {
			n, err := intNumber(f.Length, "length")
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if n != 0 { // bendec treats length 0 as no length
				if ft, err = arrayOf(ft, n, path); err != nil {
					return err
				}
			}
		}
		nd.fields = append(nd.fields, field{name: *f.Name, desc: f.Description, off: nd.size, node: ft})
		nd.zeroOK = nd.zeroOK && ft.zeroOK
		nd.size += ft.size
		if nd.size > maxTypeSize {
			return fmt.Errorf("%w: %s: more than %d bytes", ErrBadSize, path, maxTypeSize)
		}
	}
	return nil
}

// parseVariantValue reads a variant value as bendec does: a number, or a string starting 0x
// (hex) or 0b (binary). bendec reads any other string as 0; that is refused here, as is what
// bendec would parse only in part. For the offset (asOffset), bendec uses parseInt, which takes
// decimal and 0x strings but not 0b.
func parseVariantValue(v any, asOffset bool) (int64, bool) {
	switch v := v.(type) {
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			if f, ferr := v.Float64(); ferr == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
				return int64(f), true
			}
			return 0, false
		}
		return n, true
	case string:
		switch {
		case strings.HasPrefix(v, "0x"):
			u, err := strconv.ParseUint(v[2:], 16, 63)
			return int64(u), err == nil
		case strings.HasPrefix(v, "0b") && !asOffset:
			u, err := strconv.ParseUint(v[2:], 2, 63)
			return int64(u), err == nil
		case asOffset:
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// truthy is JavaScript's !!v for a JSON value, as bendec reads bitflags.
func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v != ""
	case json.Number:
		f, err := v.Float64()
		return err != nil || f != 0
	case nil:
		return false
	}
	return true // arrays and objects
}

func fits(p primKind, size int, v int64) bool {
	bits := uint(size * 8)
	if p.signed() {
		return bits == 64 || v >= -(1<<(bits-1)) && v < 1<<(bits-1)
	}
	return bits == 64 || v >= 0 && uint64(v) < 1<<bits
}

func (s *Schema) compileEnum(nd *node, d *rawDef) error {
	if d.Underlying == nil {
		return fmt.Errorf("%w: %s: enum without underlying type", ErrBadEnum, nd.name)
	}
	u, err := s.compile(*d.Underlying, nd.name)
	if err != nil {
		return err
	}
	if u.kind != nPrim || !u.prim.integer() {
		return fmt.Errorf("%w: %s: underlying type %s is not an integer primitive", ErrBadEnum, nd.name, *d.Underlying)
	}
	var offset int64
	if d.Offset != nil {
		var ok bool
		if offset, ok = parseVariantValue(d.Offset, true); !ok {
			return fmt.Errorf("%w: %s: offset %v is not an integer, decimal or 0x string", ErrBadEnum, nd.name, d.Offset)
		}
	}
	e := &enumInfo{byName: map[string]int{}, bitflags: truthy(d.Bitflags)}
	maxv := uint64(0)
	for i, v := range *d.Variants {
		if len(v) < 2 || len(v) > 3 {
			return fmt.Errorf("%w: %s: variant %d must be [name, value] or [name, value, description]", ErrBadEnum, nd.name, i)
		}
		name, ok := v[0].(string)
		if !ok || name == "" {
			return fmt.Errorf("%w: %s: variant %d has no name", ErrBadEnum, nd.name, i)
		}
		val, ok := parseVariantValue(v[1], false)
		if !ok {
			return fmt.Errorf("%w: %s.%s: value %v is not a number, 0x hex or 0b binary string", ErrBadEnum, nd.name, name, v[1])
		}
		val += offset
		if val > 1<<53 || val < -(1<<53) {
			return fmt.Errorf("%w: %s.%s: value %d is beyond 2^53, which bendec (JavaScript numbers) cannot hold exactly", ErrBadEnum, nd.name, name, val)
		}
		if !fits(u.prim, u.size, val) {
			return fmt.Errorf("%w: %s.%s: value %d does not fit %s", ErrBadEnum, nd.name, name, val, *d.Underlying)
		}
		if _, dup := e.byName[name]; dup {
			return fmt.Errorf("%w: %s.%s: variant defined twice", ErrBadEnum, nd.name, name)
		}
		desc := ""
		if len(v) == 3 {
			desc, _ = v[2].(string)
		}
		bits := uint64(val)
		if u.prim.signed() && u.size < 8 {
			bits = uint64(val) & (1<<(u.size*8) - 1) // stored pattern, as read back unsigned
		}
		e.byName[name] = len(e.variants)
		e.variants = append(e.variants, variant{name: name, boxed: name, value: bits, desc: desc})
		maxv = max(maxv, bits)
	}
	if maxv < 1024 {
		e.dense = make([]int32, maxv+1)
		for i := len(e.variants) - 1; i >= 0; i-- { // the first variant of a value wins
			e.dense[e.variants[i].value] = int32(i + 1)
		}
	} else {
		e.byValue = map[uint64]int{}
		for i := len(e.variants) - 1; i >= 0; i-- {
			e.byValue[e.variants[i].value] = i
		}
	}
	_, zero := e.lookup(0)
	nd.kind, nd.prim, nd.size, nd.enum, nd.zeroOK = nEnum, u.prim, u.size, e, zero || e.bitflags
	return nil
}

func (s *Schema) compileUnion(nd *node, d *rawDef) error {
	if len(*d.Members) == 0 {
		return fmt.Errorf("%w: %s: union without members", ErrUnionDiscriminator, nd.name)
	}
	if d.Discriminator == nil || len(*d.Discriminator) == 0 {
		return fmt.Errorf("%w: %s: union without a discriminator path", ErrUnionDiscriminator, nd.name)
	}
	u := &unionInfo{path: *d.Discriminator, byValue: map[uint64]*node{}}
	seen := map[string]bool{}
	for i, m := range *d.Members {
		path := nd.name + ".members[" + strconv.Itoa(i) + "]"
		if seen[m] {
			return fmt.Errorf("%w: %s: member %s listed twice", ErrUnionDiscriminator, path, m)
		}
		seen[m] = true
		mn, err := s.compile(m, path)
		if err != nil {
			return err
		}
		if mn.kind != nStruct {
			return fmt.Errorf("%w: %s: member %s is not a struct", ErrUnionDiscriminator, path, m)
		}
		off, disc := 0, mn
		for _, step := range u.path {
			var f *field
			if disc.kind == nStruct {
				for j := range disc.fields {
					if disc.fields[j].name == step {
						f = &disc.fields[j]
					}
				}
			}
			if f == nil {
				return fmt.Errorf("%w: %s: member %s has no field %s on the path %s", ErrUnionDiscriminator, nd.name, m, step, strings.Join(u.path, "."))
			}
			off += f.off
			disc = f.node
		}
		if disc.kind != nEnum {
			return fmt.Errorf("%w: %s: %s.%s is not an enum", ErrUnionDiscriminator, nd.name, m, strings.Join(u.path, "."))
		}
		if i == 0 {
			u.disc, u.discOff = disc, off
		} else if disc != u.disc || off != u.discOff {
			return fmt.Errorf("%w: %s: member %s has its discriminator at offset %d of type %s, member %s at %d of type %s",
				ErrUnionDiscriminator, nd.name, m, off, disc.name, u.members[0].name, u.discOff, u.disc.name)
		}
		// bendec picks the member whose name is the enum variant's name.
		vi, ok := disc.enum.byName[m]
		if !ok {
			return fmt.Errorf("%w: %s: member %s is not a variant of the discriminator enum %s", ErrUnionDiscriminator, nd.name, m, disc.name)
		}
		// bendec maps a value to the last variant holding it: a member whose variant shares its
		// value with another could never be picked, or would be picked for the other.
		val := disc.enum.variants[vi].value
		for _, other := range disc.enum.variants {
			if other.value == val && other.name != m {
				return fmt.Errorf("%w: %s: member %s has discriminator value %s, as variant %s does",
					ErrUnionDiscriminator, nd.name, m, bitsString(disc.prim, disc.size, val), other.name)
			}
		}
		u.byValue[val] = mn
		u.members = append(u.members, mn)
		nd.size = max(nd.size, mn.size)
	}
	nd.kind, nd.union = nUnion, u
	return nil
}

// Type is one type of a schema, compiled for encoding and decoding.
type Type struct {
	s  *Schema
	nd *node
}

// Type returns the named type, or an error wrapping ErrUnknownType.
func (s *Schema) Type(name string) (*Type, error) {
	nd, ok := s.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownType, name, strings.Join(sortedNames(s), ", "))
	}
	return &Type{s: s, nd: nd}, nil
}

func sortedNames(s *Schema) []string {
	names := s.Types()
	sort.Strings(names)
	if len(names) > 20 {
		names = append(names[:20], "...")
	}
	return names
}

// Name returns the type's name in the schema.
func (t *Type) Name() string { return t.nd.name }

// Size returns the type's size in bytes, as Node bendec's getSize: for a union, its largest member.
func (t *Type) Size() int { return t.nd.size }

// Size returns the size in bytes of the named type (bendec's getSize).
func (s *Schema) Size(typeName string) (int, error) {
	t, err := s.Type(typeName)
	if err != nil {
		return 0, err
	}
	return t.Size(), nil
}
