package bendec

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var updateGenerated = flag.Bool("update-generated", false, "rewrite internal/eventstest/events.go")

const generatedFile = "internal/eventstest/events.go"

// TestGeneratedUpToDate fails when the committed generated code for the fixture schema is not
// what GenerateGo writes now; go generate ./bendec/... (or -update-generated) refreshes it.
func TestGeneratedUpToDate(t *testing.T) {
	src, err := GenerateGo(loadFixture(t), GenOptions{Package: "eventstest", Source: "../../testdata/schema.json"})
	if err != nil {
		t.Fatal(err)
	}
	if *updateGenerated {
		if err := os.WriteFile(generatedFile, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, err := os.ReadFile(generatedFile)
	if err != nil || !bytes.Equal(old, src) {
		t.Fatalf("%s is stale (%v): run go test ./bendec -run TestGeneratedUpToDate -update-generated", generatedFile, err)
	}
}

func TestGenerateErrors(t *testing.T) {
	cases := []string{
		`[{"name":"u8","size":1},{"name":"S","fields":[{"name":"a_b","type":"u8"},{"name":"aB","type":"u8"}]}]`,
		`[{"name":"u8","size":1},{"name":"S","fields":[{"name":"encode","type":"u8"}]}]`,
		`[{"name":"u8","size":1},{"name":"S","fields":[]},{"name":"SView","fields":[]}]`,
		`[{"name":"u8","size":1},{"name":"E","underlying":"u8","variants":[["A",1]]},{"name":"EA","fields":[]}]`,
	}
	for _, c := range cases {
		s, err := Load([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := GenerateGo(s, GenOptions{Package: "p"}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v", c, err)
		}
	}
	s := loadFixture(t)
	if _, err := GenerateGo(s, GenOptions{Package: "not a name"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("package: %v", err)
	}
}

// genSchemas are schemas with the corners of generation: a lone char, signed bitflags, arrays
// nested five deep, aliases of aliases, u64 enum values up to 2^53, an empty struct, a union
// whose discriminator is declared through an alias, names that are not Go identifiers.
var genSchemas = []string{
	`[{"name":"char","size":1},{"name":"u8","size":1},{"name":"i8","size":1},{"name":"u64","size":8},{"name":"bool","size":1},
	  {"name":"F","underlying":"i8","bitflags":true,"variants":[["a",1],["b",2],["neg",-128]]},
	  {"name":"Big","underlying":"u64","variants":[["Max","0x1fffffffffffff"],["Zero",0]]},
	  {"name":"A1","alias":"u8"},{"name":"A2","alias":"A1"},
	  {"name":"Empty","fields":[]},
	  {"name":"Row","type":"A2","length":2},
	  {"name":"Deep","fields":[{"name":"c","type":"char"},{"name":"f","type":"F"},{"name":"big","type":"Big"},
	    {"name":"cube","type":"Row","length":2},{"name":"e","type":"Empty","length":3},
	    {"name":"n5","type":"Row5"},{"name":"flags","type":"bool","length":2}]},
	  {"name":"Row3","type":"Row","length":2},{"name":"Row4","type":"Row3","length":2},{"name":"Row5","type":"Row4","length":2},
	  {"name":"Kind","underlying":"u8","variants":[["Deep",1],["my-event",2]]},{"name":"KindAlias","alias":"Kind"},
	  {"name":"my-event","fields":[{"name":"k","type":"KindAlias"},{"name":"9lives","type":"u8"}]},
	  {"name":"Hdr","fields":[{"name":"k","type":"KindAlias"}]},
	  {"name":"U","discriminator":["k"],"members":["my-event"]},
	  {"name":"UAlias","alias":"U"}]`,
}

// TestGeneratedCompiles type-checks generated code for genSchemas with go/types.
func TestGeneratedCompiles(t *testing.T) {
	for i, text := range genSchemas {
		s, err := Load([]byte(text))
		if err != nil {
			t.Fatalf("schema %d: %v", i, err)
		}
		src, err := GenerateGo(s, GenOptions{Package: "p"})
		if err != nil {
			t.Fatalf("schema %d: %v", i, err)
		}
		typeCheck(t, src)
	}
}

// TestGeneratedImports: text in descriptions and names does not make the generator import a
// package the code does not use.
func TestGeneratedImports(t *testing.T) {
	s, err := Load([]byte(`[{"name":"u8","size":1},
	  {"name":"E","underlying":"u8","description":"see math.Pi and binary.LittleEndian","variants":[["math.x",0,"bendec.Y\r\nline two\u0000\ufeff"]]}]`))
	if err != nil {
		t.Fatal(err)
	}
	src, err := GenerateGo(s, GenOptions{Package: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), `"math"`) || strings.Contains(string(src), `"encoding/binary"`) || !strings.Contains(string(src), `"strconv"`) {
		t.Errorf("imports:\n%s", src)
	}
	typeCheck(t, src)
}
