// Package bendec encodes and decodes fixed-size binary events byte for byte as the Node package
// bendec 0.51.0 does, from the same JSON type definitions, so Go and Node processes can share
// typed events through a shmio log.
//
// # Schema
//
// Load takes the JSON array Node bendec takes as `new Bendec({ types })`. A definition's kind
// follows from its keys, as in bendec ("kind" is ignored):
//
//	{"name": "u64", "size": 8}                                primitive
//	{"name": "Name", "type": "char", "length": 16}             array
//	{"name": "Price", "alias": "u64"}                          alias
//	{"name": "Order", "fields": [{"name": "id", "type": "u64"},
//	                             {"name": "tags", "type": "u8", "length": 4}]}  struct
//	{"name": "Side", "underlying": "u8", "offset": 1, "bitflags": false,
//	 "variants": [["Buy", 0], ["Sell", "0x1", "doc"]]}         enum
//	{"name": "Msg", "discriminator": ["header", "msgType"],
//	 "members": ["Order", "Cancel"]}                           union
//
// Primitives must be declared, as bendec requires; the known names are bool, u8, u16, u32, u64,
// i8, i16, i32, i64, f32, f64 and char (bendec itself reads i8, i16, i32 and f32 only with
// custom readers). Layout is packed, little-endian, no padding. An array of char is a string,
// NUL-padded. An enum's variant values are numbers or "0x"/"0b" strings, plus offset. A union
// is as large as its largest member; every member is a struct with an enum at the discriminator
// path, at the same offset, and bendec picks the member whose name is the variant's name, so
// Load requires each member's name to be a variant of that enum. Unions are top-level only.
//
// Load reports every problem as an error wrapping one of ErrSyntax, ErrBadDefinition,
// ErrUnknownType, ErrCycle, ErrBadSize, ErrBadEnum, ErrUnionDiscriminator or ErrUnsupported,
// naming the type and field.
//
// # Values
//
// Decode returns, and Encode takes, dynamic values:
//
//	bool, u8..u64, i8..i64, f32, f64   bool, uint8..uint64, int8..int64, float32, float64
//	char array                         string, trailing NULs dropped (as bendec's utf8Reader)
//	enum                               variant name (string); bitflags: []string of set flags
//	array                              []any
//	struct                             map[string]any
//	union                              the member's map[string]any
//
// Encode also takes any Go integer or float, json.Number, decimal strings for integers, []byte
// for strings, variant numbers for enums, and Go structs (fields matched by `bendec:"name"` tag,
// else by name ignoring case). Missing fields encode as zeros, unless zeros would not decode (an
// enum without a 0 variant: ErrUnknownVariant); unknown map keys are refused.
// A value that does not fit is ErrValue; an enum value or union discriminator that matches no
// variant is ErrUnknownVariant, on either side; a short frame is ErrShortFrame.
//
// # JSON
//
// AppendJSON and EncodeJSON use the same mapping in JSON text: integers are JSON numbers written
// exactly (64-bit ones too, beyond JavaScript's 2^53), char arrays strings, enums variant names
// (numbers accepted on input), bitflags arrays of names, unions their member's object; struct
// fields come in schema order. JSON has no NaN or infinities: they are the strings "NaN",
// "Infinity" and "-Infinity". Invalid UTF-8 in a char array shows as U+FFFD.
//
// For a command that shows or takes events (shmio tail, dump, append --schema): resolve the type
// once with Schema.Type, then AppendJSON turns a frame into a JSON line without allocating, Walk
// lists its fields with offsets for a dump, and EncodeJSON turns a line into a frame (encode into
// a scratch frame and Writer.Append it, so a bad line leaves nothing allocated). Errors name the
// field: "bendec: value matches no enum variant: LogEvent.level: Level has no variant 9".
//
// # Generated code
//
// GenerateGo writes Go types for a schema with allocation-free Encode/Decode methods on frames
// (for Writer.Allocate) and zero-copy read-only views, for the hot paths; `shmio gen go` runs it.
package bendec
