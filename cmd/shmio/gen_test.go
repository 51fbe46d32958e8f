package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmio/shmio/bendec"
)

const genSchema = `[
  {"name": "u8", "size": 1}, {"name": "u64", "size": 8}, {"name": "char", "size": 1},
  {"name": "Level", "underlying": "u8", "variants": [["Debug", 0], ["Info", 1]]},
  {"name": "LogEvent", "fields": [
    {"name": "timestamp", "type": "u64"}, {"name": "level", "type": "Level"},
    {"name": "message", "type": "char", "length": 23}]}
]`

// TestGenGo: gen go writes what bendec.GenerateGo writes, to stdout or atomically to --out,
// keeping an existing file's mode.
func TestGenGo(t *testing.T) {
	dir := t.TempDir()
	schema := filepath.Join(dir, "types.json")
	if err := os.WriteFile(schema, []byte(genSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := bendec.Load([]byte(genSchema))
	if err != nil {
		t.Fatal(err)
	}
	want, err := bendec.GenerateGo(s, bendec.GenOptions{Package: "events", Source: schema})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, []string{"gen", "go", "--schema", schema, "--package", "events"}); got != string(want) {
		t.Fatalf("stdout differs from GenerateGo:\n%s", got)
	}
	if !strings.Contains(string(want), "func (e *LogEvent) Encode(b []byte) error") || !strings.Contains(string(want), "type LogEventView []byte") {
		t.Fatalf("unexpected code:\n%s", want)
	}
	out := filepath.Join(dir, "events.go")
	mustRun(t, []string{"gen", "go", "--schema", schema, "--package", "events", "--out", out})
	got, err := os.ReadFile(out)
	if err != nil || string(got) != string(want) {
		t.Fatalf("--out: %v\n%s", err, got)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v", fi.Mode())
	}
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, []string{"gen", "go", "--schema", schema, "--package", "events", "-o", out})
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file mode %v, want 0600 kept", fi.Mode())
	}
	if got, _ := os.ReadFile(out); string(got) != string(want) {
		t.Errorf("replaced file:\n%s", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".events.go.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestGenGoErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"name": "S", "fields": [{"name": "a", "type": "u64"}]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(genSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.go")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gen", "go", "--schema", bad, "--package", "events", "--out", out}, `unknown type: "u64" (in S.a)`},
		{[]string{"gen", "go", "--schema", filepath.Join(dir, "missing.json"), "--package", "events"}, "no such file"},
		{[]string{"gen", "go", "--schema", good, "--package", "not valid"}, `package name "not valid"`},
		{[]string{"gen", "go", "--schema", good}, `"package" not set`},
	} {
		r := runShmio(t, c.args)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("shmio %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run wrote %s: %v", out, err)
	}
}
