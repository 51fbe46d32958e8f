package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"unicode/utf8"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/internal/cursorfile"
	"github.com/spf13/cobra"
)

func init() { register(newTailCmd()) }

type tailOptions struct {
	follow     bool
	from       string
	cursorFile string
	format     string
	raw        bool
	lines      int
	name       string
	schema     schemaOptions
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

-f keeps following: it sleeps until the writer commits more and prints frames as they come,
until interrupted or until the log is sealed.

Formats: text prints the payload with control bytes shown the way cat -v shows them (^[ for
ESC, ^J for a newline inside a frame, ^? for DEL), so a frame cannot move the cursor or change
the terminal; --raw prints the payload bytes as they are. hex and base64 encode it; json prints
objects with the frame's cursor, payload length, the next cursor, and "payload" (when it is
valid UTF-8) or "payload_base64".

Given a queue directory, tail reads across its segments (following rolls with -f). Queue cursors
are one int64, segment<<32 | offset; --from also takes SEGMENT:OFFSET, and json lines add
"segment" and "offset". --name READER reads as a named reader: it resumes where that reader
stopped (a new reader starts at --from, default start; an explicit --from moves it), its cursor
is kept in the queue (so retention keeps what it has not read, and stat shows its lag), and it is
saved on exit, Ctrl-C included. --cursor-file is for log files only.` + schemaHelp + `
With --schema, text prints each event as one JSON object per line, json prints it as "value"
beside the cursor; a frame that does not decode is reported on stderr with its cursor and the
reason, tail goes on, and exits 1 at the end.`,
		Example: `  shmio tail /dev/shm/events
  shmio tail -f /dev/shm/events
  shmio tail /dev/shm/events --from start -n 100 --format json
  shmio tail -f /dev/shm/events --cursor-file ~/.events.cursor
  shmio tail -f /dev/shm/events.q --name billing
  shmio tail -f /dev/shm/events --schema types.json --type LogEvent`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error { return runTail(cmd, args[0], o) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing frames as they are committed")
	f.StringVar(&o.from, "from", "", "where to start: start, end or a CURSOR (default: the last -n frames)")
	f.StringVar(&o.cursorFile, "cursor-file", "", "resume from the cursor saved in this file and save it on exit")
	f.StringVar(&o.format, "format", "text", "output format: text, hex, json or base64")
	f.BoolVar(&o.raw, "raw", false, "with --format text: print payloads as they are, control bytes included")
	f.IntVarP(&o.lines, "lines", "n", 10, "number of frames (see above)")
	f.StringVar(&o.name, "name", "", "with a queue: read as this named reader, resuming where it stopped")
	addSchemaFlags(cmd, &o.schema)
	return cmd
}

// frameFormatter appends the printed form of frame f to buf.
type frameFormatter func(buf []byte, f shmio.Frame) []byte

// jsonFrame is one line of --format json; a queue's lines add Segment and Offset.
type jsonFrame struct {
	Cursor        int64  `json:"cursor"`
	Segment       int64  `json:"segment,omitempty"`
	Offset        int64  `json:"offset,omitempty"`
	Length        int    `json:"length"`
	Next          int64  `json:"next"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
}

func formatterFor(name string, raw, queue bool) (frameFormatter, error) {
	switch name {
	case "text":
		if raw {
			return func(buf []byte, f shmio.Frame) []byte { return append(append(buf, f.Data...), '\n') }, nil
		}
		return func(buf []byte, f shmio.Frame) []byte { return append(appendEscaped(buf, f.Data), '\n') }, nil
	case "hex":
		return func(buf []byte, f shmio.Frame) []byte { return append(hex.AppendEncode(buf, f.Data), '\n') }, nil
	case "base64":
		return func(buf []byte, f shmio.Frame) []byte {
			return append(base64.StdEncoding.AppendEncode(buf, f.Data), '\n')
		}, nil
	case "json":
		// Built by hand rather than with encoding/json: reflection made it the slowest format
		// by a factor of ten. jsonFrame documents the shape; the test decodes it with it.
		return func(buf []byte, f shmio.Frame) []byte {
			return appendJSONPayload(appendFrameHead(buf, f, queue), f.Data)
		}, nil
	}
	return nil, fmt.Errorf("invalid --format %q: want text, hex, json or base64", name)
}

// appendFrameHead starts a --format json line: the cursor (a queue's split too), the length
// and the next cursor.
func appendFrameHead(buf []byte, f shmio.Frame, queue bool) []byte {
	buf = append(buf, `{"cursor":`...)
	buf = strconv.AppendInt(buf, f.Cursor, 10)
	if queue {
		seg, off := shmio.SplitQueueCursor(f.Cursor)
		buf = append(buf, `,"segment":`...)
		buf = strconv.AppendInt(buf, seg, 10)
		buf = append(buf, `,"offset":`...)
		buf = strconv.AppendInt(buf, off, 10)
	}
	buf = append(buf, `,"length":`...)
	buf = strconv.AppendInt(buf, int64(len(f.Data)), 10)
	buf = append(buf, `,"next":`...)
	return strconv.AppendInt(buf, f.End, 10)
}

// appendEscaped appends p with control bytes shown as cat -v shows them: ^@ to ^_ and ^? (a tab
// stays a tab). Other bytes, UTF-8 text included, are kept.
func appendEscaped(buf, p []byte) []byte {
	for _, b := range p {
		switch {
		case b == 0x7f:
			buf = append(buf, '^', '?')
		case b < 0x20 && b != '\t':
			buf = append(buf, '^', b+'@')
		default:
			buf = append(buf, b)
		}
	}
	return buf
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

// tailBatch bounds what tail reads, formats and writes at a time: one write per batch keeps
// the system calls few, and a named reader's cursor is acknowledged only after it.
var tailBatch = shmio.BatchOptions{MaxFrames: 1024, MaxBytes: 256 << 10}

func runTail(cmd *cobra.Command, path string, o tailOptions) error {
	if o.lines < 0 {
		return fmt.Errorf("invalid -n %d: want a number of frames, 0 or more", o.lines)
	}
	if o.cursorFile != "" {
		// Fail now rather than after printing frames whose cursor could not be saved.
		if fi, err := os.Stat(filepath.Dir(o.cursorFile)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--cursor-file %s: directory %s does not exist", o.cursorFile, filepath.Dir(o.cursorFile))
		}
	}
	typ, err := o.schema.load()
	if err != nil {
		return err
	}
	t, err := openTarget(path, false)
	if err != nil {
		return err
	}
	defer t.Close()
	format, err := formatterFor(o.format, o.raw, t.q != nil)
	var events *eventPrinter // with --schema
	if typ != nil {
		events, err = newEventPrinter(typ, t, o.format, o.raw)
		if events != nil {
			format = events.format
		}
	}
	if err != nil {
		return err
	}
	fromGiven := cmd.Flags().Changed("from")
	var it shmio.FrameIterator
	resume := false // start where a named reader or the cursor file says
	var saved int64
	if t.q != nil {
		if o.cursorFile != "" {
			return errors.New("--cursor-file is for log files; a queue keeps a reader's cursor itself: use --name READER")
		}
		if o.name != "" {
			readers, err := t.q.Readers()
			if err != nil {
				return fmt.Errorf("%s: %s", path, rootCause(err))
			}
			resume = !fromGiven && slices.ContainsFunc(readers, func(r shmio.ReaderInfo) bool { return r.Name == o.name })
			fromGiven = true
		}
		qi, err := t.q.NamedIterator(o.name, shmio.IteratorOptions{})
		if errors.Is(err, shmio.ErrLocked) {
			return fmt.Errorf("%s: reader %q is in use by another process", path, o.name)
		} else if err != nil {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
		it = qi
	} else {
		if o.name != "" {
			return errors.New("--name is for queues (a named reader); with a log file use --cursor-file")
		}
		if o.cursorFile != "" {
			if saved, resume, err = cursorfile.Load(o.cursorFile, t.log.Header().ID); err != nil {
				return fmt.Errorf("--cursor-file %w", err)
			}
		}
		fromGiven = fromGiven || o.cursorFile != ""
		if it, err = t.s.OpenReader(shmio.IteratorOptions{}); err != nil {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
	}
	defer it.Close()

	limit := int64(-1) // frames to print; -1 = no limit
	if fromGiven && cmd.Flags().Changed("lines") {
		limit = int64(o.lines)
	}
	switch {
	case resume && t.q != nil:
		// the named reader resumes where it stopped
	case resume:
		if err := t.seek(it, saved); err != nil {
			return fmt.Errorf("%w (saved in %s; delete it to start over)", err, o.cursorFile)
		}
	case fromGiven:
		switch o.from {
		case "", "start":
			_, err = it.Seek(0, io.SeekStart)
		case "end":
			_, err = it.Seek(0, io.SeekEnd)
		default:
			c, perr := t.parseCursor(o.from)
			if perr != nil {
				return fmt.Errorf("invalid --from %q: want start, end or a cursor", o.from)
			}
			if err := t.seek(it, c); err != nil {
				return err
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
	default:
		// The last N frames: step back from the committed end (across segments in a queue).
		if _, err := it.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
		for range o.lines {
			end := it.Cursor()
			f, err := it.PrevFrame()
			if err != nil {
				return &exitError{1, fmt.Errorf("%s: corrupt %s (run shmio verify)", path, t.corrupt(end, true, err))}
			}
			if f.Data == nil {
				break
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	out := cmd.OutOrStdout()
	var buf []byte
	var batch []shmio.Frame
	var walkErr error
	// A named reader acknowledges what it read whenever it asks for more (NextFrames and Wait
	// store its cursor), so every batch is formatted and written out, in one write, before the
	// next request: a kill -9 then never leaves the stored cursor past a line not yet written.
	for printed := int64(0); limit < 0 || printed < limit; {
		bo := tailBatch
		if limit >= 0 {
			bo.MaxFrames = int(min(int64(bo.MaxFrames), limit-printed)) // read no frame it will not print
		}
		batch, err = it.NextFrames(batch[:0], bo)
		if len(batch) > 0 {
			buf = buf[:0]
			for i, f := range batch {
				if i == len(batch)-1 && err == nil && t.q != nil {
					f.End = it.Cursor() // past a sealed segment's end: the next segment's start
				}
				buf = format(buf, f)
			}
			if _, werr := out.Write(buf); werr != nil {
				// Not written, so not read: a named reader resumes at this batch (the lines it
				// did write, if any, come again: at least once).
				if _, serr := it.Seek(batch[0].Cursor, io.SeekStart); serr != nil {
					werr = errors.Join(werr, serr)
				}
				return fmt.Errorf("writing output: %w", werr)
			}
			if events != nil {
				events.flushBad(cmd.ErrOrStderr())
			}
			printed += int64(len(batch))
		}
		if err != nil {
			walkErr = &exitError{1, fmt.Errorf("%s: corrupt %s (run shmio verify)", path, t.corrupt(it.Cursor(), false, err))}
			break
		}
		if ctx.Err() != nil {
			break // interrupted: stop after the lines written
		}
		if len(batch) > 0 {
			continue
		}
		if !o.follow {
			break
		}
		if err := it.Wait(ctx); err != nil {
			// Interrupted, or sealed with every frame printed: following ends.
			if ctx.Err() != nil || errors.Is(err, shmio.ErrSealed) {
				break
			}
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
	}
	// Saved only after the frames before it reached the output; Close stores a named reader's.
	if o.cursorFile != "" {
		if err := cursorfile.Save(o.cursorFile, path, t.log.Header().ID, it.Cursor()); err != nil {
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	if walkErr == nil {
		walkErr = events.err()
	}
	return walkErr
}
