// Package cursorfile keeps where a reader of a log stopped, in a small JSON file that a later
// run resumes from (shmio tail --cursor-file). The file names the log's identity, so a log
// recreated at the same path is not resumed at an old byte offset.
package cursorfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shmio/shmio/internal/atomicfile"
)

// Data is the content of a cursor file. ID ties it to one log: a log recreated at the same path
// gets a new ID, and resuming there at an old byte offset would be wrong.
type Data struct {
	Log    string `json:"log"`
	ID     string `json:"id,omitempty"`
	Cursor int64  `json:"cursor"`
}

// Load reads the cursor file name for the log with identity id (0: unknown, as for Node-made
// logs). A missing or empty file means no saved cursor (ok false). A bare number is accepted too,
// for hand-written files. Errors start with name.
func Load(name string, id uint64) (cursor int64, ok bool, err error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", name, unwrapPathError(err))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, false, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n, true, nil
	}
	var d Data
	if err := json.Unmarshal([]byte(s), &d); err != nil || d.Cursor < 0 {
		return 0, false, fmt.Errorf("%s: not a saved cursor (want JSON written by shmio tail, or a number)", name)
	}
	if want := idText(id); d.ID != "" && want != "" && d.ID != want {
		return 0, false, fmt.Errorf("%s: saved for log id %s, but this log has id %s (recreated?); delete the file to start over", name, d.ID, want)
	}
	return d.Cursor, true, nil
}

// Save replaces the cursor file atomically, so a crash leaves either the old cursor or the new
// one, never a torn file.
func Save(name, logPath string, id uint64, cursor int64) error {
	abs, err := filepath.Abs(logPath)
	if err != nil {
		abs = logPath
	}
	b, _ := json.Marshal(Data{Log: abs, ID: idText(id), Cursor: cursor})
	if err := atomicfile.Write(name, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving cursor %d to %s: %w", cursor, name, unwrapPathError(err))
	}
	return nil
}

// idText is a log identity as text, "" for logs without one (Node-made).
func idText(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("%016x", id)
}

// unwrapPathError drops the "open /path:" prefix of *fs.PathError: the message names the file.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
