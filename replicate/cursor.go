package replicate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
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

func (p *Pusher) loadCursorFile() error {
	if p.cfg.CursorFile == "" {
		return nil
	}
	st, ok, err := ReadCursorFile(p.cfg.CursorFile)
	if err != nil {
		return &permanentError{err}
	}
	if !ok {
		return nil
	}
	if st.LogID != p.cfg.LogID || st.Stream != p.cfg.Stream.Name {
		return fatalf("replicate: cursor file %s belongs to log %016x, stream %q, not log %016x, stream %q",
			p.cfg.CursorFile, st.LogID, st.Stream, p.cfg.LogID, p.cfg.Stream.Name)
	}
	p.cursor.Store(st.Cursor)
	p.seq.Store(st.Seq)
	p.persisted = st.Cursor
	return nil
}

// persist saves the cursor when it moved: in the background at most every PersistEvery (an fsync
// must not stall publishing), or, with force, right away and after any background save.
func (p *Pusher) persist(force bool) error {
	if e := p.saveErr.Load(); e != nil {
		return &fatalError{*e}
	}
	if p.cfg.CursorFile == "" {
		return nil
	}
	cur := p.cursor.Load()
	st := CursorState{LogID: p.cfg.LogID, Stream: p.cfg.Stream.Name, Cursor: cur, Seq: p.seq.Load()}
	if force {
		p.saveMu.Lock()
		defer p.saveMu.Unlock()
		if cur == p.persisted {
			return nil
		}
		if err := WriteCursorFile(p.cfg.CursorFile, st); err != nil {
			return &fatalError{err}
		}
	} else {
		if cur == p.persisted || time.Since(p.lastSave) < p.cfg.PersistEvery || !p.saveMu.TryLock() {
			return nil
		}
		go func() {
			defer p.saveMu.Unlock()
			if err := WriteCursorFile(p.cfg.CursorFile, st); err != nil {
				p.saveErr.Store(&err)
			}
		}()
	}
	p.persisted, p.lastSave = cur, time.Now()
	return nil
}

// DefaultCursorFile is where a pusher of the log (or queue directory) at path to stream keeps
// its cursor when not told otherwise: next to the log, <path>.<stream>.cursor.
func DefaultCursorFile(path, stream string) string {
	return filepath.Clean(path) + "." + stream + ".cursor"
}
