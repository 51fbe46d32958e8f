package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmio/shmio"
)

// TestOpenLogs: missing files become logs, an empty directory a queue; a second opener of the
// same response log is refused with shmio.ErrLocked, naming the path.
func TestOpenLogs(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "qin"), filepath.Join(dir, "out")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLogs(in, out, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !shmio.IsQueue(in) || l.Lag == nil || !strings.HasPrefix(l.InputID, "queue:") || l.MaxRecordBytes <= 0 {
		t.Fatalf("queue input: lag %v id %q max %d", l.Lag != nil, l.InputID, l.MaxRecordBytes)
	}
	if err := l.Output.Append([]byte("rec")); err != nil {
		t.Fatal(err)
	}
	if err := l.Output.Commit(); err != nil {
		t.Fatal(err)
	}
	if f, err := l.Outcomes.NextFrame(); err != nil || string(f.Data) != "rec" {
		t.Fatalf("outcomes: %q %v", f.Data, err)
	}
	_, err = OpenLogs(in, out, 1<<16)
	var pe *PathError
	if !errors.Is(err, shmio.ErrLocked) || !errors.As(err, &pe) || pe.Path != out {
		t.Fatalf("second opener: %v", err)
	}
	l2, err := OpenLogs(out, filepath.Join(dir, "out2"), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Lag == nil || l2.InputID == "" {
		t.Fatalf("log input: lag %v id %q", l2.Lag != nil, l2.InputID)
	}
	end, _ := l2.Input.(interface{ End() int64 })
	if f, b, err := l2.Lag(0); err != nil || b != end.End() || (f == 0) != (b == 0) {
		t.Fatalf("lag of the log from its start: %d frames, %d bytes, %v; want %d bytes", f, b, err, end.End())
	}
}
