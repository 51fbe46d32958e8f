package cursorfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	name := filepath.Join(t.TempDir(), "c")
	if c, ok, err := Load(name, 7); ok || err != nil || c != 0 {
		t.Fatalf("missing file: %d %v %v", c, ok, err)
	}
	if err := Save(name, "/dev/shm/log", 7, 1234); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := Load(name, 7); !ok || err != nil || c != 1234 {
		t.Fatalf("saved: %d %v %v", c, ok, err)
	}
	if _, _, err := Load(name, 8); err == nil || !strings.Contains(err.Error(), "saved for log id 0000000000000007, but this log has id 0000000000000008") {
		t.Fatalf("other log: %v", err)
	}
	if c, ok, err := Load(name, 0); !ok || err != nil || c != 1234 {
		t.Fatalf("log without id: %d %v %v", c, ok, err)
	}
	for in, want := range map[string]int64{"42\n": 42, "  \n": -1} {
		if err := os.WriteFile(name, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		c, ok, err := Load(name, 7)
		if err != nil || ok != (want >= 0) || ok && c != want {
			t.Fatalf("%q: %d %v %v", in, c, ok, err)
		}
	}
	if err := os.WriteFile(name, []byte("{bad"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(name, 7); err == nil || !strings.HasPrefix(err.Error(), name+": not a saved cursor") {
		t.Fatalf("bad file: %v", err)
	}
	if err := Save(filepath.Join(name+".d", "c"), "/x", 7, 1); err == nil {
		t.Fatal("save into a missing directory: no error")
	}
}
