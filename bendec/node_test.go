package bendec

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/node_frames.json from Node bendec's output")

const bendecVersion = "0.51.0"

// nodeBendec returns a node_modules directory holding bendec@0.51.0, installing it with npm
// once into the user cache directory. It skips the test only when node or npm is missing; a
// failing install fails the test (CI has the npm registry).
func nodeBendec(t *testing.T) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found in PATH: skipping the cross-language test against Node bendec " + bendecVersion)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found in PATH: skipping the cross-language test against Node bendec " + bendecVersion)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "shmio-go", "bendec-"+bendecVersion)
	modules = filepath.Join(dir, "node_modules")
	if pkg, err := os.ReadFile(filepath.Join(modules, "bendec", "package.json")); err == nil && bytes.Contains(pkg, []byte(`"version": "`+bendecVersion+`"`)) {
		return node, modules
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	// Install beside the final place and rename, so a concurrent or interrupted run never sees
	// half a tree.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private": true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "bendec@"+bendecVersion)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install bendec@%s failed (the test needs the npm registry): %v\n%s", bendecVersion, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(modules, "bendec")); serr != nil {
			t.Fatal(err)
		}
	}
	return node, modules
}

// quoteNumbers turns every number of a parsed JSON value into its decimal string, for Node
// (whose JSON.parse would round 64-bit integers).
func quoteNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		return string(x)
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = quoteNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = quoteNumbers(e)
		}
		return out
	}
	return v
}

// TestNodeBendec checks the Go codec against Node bendec 0.51.0 on fixtures of every kind
// (primitives with 64-bit extremes, char arrays, arrays, nested structs, enums with offset and
// bitflags, a union with an enum discriminator, the seed README's LogEvent): Node's frames equal
// Go's byte for byte (and the committed golden file), Go decodes Node's frames to the fixture
// values and re-encodes them to the same bytes, and Node decodes Go's frames to the same values.
func TestNodeBendec(t *testing.T) {
	node, modules := nodeBendec(t)
	s := loadFixture(t)
	fixtures := loadValues(t)
	dir := t.TempDir()

	var forNode []map[string]any
	var goHex []string
	for i, f := range fixtures {
		typ, err := s.Type(f.Type)
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, typ.Size())
		if _, err := typ.EncodeJSON(f.Value, frame); err != nil {
			t.Fatalf("fixture %d: %v", i, err)
		}
		goHex = append(goHex, hex.EncodeToString(frame))
		v, _ := ParseJSON(f.Value)
		forNode = append(forNode, map[string]any{"type": f.Type, "value": quoteNumbers(v)})
	}
	write := func(name string, v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	schema, _ := filepath.Abs("testdata/schema.json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "testdata/crosscheck.js", schema, write("values.json", forNode), write("goframes.json", goHex))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node crosscheck.js: %v\n%s", err, stderr.String())
	}
	var res struct {
		NodeFrames []string          `json:"nodeFrames"`
		Decoded    []json.RawMessage `json:"decoded"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.NodeFrames) != len(fixtures) || len(res.Decoded) != len(fixtures) {
		t.Fatalf("node output: %v\n%s", err, out)
	}
	for i, f := range fixtures {
		if res.NodeFrames[i] != goHex[i] {
			t.Errorf("fixture %d %s: bytes differ\nnode %s\n  go %s", i, f.Type, res.NodeFrames[i], goHex[i])
		}
		nodeFrame, _ := hex.DecodeString(res.NodeFrames[i])
		js, err := s.DecodeJSON(f.Type, nodeFrame, nil)
		if err != nil {
			t.Errorf("fixture %d: Go decoding Node's frame: %v", i, err)
		} else if !sameJSON(t, js, f.Value) {
			t.Errorf("fixture %d: Go decoded Node's frame as\n%s\nwant %s", i, js, f.Value)
		}
		again := make([]byte, len(nodeFrame))
		if _, err := s.EncodeJSON(f.Type, js, again); err != nil || !bytes.Equal(again, nodeFrame) {
			t.Errorf("fixture %d: Go re-encoded %x, %v; Node wrote %x", i, again, err, nodeFrame)
		}
		if !sameJSON(t, res.Decoded[i], f.Value) {
			t.Errorf("fixture %d: Node decoded Go's frame as\n%s\nwant %s", i, res.Decoded[i], f.Value)
		}
	}
	golden, _ := json.MarshalIndent(res.NodeFrames, "", "  ")
	golden = append(golden, '\n')
	if *updateGolden {
		if err := os.WriteFile("testdata/node_frames.json", golden, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if old, err := os.ReadFile("testdata/node_frames.json"); err != nil || !bytes.Equal(old, golden) {
		t.Errorf("testdata/node_frames.json is not what Node bendec wrote (%v); run go test -run TestNodeBendec -update", err)
	}
}

// TestGoldenNodeFrames runs without node: the frames Node bendec wrote (committed by
// TestNodeBendec -update) decode to the fixtures and Go encodes the fixtures to them.
func TestGoldenNodeFrames(t *testing.T) {
	s := loadFixture(t)
	fixtures := loadValues(t)
	data, err := os.ReadFile("testdata/node_frames.json")
	if err != nil {
		t.Fatal(err)
	}
	var frames []string
	if err := json.Unmarshal(data, &frames); err != nil || len(frames) != len(fixtures) {
		t.Fatalf("%v: %d frames for %d fixtures", err, len(frames), len(fixtures))
	}
	for i, f := range fixtures {
		want, _ := hex.DecodeString(frames[i])
		got := bytes.Repeat([]byte{0xA5}, len(want))
		if _, err := s.EncodeJSON(f.Type, f.Value, got); err != nil || !bytes.Equal(got, want) {
			t.Errorf("fixture %d %s: Go %x, %v\nNode %x", i, f.Type, got, err, want)
		}
		js, err := s.DecodeJSON(f.Type, want, nil)
		if err != nil || !sameJSON(t, js, f.Value) {
			t.Errorf("fixture %d: %s %v", i, js, err)
		}
		if strings.Contains(string(js), "__big") {
			t.Errorf("fixture %d: %s", i, js)
		}
	}
}
