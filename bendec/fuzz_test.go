package bendec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecode decodes random bytes as each fixture type: it never panics, Decode and AppendJSON
// agree on success, and whatever decodes re-encodes to bytes that decode and encode to
// themselves, directly and through JSON.
func FuzzDecode(f *testing.F) {
	s := loadFixture(f)
	names := s.Types()
	data, err := os.ReadFile("testdata/node_frames.json")
	if err != nil {
		f.Fatal(err)
	}
	var frames []string
	if err := json.Unmarshal(data, &frames); err != nil {
		f.Fatal(err)
	}
	for i, fx := range loadValues(f) {
		b, _ := hex.DecodeString(frames[i])
		for j, n := range names {
			if n == fx.Type {
				f.Add(uint8(j), b)
			}
		}
	}
	f.Add(uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, which uint8, frame []byte) {
		typ, err := s.Type(names[int(which)%len(names)])
		if err != nil {
			t.Fatal(err)
		}
		v, err := typ.Decode(frame)
		js, jerr := typ.AppendJSON([]byte("prefix"), frame)
		werr := typ.Walk(frame, func(f Field) error {
			if f.Offset < 0 || f.Offset+f.Size > len(frame) || len(f.Value) == 0 {
				t.Fatalf("field %+v outside a %d-byte frame", f, len(frame))
			}
			return nil
		})
		if (err == nil) != (jerr == nil) || (err == nil) != (werr == nil) {
			t.Fatalf("Decode: %v, AppendJSON: %v, Walk: %v", err, jerr, werr)
		}
		if err != nil {
			if !errors.Is(err, ErrShortFrame) && !errors.Is(err, ErrUnknownVariant) {
				t.Fatalf("unexpected error %v", err)
			}
			if string(js) != "prefix" {
				t.Fatalf("AppendJSON changed dst on error: %q", js)
			}
			return
		}
		b1 := make([]byte, typ.Size())
		n, err := typ.Encode(v, b1)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		v1, err := typ.Decode(b1[:n])
		if err != nil {
			t.Fatal(err)
		}
		b2 := make([]byte, typ.Size())
		if _, err := typ.Encode(v1, b2); err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("not stable: %x then %x, %v", b1, b2, err)
		}
		b3 := make([]byte, typ.Size())
		if _, err := typ.EncodeJSON(js[len("prefix"):], b3); err != nil {
			if strings.Contains(string(js), `\ufffd`) && errors.Is(err, ErrValue) {
				return // invalid UTF-8 grew into U+FFFD and no longer fits
			}
			t.Fatalf("EncodeJSON(%s): %v", js, err)
		}
		js3, err := typ.AppendJSON(nil, b3)
		if err != nil || !sameJSON(t, js3, js[len("prefix"):]) { // \ufffd may come back as itself
			t.Fatalf("JSON not stable:\n%s\n%s %v", js, js3, err)
		}
	})
}

// FuzzSchema loads random schema text: it never panics, and what loads has sane sizes,
// decodes a zero frame without panicking and generates Go that compiles.
func FuzzSchema(f *testing.F) {
	data, err := os.ReadFile("testdata/schema.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`[{"name":"u8","size":1},{"name":"E","underlying":"u8","bitflags":true,"variants":[["A",1],["B","0x2"]]},{"name":"S","fields":[{"name":"e","type":"E","length":2}]}]`))
	f.Add([]byte(`[{"name":"A","alias":"B"},{"name":"B","alias":"A"}]`))
	f.Add([]byte(`[{"name":"char","size":1},{"name":"N","type":"char","length":3},{"name":"S","fields":[{"name":"n","type":"N","length":2}]}]`))
	f.Fuzz(func(t *testing.T, text []byte) {
		s, err := Load(text)
		if err != nil {
			return
		}
		for _, name := range s.Types() {
			typ, err := s.Type(name)
			if err != nil {
				t.Fatal(err)
			}
			if typ.Size() < 0 || typ.Size() > maxTypeSize {
				t.Fatalf("%s: size %d", name, typ.Size())
			}
			if typ.Size() > 1<<16 {
				continue
			}
			zero := make([]byte, typ.Size())
			if v, err := typ.Decode(zero); err == nil {
				if _, err := typ.Encode(v, make([]byte, typ.Size())); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			_, _ = typ.AppendJSON(nil, zero)
		}
		src, err := GenerateGo(s, GenOptions{Package: "events"})
		if err != nil && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("GenerateGo: %v", err)
		}
		if err == nil {
			typeCheck(t, src)
		}
	})
}

// FuzzEncodeJSON encodes random JSON lines as each fixture type, as shmio append --schema does:
// it never panics, and what encodes decodes (to JSON that encodes to the same bytes).
func FuzzEncodeJSON(f *testing.F) {
	s := loadFixture(f)
	names := s.Types()
	for _, fx := range loadValues(f) {
		for j, n := range names {
			if n == fx.Type {
				f.Add(uint8(j), []byte(fx.Value))
			}
		}
	}
	f.Add(uint8(0), []byte(`true`))
	f.Add(uint8(4), []byte(`"18446744073709551615"`))
	f.Add(uint8(17), []byte(`["Read", 4]`))
	f.Fuzz(func(t *testing.T, which uint8, line []byte) {
		typ, err := s.Type(names[int(which)%len(names)])
		if err != nil {
			t.Fatal(err)
		}
		if typ.Size() > 1<<12 {
			return
		}
		frame := make([]byte, typ.Size())
		n, err := typ.EncodeJSON(line, frame)
		if err != nil {
			return
		}
		js, err := typ.AppendJSON(nil, frame[:n])
		if err != nil {
			t.Fatalf("%s encoded %x from %s but does not decode: %v", typ.Name(), frame, line, err)
		}
		again := make([]byte, typ.Size())
		if _, err := typ.EncodeJSON(js, again); err != nil && !strings.Contains(string(js), `\ufffd`) {
			t.Fatalf("%s: %s: %v", typ.Name(), js, err)
		} else if err == nil && !bytes.Equal(again, frame) && !strings.Contains(string(js), "NaN") {
			t.Fatalf("%s: %s -> %x -> %s -> %x", typ.Name(), line, frame, js, again)
		}
	})
}

// FuzzParseJSON holds ParseJSON to encoding/json (with UseNumber): the same inputs are valid,
// and valid ones parse to the same value.
func FuzzParseJSON(f *testing.F) {
	for _, fx := range loadValues(f) {
		f.Add([]byte(fx.Value))
	}
	for _, s := range []string{` {"a": [1, -0.5e+3, "\u00e9\ud83d\ude00\ud800x\n", true, false, null]} `, `"\xff\xfe"`,
		`[1,]`, `{"a" 1}`, `01`, `-`, `1.`, `1e`, `"\u12"`, `"\ud800\u"`, "\"\x01\"", `[[[]]]`, `{"a":1,"a":2}`, `1 2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseJSON(in)
		valid := json.Valid(in)
		if (err == nil) != valid {
			t.Fatalf("ParseJSON(%q): %v, but json.Valid says %v", in, err, valid)
		}
		if !valid {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseJSON(%q) = %#v\nencoding/json: %#v", in, got, want)
		}
	})
}
