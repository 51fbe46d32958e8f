package replicate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// CursorState is what the pusher persists: how far the stream has acknowledged the source log.
type CursorState struct {
	LogID  uint64 // identity of the source log the cursor belongs to
	Stream string
	Cursor int64  // source cursor of the first frame not yet acknowledged
	Seq    uint64 // stream sequence of the last acknowledged frame (informational)
}

type cursorJSON struct {
	LogID  string `json:"log_id"`
	Stream string `json:"stream"`
	Cursor int64  `json:"cursor"`
	Seq    uint64 `json:"seq"`
}

// ReadCursorFile loads a cursor file; ok is false when the file does not exist.
func ReadCursorFile(path string) (st CursorState, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return CursorState{}, false, nil
	}
	if err != nil {
		return CursorState{}, false, fmt.Errorf("replicate: read cursor file: %w", err)
	}
	var j cursorJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return CursorState{}, false, fmt.Errorf("replicate: cursor file %s: %w", path, err)
	}
	id, err := strconv.ParseUint(j.LogID, 16, 64)
	if err != nil || j.Cursor < 0 {
		return CursorState{}, false, fmt.Errorf("replicate: cursor file %s: bad log id or cursor", path)
	}
	return CursorState{LogID: id, Stream: j.Stream, Cursor: j.Cursor, Seq: j.Seq}, true, nil
}

// WriteCursorFile replaces the cursor file atomically: a crash leaves the old or the new state,
// never a torn one (temporary file in the same directory, fsync, rename, fsync of the directory).
func WriteCursorFile(path string, st CursorState) error {
	b, err := json.Marshal(cursorJSON{
		LogID: string(appendHex16(nil, st.LogID)), Stream: st.Stream, Cursor: st.Cursor, Seq: st.Seq,
	})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("replicate: write cursor file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replicate: write cursor file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: the rename is durable once the directory is
		d.Close()
	}
	return nil
}
