package flock

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOFD: byte-0 locks exclude between open file descriptions of one process (which is what
// lets a test, or a writer and its own readers, see them), and release on unlock.
func TestOFD(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(flag int) *os.File {
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	reader, other, recycler := open(os.O_RDONLY), open(os.O_RDONLY), open(os.O_RDWR) // an exclusive lock needs write access
	if !ShareOFD(reader.Fd()) || !ShareOFD(other.Fd()) {
		t.Fatal("shared locks exclude each other")
	}
	if TryExclusiveOFD(recycler.Fd()) {
		t.Fatal("exclusive lock taken while readers share")
	}
	UnlockOFD(reader.Fd())
	UnlockOFD(other.Fd())
	if !TryExclusiveOFD(recycler.Fd()) {
		t.Fatal("exclusive lock refused with no reader")
	}
	if ShareOFD(reader.Fd()) {
		t.Fatal("shared lock taken while the recycler holds it")
	}
	UnlockOFD(recycler.Fd())
	if !ShareOFD(reader.Fd()) {
		t.Fatal("shared lock refused after the recycler let go")
	}
}
