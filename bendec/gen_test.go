package bendec

import (
	"bytes"
	"errors"
	"flag"
	"os"
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
