package bendec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"reflect"
	"strings"
	"testing"
)

func loadFixture(t testing.TB) *Schema {
	t.Helper()
	data, err := os.ReadFile("testdata/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fixture struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

func loadValues(t testing.TB) []fixture {
	t.Helper()
	data, err := os.ReadFile("testdata/values.json")
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	if err := json.Unmarshal(data, &fs); err != nil {
		t.Fatal(err)
	}
	return fs
}

// sameJSON compares two JSON texts as values: integers exactly, other numbers as float64 or,
// failing that, float32.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	va, err := ParseJSON(a)
	if err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	vb, err := ParseJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return sameValue(va, vb)
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		bx, okx := new(big.Int).SetString(string(x), 10)
		by, oky := new(big.Int).SetString(string(y), 10)
		if okx && oky {
			return bx.Cmp(by) == 0
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		// f32 fields print their shortest float32 form, so compare at that precision when needed.
		return err1 == nil && err2 == nil && (fx == fy || float32(fx) == float32(fy))
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestSizes(t *testing.T) {
	s := loadFixture(t)
	want := map[string]int{"LogEvent": 32, "Primitives": 32, "Signed": 11, "Name": 8, "Prices": 12,
		"Point": 16, "Arrays": 12 + 16 + 32 + 4, "Header": 6, "Order": 6 + 1 + 2 + 8 + 8, "Cancel": 14,
		"Heartbeat": 6, "Message": 25, "Timestamp": 8, "Level": 1, "Perm": 2}
	for name, size := range want {
		got, err := s.Size(name)
		if err != nil || got != size {
			t.Errorf("Size(%s) = %d, %v; want %d", name, got, err, size)
		}
	}
	if _, err := s.Size("Nope"); !errors.Is(err, ErrUnknownType) {
		t.Errorf("Size(Nope): %v", err)
	}
}

// TestLogEventBytes pins the layout of the seed README's LogEvent by hand.
func TestLogEventBytes(t *testing.T) {
	s := loadFixture(t)
	frame := bytes.Repeat([]byte{0xEE}, 32) // Allocate gives no zeroed memory
	n, err := s.EncodeJSON("LogEvent", []byte(`{"timestamp":258,"level":"Warn","message":"hi"}`), frame)
	if err != nil || n != 32 {
		t.Fatal(n, err)
	}
	want := "0201000000000000" + "02" + "6869" + strings.Repeat("00", 21)
	if hex.EncodeToString(frame) != want {
		t.Fatalf("got %x\nwant %s", frame, want)
	}
	v, err := s.Decode("LogEvent", frame)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, map[string]any{"timestamp": uint64(258), "level": "Warn", "message": "hi"}) {
		t.Fatalf("decoded %#v", v)
	}
	js, err := s.DecodeJSON("LogEvent", frame, []byte("x"))
	if err != nil || string(js) != `x{"timestamp":258,"level":"Warn","message":"hi"}` {
		t.Fatalf("%s %v", js, err)
	}
}

// TestFixturesRoundTrip: every fixture encodes from JSON, decodes back to the same JSON, and
// the dynamic value re-encodes to the same bytes.
func TestFixturesRoundTrip(t *testing.T) {
	s := loadFixture(t)
	for i, f := range loadValues(t) {
		typ, err := s.Type(f.Type)
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, typ.Size())
		if _, err := typ.EncodeJSON(f.Value, frame); err != nil {
			t.Fatalf("%d %s: encode: %v", i, f.Type, err)
		}
		js, err := typ.AppendJSON(nil, frame)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if !sameJSON(t, js, f.Value) {
			t.Errorf("%d %s:\n got %s\nwant %s", i, f.Type, js, f.Value)
		}
		v, err := typ.Decode(frame)
		if err != nil {
			t.Fatal(err)
		}
		again := make([]byte, len(frame))
		if _, err := typ.Encode(v, again); err != nil || !bytes.Equal(again, frame) {
			t.Errorf("%d: re-encode %x, %v; want %x", i, again, err, frame)
		}
	}
}

func TestSchemaErrors(t *testing.T) {
	prims := `{"name":"u8","size":1},{"name":"u16","size":2},`
	cases := []struct {
		schema string
		want   error
		text   string
	}{
		{`{}`, ErrSyntax, ""},
		{`null`, ErrSyntax, "null"},
		{`[] []`, ErrSyntax, "after"},
		{`[{"size":1}]`, ErrBadDefinition, "no name"},
		{`[{"name":"u8","size":1},{"name":"u8","size":1}]`, ErrBadDefinition, "twice"},
		{`[{"name":"X","foo":1}]`, ErrBadDefinition, "X"},
		{`[{"name":"S","fields":[{"name":"a","type":"u64"}]}]`, ErrUnknownType, `"u64" (in S.a)`},
		{`[{"name":"S","fields":[{"name":"a","type":"S"}]}]`, ErrCycle, "S.a"},
		{`[{"name":"A","alias":"B"},{"name":"B","alias":"A"}]`, ErrCycle, ""},
		{`[{"name":"u16","size":4}]`, ErrBadSize, "u16"},
		{`[{"name":"u128","size":16}]`, ErrUnsupported, "u128"},
		{`[` + prims + `{"name":"S","fields":[{"name":"a","type":"u8","length":-1}]}]`, ErrBadSize, "S.a"},
		{`[` + prims + `{"name":"A","type":"u8","length":2000000000}]`, ErrBadSize, "A"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A",256]]}]`, ErrBadEnum, "E.A"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A","zz"]]}]`, ErrBadEnum, "E.A"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A",1],["A",2]]}]`, ErrBadEnum, "twice"},
		{`[` + prims + `{"name":"E","underlying":"S","variants":[]},{"name":"S","fields":[]}]`, ErrBadEnum, "E"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A",1],["B",2]]},
		   {"name":"A","fields":[{"name":"t","type":"E"}]},{"name":"B","fields":[{"name":"x","type":"u8"},{"name":"t","type":"E"}]},
		   {"name":"U","discriminator":["t"],"members":["A","B"]}]`, ErrUnionDiscriminator, "offset"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A",1]]},
		   {"name":"A","fields":[{"name":"t","type":"E"}]},{"name":"C","fields":[{"name":"t","type":"E"}]},
		   {"name":"U","discriminator":["t"],"members":["A","C"]}]`, ErrUnionDiscriminator, "not a variant"},
		{`[` + prims + `{"name":"A","fields":[{"name":"t","type":"u8"}]},{"name":"U","discriminator":["t"],"members":["A"]}]`, ErrUnionDiscriminator, "not an enum"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A",1],["B",1]]},{"name":"A","fields":[{"name":"t","type":"E"}]},
		   {"name":"U","discriminator":["t"],"members":["A"]}]`, ErrUnionDiscriminator, "as variant B does"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A","5"]]}]`, ErrBadEnum, "E.A"},
		{`[{"name":"u64","size":8},{"name":"E","underlying":"u64","variants":[["A",9007199254740993]]}]`, ErrBadEnum, "2^53"},
		{`[` + prims + `{"name":"E","underlying":"u8","offset":"0b1","variants":[["A",1]]}]`, ErrBadEnum, "offset"},
		{`[` + prims + `{"name":"A","fields":[{"name":"t","type":"u8"}]},{"name":"U","discriminator":["x"],"members":["A"]}]`, ErrUnionDiscriminator, "no field x"},
		{`[{"name":"U","discriminator":["x"],"members":[]}]`, ErrUnionDiscriminator, "without members"},
		{`[` + prims + `{"name":"E","underlying":"u8","variants":[["A",1]]},{"name":"A","fields":[{"name":"t","type":"E"}]},
		   {"name":"U","discriminator":["t"],"members":["A"]},{"name":"S","fields":[{"name":"u","type":"U"}]}]`, ErrUnsupported, "S.u"},
	}
	for _, c := range cases {
		_, err := Load([]byte(c.schema))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Load(%s)\n = %v\nwant %v containing %q", c.schema, err, c.want, c.text)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	s := loadFixture(t)
	if _, err := s.Decode("LogEvent", make([]byte, 31)); !errors.Is(err, ErrShortFrame) {
		t.Errorf("short: %v", err)
	}
	bad := make([]byte, 32)
	bad[8] = 9
	if _, err := s.Decode("LogEvent", bad); !errors.Is(err, ErrUnknownVariant) || !strings.Contains(err.Error(), "level") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := s.DecodeJSON("LogEvent", bad, nil); !errors.Is(err, ErrUnknownVariant) {
		t.Errorf("bad level json: %v", err)
	}
	msg := make([]byte, 25)
	msg[0] = 9
	if _, err := s.Decode("Message", msg); !errors.Is(err, ErrUnknownVariant) || !strings.Contains(err.Error(), "header.msgType") {
		t.Errorf("bad discriminator: %v", err)
	}
	msg[0] = 2 // Cancel: 14 bytes suffice
	if _, err := s.Decode("Message", msg[:14]); err != nil {
		t.Errorf("cancel: %v", err)
	}
	if _, err := s.Decode("Message", msg[:13]); !errors.Is(err, ErrShortFrame) {
		t.Errorf("short cancel: %v", err)
	}
	if _, err := s.Decode("Message", msg[:1]); !errors.Is(err, ErrShortFrame) {
		t.Errorf("short discriminator: %v", err)
	}
	order := make([]byte, 25)
	order[0], order[6], order[7] = 1, 10, 0x10 // perm has an unknown bit
	if _, err := s.Decode("Message", order); !errors.Is(err, ErrUnknownVariant) || !strings.Contains(err.Error(), "perm") {
		t.Errorf("bad flags: %v", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	s := loadFixture(t)
	frame := make([]byte, 64)
	cases := []struct {
		typ, line string
		want      error
	}{
		{"LogEvent", `{"timestamp":-1}`, ErrValue},
		{"LogEvent", `{"timestamp":18446744073709551616}`, ErrValue},
		{"LogEvent", `{"timestamp":1.5}`, ErrValue},
		{"LogEvent", `{"level":"Loud"}`, ErrUnknownVariant},
		{"LogEvent", `{"level":7}`, ErrUnknownVariant},
		{"LogEvent", `{"message":"this message is far too long for 23 bytes"}`, ErrValue},
		{"LogEvent", `{"colour":1}`, ErrUnknownField},
		{"LogEvent", `{"timestamp":1} x`, ErrValue},
		{"LogEvent", `[1]`, ErrValue},
		{"LogEvent", `null`, ErrValue},
		{"Message", `"Order"`, ErrValue},
		{"Message", `{"header":{"msgType":"Nope"}}`, ErrUnknownVariant},
		{"Message", `{"header":{}}`, ErrUnionDiscriminator},
		{"Message", `{"header":{"msgType":"Cancel"},"side":"Buy"}`, ErrUnknownField},
		{"Arrays", `{"bytes":[1,2,3,4,5]}`, ErrValue},
		{"Primitives", `{"a":256}`, ErrValue},
		{"Signed", `{"a":-129}`, ErrValue},
		{"Order", `{"header":{"msgType":1},"side":"Buy","perm":["Read","Fly"]}`, ErrUnknownVariant},
		{"Order", `{"header":{"msgType":1},"side":"Buy","perm":16}`, ErrUnknownVariant},
	}
	for _, c := range cases {
		if _, err := s.EncodeJSON(c.typ, []byte(c.line), frame); !errors.Is(err, c.want) {
			t.Errorf("%s %s: %v, want %v", c.typ, c.line, err, c.want)
		}
	}
	if _, err := s.EncodeJSON("LogEvent", []byte(`{}`), frame[:31]); !errors.Is(err, ErrShortFrame) {
		t.Errorf("short: %v", err)
	}
	// Missing values encode as zeros only where zeros decode: Side (offset 10) has no 0.
	for _, line := range []string{`{"header":{"msgType":1}}`, `{"header":{"msgType":1},"side":null}`, `{"side":"Buy"}`} {
		if _, err := s.EncodeJSON("Order", []byte(line), frame); !errors.Is(err, ErrUnknownVariant) || !strings.Contains(err.Error(), "missing") {
			t.Errorf("%s: %v", line, err)
		}
	}
	if _, err := s.EncodeJSON("Order", []byte(`{"header":{"msgType":1},"side":"Buy"}`), frame); err != nil {
		t.Errorf("perm (bitflags) and the rest may be missing: %v", err)
	}
}

// TestEnumNumbersAndUnionSize: enums take numbers on input; a union member is encoded at its own
// size, the rest of a union-sized frame zeroed.
func TestEnumNumbersAndUnionSize(t *testing.T) {
	s := loadFixture(t)
	frame := bytes.Repeat([]byte{0xEE}, 25)
	n, err := s.EncodeJSON("Message", []byte(`{"header":{"msgType":3,"seq":"5"}}`), frame)
	if err != nil || n != 6 {
		t.Fatal(n, err)
	}
	if want := "030005000000" + strings.Repeat("00", 19); hex.EncodeToString(frame) != want {
		t.Fatalf("got %x", frame)
	}
	typ, _ := s.Type("Message")
	if sz, err := typ.EncodedSize(map[string]any{"header": map[string]any{"msgType": "Cancel"}}); sz != 14 || err != nil {
		t.Fatal(sz, err)
	}
	// bendec's offset takes decimal and hex strings; variants take hex and binary strings.
	s2, err := Load([]byte(`[{"name":"u8","size":1},{"name":"E","underlying":"u8","offset":"0x10","bitflags":1,"variants":[["A","0b1"],["B","0x2"]]},
		{"name":"F","underlying":"u8","offset":"3","variants":[["A",1]]}]`))
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if n, err := s2.EncodeJSON("E", []byte(`["A","B"]`), one); err != nil || n != 1 || one[0] != 0x11|0x12 {
		t.Fatalf("bitflags with offset: %x %v", one[0], err)
	}
	if _, err := s2.EncodeJSON("F", []byte(`"A"`), one); err != nil || one[0] != 4 {
		t.Fatalf("decimal offset: %x %v", one[0], err)
	}
	// Side has offset 10: Sell is 11 on the wire.
	order := make([]byte, 25)
	if _, err := s.EncodeJSON("Order", []byte(`{"header":{"msgType":1},"side":11,"perm":3}`), order); err != nil || order[6] != 11 || order[7] != 3 {
		t.Fatalf("%x %v", order, err)
	}
}

type logEvent struct {
	Timestamp uint64
	Level     string
	Message   string
}

type logEventNum struct {
	TS      int64 `bendec:"timestamp"`
	Level   uint8
	Message [23]byte
}

func TestTypedStructs(t *testing.T) {
	s := loadFixture(t)
	frame := make([]byte, 32)
	in := logEvent{Timestamp: 1 << 40, Level: "Error", Message: "disk full"}
	if _, err := s.Encode("LogEvent", in, frame); err != nil {
		t.Fatal(err)
	}
	var out logEvent
	if err := s.DecodeInto("LogEvent", frame, &out); err != nil || out != in {
		t.Fatalf("%+v %v", out, err)
	}
	var num logEventNum
	if err := s.DecodeInto("LogEvent", frame, &num); err != nil {
		t.Fatal(err)
	}
	if num.TS != 1<<40 || num.Level != 3 || string(trimNUL(num.Message[:])) != "disk full" {
		t.Fatalf("%+v", num)
	}
	again := make([]byte, 32)
	if _, err := s.Encode("LogEvent", &num, again); err != nil || !bytes.Equal(again, frame) {
		t.Fatalf("%x %v", again, err)
	}
	type small struct{ Level int8 }
	frame[8] = 3
	var sm small
	if err := s.DecodeInto("LogEvent", frame, &sm); err != nil || sm.Level != 3 {
		t.Fatal(sm, err)
	}
	var wrong struct{ Timestamp uint8 }
	if err := s.DecodeInto("LogEvent", frame, &wrong); !errors.Is(err, ErrValue) {
		t.Fatalf("overflow: %v", err)
	}
	var any1 any
	if err := s.DecodeInto("LogEvent", frame, &any1); err != nil || any1.(map[string]any)["level"] != "Error" {
		t.Fatal(any1, err)
	}
}

// TestErrorPaths: value errors name the sentinel, the path to the value, then the detail.
func TestErrorPaths(t *testing.T) {
	s := loadFixture(t)
	bad := make([]byte, 32)
	bad[8] = 9
	_, err := s.Decode("LogEvent", bad)
	if want := "bendec: value matches no enum variant: LogEvent.level: Level has no variant 9"; err == nil || err.Error() != want {
		t.Errorf("decode: %v\nwant %s", err, want)
	}
	_, err = s.DecodeJSON("LogEvent", bad, nil)
	if want := "bendec: value matches no enum variant: LogEvent.level: Level has no variant 9"; err == nil || err.Error() != want {
		t.Errorf("json: %v\nwant %s", err, want)
	}
	_, err = s.EncodeJSON("Arrays", []byte(`{"points":[{},{"x":"x"}]}`), make([]byte, 64))
	if want := `bendec: value does not fit the type: Arrays.points[1].x: string x is not an integer`; err == nil || err.Error() != want || !errors.Is(err, ErrValue) {
		t.Errorf("encode: %v\nwant %s", err, want)
	}
	_, err = s.EncodeJSON("Message", []byte(`{"header":{"msgType":"Order"},"side":"Buy","symbol":"TOO LONG SYMBOL"}`), make([]byte, 64))
	if want := `bendec: value does not fit the type: Order.symbol: string of 15 bytes, room for 8`; err == nil || err.Error() != want {
		t.Errorf("union member: %v\nwant %s", err, want)
	}
}

// TestDecodeIntoOddTargets: DecodeInto refuses, never panics on, targets that do not fit.
func TestDecodeIntoOddTargets(t *testing.T) {
	s := loadFixture(t)
	_, fs := s, loadValues(t)
	targets := func() []any {
		return []any{
			new(int), new(string), new([]any), new(map[string]int), new([2]int), new(fmt.Stringer),
			new(struct{ Timestamp string }), new(struct{ Message [2]byte }), new(struct{ Level bool }),
			new(struct{ Prices []int8 }), new(struct{ Points [1]struct{ X uint8 } }), new(struct{ Header *struct{ MsgType float32 } }),
			new(struct{ Perm []string }), new(struct{ Perm int8 }), new(struct{ Names [][]byte }), new(struct{ F int }),
		}
	}
	var nilPtr *struct{}
	for _, f := range fs {
		typ, _ := s.Type(f.Type)
		frame := make([]byte, typ.Size())
		if _, err := typ.EncodeJSON(f.Value, frame); err != nil {
			t.Fatal(err)
		}
		for _, dst := range append(targets(), nil, 3, nilPtr) {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s into %T panicked: %v", f.Type, dst, r)
					}
				}()
				_ = typ.DecodeInto(frame, dst)
			}()
		}
	}
	var h struct{ Header *struct{ MsgType float32 } }
	if err := s.DecodeInto("Cancel", make([]byte, 14), &h); err == nil {
		t.Error("enum 0 (no variant) decoded")
	}
}

func TestWalk(t *testing.T) {
	s := loadFixture(t)
	fs := loadValues(t)
	var got []string
	collect := func(f Field) error {
		got = append(got, fmt.Sprintf("%s@%d+%d %s=%s", f.Path, f.Offset, f.Size, f.Type, f.Value))
		return nil
	}
	for _, i := range []int{0, 9, 12} {
		typ, _ := s.Type(fs[i].Type)
		frame := make([]byte, typ.Size())
		if _, err := typ.EncodeJSON(fs[i].Value, frame); err != nil {
			t.Fatal(err)
		}
		if err := typ.Walk(frame, collect); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"timestamp@0+8 u64=1764547200123456789", "level@8+1 Level=\"Info\"", "message@9+23 char[23]=\"Application started\"",
		"prices[0]@0+4 u32=1", "prices[1]@4+4 u32=2", "prices[2]@8+4 u32=4294967295",
		"names[0]@12+8 char[8]=\"abc\"", "names[1]@20+8 char[8]=\"12345678\"",
		"points[0].x@28+8 i64=-5", "points[0].y@36+8 f64=0.25", "points[1].x@44+8 i64=9223372036854775807", "points[1].y@52+8 f64=-0",
		"bytes[0]@60+1 u8=0", "bytes[1]@61+1 u8=1", "bytes[2]@62+1 u8=128", "bytes[3]@63+1 u8=255",
		"header.msgType@0+2 MsgType=\"Order\"", "header.seq@2+4 u32=1", "side@6+1 Side=\"Buy\"",
		"perm@7+2 Perm=[\"Read\",\"Write\",\"Exec\",\"Admin\"]", "price@9+8 u64=1", "symbol@17+8 char[8]=\"MSFT\"",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	bad := make([]byte, 32)
	bad[8] = 9
	typ, _ := s.Type("LogEvent")
	n := 0
	err := typ.Walk(bad, func(Field) error { n++; return nil })
	if !errors.Is(err, ErrUnknownVariant) || n != 1 || !strings.Contains(err.Error(), "LogEvent.level") {
		t.Errorf("bad level: %v after %d fields", err, n)
	}
	msg, _ := s.Type("Message")
	order := make([]byte, 25)
	order[0], order[6], order[7] = 1, 10, 0x10
	if err := msg.Walk(order, func(Field) error { return nil }); !errors.Is(err, ErrUnknownVariant) ||
		!strings.Contains(err.Error(), ": Order.perm: ") {
		t.Errorf("bad perm: %v", err)
	}
	stop := errors.New("stop")
	if err := typ.Walk(make([]byte, 32), func(Field) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
}
