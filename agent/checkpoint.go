package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Checkpoint is the content of the agent's cursor file.
type Checkpoint struct {
	// Cursor is the input cursor to resume from: every prompt before it has a committed outcome.
	Cursor int64 `json:"cursor"`
	// OutCursor is the response-log position from which every outcome already written for a
	// prompt at or past Cursor can be found (-1 when unknown); a restart scans from there.
	OutCursor int64 `json:"out_cursor"`
	// InputID identifies the input log (Config.InputID), so a checkpoint is not applied to
	// another log by mistake.
	InputID string    `json:"input_id,omitempty"`
	Updated time.Time `json:"updated"`
}

// ReadCheckpoint reads a checkpoint file. A missing file is an error wrapping fs.ErrNotExist.
func ReadCheckpoint(path string) (Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	if cp.Cursor < 0 {
		return Checkpoint{}, fmt.Errorf("read checkpoint %s: negative cursor %d", path, cp.Cursor)
	}
	return cp, nil
}

// WriteCheckpoint replaces the checkpoint file atomically: a temporary file in the same directory
// is written and fsynced, then renamed over the old one, and the directory is fsynced.
func WriteCheckpoint(path string, cp Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic replaces a file atomically: a temporary file in the same directory is written
// and fsynced, then renamed over the old one, and the directory is fsynced.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	// The rename is durable only once the directory is synced; failure to open it is not fatal
	// (some filesystems refuse), the rename itself already happened.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
