package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newTailCmd()) }

type tailOptions struct {
	follow     bool
	from       string
	cursorFile string
	format     string
	lines      int
	name       string
}

func newTailCmd() *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail PATH|DIR",
		Short: "Print frames, optionally following the log as frames are committed",
		Long: `Print frames of a log, one per line.

Where to start:
  by default          the last -n frames (10 unless -n is given), like tail(1)
  --from start        the first frame
  --from end          the committed end: only frames committed from now on (useful with -f)
  --from CURSOR       a frame's cursor, as printed by --format json, dump or stat
  --cursor-file F     where the previous run stopped, saved in F; when F does not exist yet,
                      --from decides (default start). The cursor after the last printed frame is
                      saved to F on exit, including on Ctrl-C or SIGTERM, so the next run neither
                      misses nor repeats a frame. F is replaced atomically.
With --from or --cursor-file, -n N stops after N frames.

-f keeps following: it sleeps until the writer commits more (no polling on logs made by
shmio-go) and prints frames as they come, until interrupted or until the log is sealed.

Formats: text prints the payload as is; hex and base64 encode it; json prints objects with
the frame's cursor, payload length, the next cursor, and "payload" (when it is valid UTF-8)
or "payload_base64".

Given a queue directory, tail reads across its segments (following rolls with -f). Queue cursors
are one int64, segment<<32 | offset; --from also takes SEGMENT:OFFSET, and json lines add
"segment" and "offset". --name READER reads as a named reader: it resumes where that reader
stopped (a new reader starts at --from, default start; an explicit --from moves it), its cursor
is kept in the queue (so retention keeps what it has not read, and stat shows its lag), and it is
saved on exit, Ctrl-C included. --cursor-file is for log files only.`,
		Example: `  shmio tail /dev/shm/events
  shmio tail -f /dev/shm/events
  shmio tail /dev/shm/events --from start -n 100 --format json
  shmio tail -f /dev/shm/events --cursor-file ~/.events.cursor
  shmio tail -f /dev/shm/events.q --name billing`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if shmio.IsQueue(args[0]) {
				return runTailQueue(cmd, args[0], o)
			}
			if o.name != "" {
				return errors.New("--name is for queues (a named reader); with a log file use --cursor-file")
			}
			return runTail(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing frames as they are committed")
	f.StringVar(&o.from, "from", "", "where to start: start, end or a CURSOR (default: the last -n frames)")
	f.StringVar(&o.cursorFile, "cursor-file", "", "resume from the cursor saved in this file and save it on exit")
	f.StringVar(&o.format, "format", "text", "output format: text, hex, json or base64")
	f.IntVarP(&o.lines, "lines", "n", 10, "number of frames (see above)")
	f.StringVar(&o.name, "name", "", "with a queue: read as this named reader, resuming where it stopped")
	return cmd
}

// frameFormatter appends the printed form of a frame at cursor c (with the next cursor) to buf.
type frameFormatter func(buf []byte, p []byte, c, next int64) []byte

// jsonFrame is one line of --format json.
type jsonFrame struct {
	Cursor        int64  `json:"cursor"`
	Length        int    `json:"length"`
	Next          int64  `json:"next"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
}

func formatterFor(name string) (frameFormatter, error) {
	switch name {
	case "text":
		return func(buf, p []byte, _, _ int64) []byte { return append(append(buf, p...), '\n') }, nil
	case "hex":
		return func(buf, p []byte, _, _ int64) []byte { return append(hex.AppendEncode(buf, p), '\n') }, nil
	case "base64":
		return func(buf, p []byte, _, _ int64) []byte {
			return append(base64.StdEncoding.AppendEncode(buf, p), '\n')
		}, nil
	case "json":
		// Built by hand rather than with encoding/json: reflection made it the slowest format
		// by a factor of ten. jsonFrame documents the shape; the test decodes it with it.
		return func(buf, p []byte, c, next int64) []byte {
			buf = append(buf, `{"cursor":`...)
			buf = strconv.AppendInt(buf, c, 10)
			buf = append(buf, `,"length":`...)
			buf = strconv.AppendInt(buf, int64(len(p)), 10)
			buf = append(buf, `,"next":`...)
			buf = strconv.AppendInt(buf, next, 10)
			return appendJSONPayload(buf, p)
		}, nil
	}
	return nil, fmt.Errorf("invalid --format %q: want text, hex, json or base64", name)
}

// appendJSONPayload ends a JSON frame line: the payload as text when it is valid UTF-8, else
// as base64 under its own key.
func appendJSONPayload(buf, p []byte) []byte {
	if utf8.Valid(p) {
		buf = append(buf, `,"payload":`...)
		buf = appendJSONString(buf, p)
	} else {
		buf = append(buf, `,"payload_base64":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, p)
		buf = append(buf, '"')
	}
	return append(buf, '}', '\n')
}

// appendJSONString appends valid UTF-8 text s as a JSON string.
func appendJSONString(buf, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i, b := range s {
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch b {
		case '"', '\\':
			buf = append(buf, '\\', b)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
		}
		start = i + 1
	}
	return append(append(buf, s[start:]...), '"')
}

func runTail(cmd *cobra.Command, path string, o tailOptions) error {
	format, err := formatterFor(o.format)
	if err != nil {
		return err
	}
	if o.lines < 0 {
		return fmt.Errorf("invalid -n %d: want a number of frames, 0 or more", o.lines)
	}
	// DebugChecks: an operator's tool checks both lengths of every frame rather than print
	// garbage from a damaged log; the cost is one more load per frame.
	l, it, err := openReader(path)
	if err != nil {
		return err
	}
	defer l.Close()
	h := l.Header()

	saved, haveSaved, err := loadCursor(o.cursorFile, h)
	if err != nil {
		return err
	}
	if o.cursorFile != "" {
		// Fail now rather than after printing frames whose cursor could not be saved.
		if fi, err := os.Stat(filepath.Dir(o.cursorFile)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--cursor-file %s: directory %s does not exist", o.cursorFile, filepath.Dir(o.cursorFile))
		}
	}
	limit := int64(-1) // frames to print; -1 = no limit
	fromGiven := cmd.Flags().Changed("from") || o.cursorFile != ""
	if fromGiven && cmd.Flags().Changed("lines") {
		limit = int64(o.lines)
	}
	switch {
	case haveSaved:
		if err := seekCursor(it, path, saved); err != nil {
			return fmt.Errorf("%w (saved in %s; delete it to start over)", err, o.cursorFile)
		}
	case fromGiven:
		switch from := o.from; from {
		case "", "start":
			// already at cursor 0
		case "end":
			if _, err := it.Seek(0, io.SeekEnd); err != nil {
				return fmt.Errorf("%s: %s", path, rootCause(err))
			}
		default:
			c, err := parseCursor(from)
			if err != nil {
				return fmt.Errorf("invalid --from %q: want start, end or a cursor", from)
			}
			if err := seekCursor(it, path, c); err != nil {
				return err
			}
		}
	default:
		// The last N frames: step back from the committed end.
		if _, err := it.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
		for i := 0; i < o.lines; i++ {
			end := it.Cursor()
			p, err := it.Prev()
			if err != nil {
				what := frameEndProblem(path, h, end)
				if what == "" {
					what = rootCause(err)
				}
				return &exitError{1, fmt.Errorf("%s: corrupt frame ending at cursor %d: %s (run shmio verify)", path, end, what)}
			}
			if p == nil {
				break
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	overhead := 2 * lenFieldSize(h)
	var buf []byte
	var walkErr error
	for printed := int64(0); limit < 0 || printed < limit; {
		c := it.Cursor()
		p, err := it.Next()
		if err != nil {
			walkErr = &exitError{1, fmt.Errorf("%s: corrupt %s (run shmio verify)", path, describeCorrupt(path, h, c, it.End(), err))}
			break
		}
		if p == nil {
			// A sealed log gets no more frames: following it ends here.
			if !o.follow || l.Header().Sealed {
				break
			}
			// Everything committed so far is printed: show it before sleeping.
			if err := out.Flush(); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
			if err := it.Wait(ctx); err != nil {
				// Sealed while we slept: every frame is printed, following ends.
				if ctx.Err() != nil || errors.Is(err, shmio.ErrSealed) {
					break
				}
				return fmt.Errorf("%s: %s", path, rootCause(err))
			}
			continue
		}
		buf = format(buf[:0], p, c, c+int64(len(p))+overhead)
		if _, err := out.Write(buf); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		printed++
		select {
		case <-ctx.Done():
			limit = printed // stop between frames: the saved cursor follows the last one printed
		default:
		}
	}
	// The cursor is saved only after the frames before it reached the output.
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if o.cursorFile != "" {
		if err := saveCursor(o.cursorFile, path, h, it.Cursor()); err != nil {
			return err
		}
	}
	return walkErr
}

// seekCursor positions it at cursor c, with a message naming what is wrong with c.
func seekCursor(it *shmio.Iterator, path string, c int64) error {
	if _, err := it.Seek(c, io.SeekStart); err != nil {
		return cursorError(path, c, it.End(), err)
	}
	return nil
}

// cursorFileData is the content of a --cursor-file. ID ties it to one log: a log recreated at the
// same path gets a new ID, and resuming there at an old byte offset would be wrong.
type cursorFileData struct {
	Log    string `json:"log"`
	ID     string `json:"id,omitempty"`
	Cursor int64  `json:"cursor"`
}

// loadCursor reads a cursor file. A missing or empty file means "no saved cursor". A bare
// number is accepted too, for hand-written files.
func loadCursor(name string, h shmio.Header) (cursor int64, ok bool, err error) {
	if name == "" {
		return 0, false, nil
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("--cursor-file %s: %w", name, unwrapPathError(err))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, false, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n, true, nil
	}
	var d cursorFileData
	if err := json.Unmarshal([]byte(s), &d); err != nil || d.Cursor < 0 {
		return 0, false, fmt.Errorf("--cursor-file %s: not a saved cursor (want JSON written by shmio tail, or a number)", name)
	}
	if id := logID(h); d.ID != "" && id != "" && d.ID != id {
		return 0, false, fmt.Errorf("--cursor-file %s: saved for log id %s, but this log has id %s (recreated?); delete the file to start over", name, d.ID, id)
	}
	return d.Cursor, true, nil
}

// saveCursor replaces the cursor file atomically: temporary file, fsync, rename, fsync of the
// directory, so a crash leaves either the old cursor or the new one, never a torn file.
func saveCursor(name, logPath string, h shmio.Header, cursor int64) error {
	abs, err := filepath.Abs(logPath)
	if err != nil {
		abs = logPath
	}
	b, _ := json.Marshal(cursorFileData{Log: abs, ID: logID(h), Cursor: cursor})
	b = append(b, '\n')
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving cursor %d to %s: %w", cursor, name, unwrapPathError(err))
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("saving cursor %d to %s: %w", cursor, name, unwrapPathError(err))
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving cursor %d to %s: %w", cursor, name, unwrapPathError(err))
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: the rename is already visible to the next run
		d.Close()
	}
	return nil
}

// logID is the header ID as text, "" for logs without one (Node-made).
func logID(h shmio.Header) string {
	if h.ID == 0 {
		return ""
	}
	return fmt.Sprintf("%016x", h.ID)
}
