package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newDumpCmd()) }

type dumpOptions struct {
	reverse  bool
	from     string
	n        int64
	maxBytes int
	schema   schemaOptions
}

func newDumpCmd() *cobra.Command {
	var o dumpOptions
	cmd := &cobra.Command{
		Use:   "dump PATH|DIR",
		Short: "Show frames with their cursors, lengths and a hex/ASCII view, forward or backward",
		Long: `Show committed frames with their cursor (offset from the first frame), file offset,
payload length, frame length and a hex/ASCII view of the payload.

--reverse walks backward from --from (default: the committed end), newest frame first, the way a
reader recovering after a crash would. Forward, --from is the first frame shown (default: 0);
use a cursor printed by tail --format json, dump or stat.
A corrupt frame stops the dump with exit status 1; the raw bytes at that offset are shown.

Given a queue directory, dump walks across its segments (a "== segment N" line where each
segment starts) and cursors are queue cursors (segment<<32 | offset; --from also takes
SEGMENT:OFFSET).` + schemaHelp + `
With --schema, each frame shows its fields instead of hex: path, type, offset, size and value
(JSON). A frame that does not decode shows the reason and its bytes; the dump goes on and exits 1.`,
		Example: `  shmio dump /dev/shm/events -n 5
  shmio dump /dev/shm/events --reverse -n 3
  shmio dump /dev/shm/events --from 0 -n 1 --max-bytes 0
  shmio dump /dev/shm/events -n 2 --schema types.json --type LogEvent`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error { return runDump(cmd, args[0], o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.reverse, "reverse", false, "walk backward, newest frame first")
	f.StringVar(&o.from, "from", "", "cursor to start at (default: 0, or the committed end with --reverse)")
	f.Int64VarP(&o.n, "frames", "n", -1, "show at most this many frames (default: all)")
	f.IntVar(&o.maxBytes, "max-bytes", 256, "payload bytes to show per frame (0: all)")
	addSchemaFlags(cmd, &o.schema)
	return cmd
}

func runDump(cmd *cobra.Command, path string, o dumpOptions) error {
	if o.maxBytes < 0 {
		return fmt.Errorf("invalid --max-bytes %d: want 0 (all) or more", o.maxBytes)
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
	it, err := t.s.OpenReader(shmio.IteratorOptions{})
	if err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	defer it.Close()
	// A stable end for this dump, even if a writer is busy.
	end, err := it.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	start := int64(0)
	if o.reverse {
		start = end
	}
	if o.from != "" {
		if start, err = t.parseCursor(o.from); err != nil {
			return fmt.Errorf("invalid --from %q: want a cursor", o.from)
		}
	}
	if err := t.seek(it, start); err != nil {
		return err
	}
	start = it.Cursor()

	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	defer out.Flush()
	var shown, bad int64
	curSeg, boundaries := int64(-1), 0
	for o.n < 0 || shown < o.n {
		var f shmio.Frame
		if o.reverse {
			frameEnd := it.Cursor()
			if f, err = it.PrevFrame(); err != nil {
				return dumpCorrupt(out, t, max(0, frameEnd-32), t.corrupt(frameEnd, true, err))
			}
		} else {
			c := it.Cursor()
			if c >= end {
				break
			}
			if f, err = it.NextFrame(); err != nil {
				return dumpCorrupt(out, t, c, t.corrupt(c, false, err))
			}
		}
		if f.Data == nil {
			break
		}
		if t.q != nil {
			seg, off := shmio.SplitQueueCursor(f.Cursor)
			if seg != curSeg {
				if curSeg >= 0 {
					boundaries++
				}
				fmt.Fprintf(out, "== segment %d (%s)\n", seg, t.q.SegmentPath(seg))
				curSeg = seg
			}
			fmt.Fprintf(out, "cursor %d  segment %d offset %d  length %d (frame %d bytes)\n", f.Cursor, seg, off, len(f.Data), f.End-f.Cursor)
		} else {
			fmt.Fprintf(out, "cursor %d  file offset %d  length %d (frame %d bytes)\n", f.Cursor, t.log.Header().DataOffset+f.Cursor, len(f.Data), f.End-f.Cursor)
		}
		if typ == nil {
			hexView(out, f.Data, o.maxBytes)
		} else if !dumpEvent(out, typ, f.Data, o.maxBytes) {
			bad++
		}
		shown++
	}
	dir := "forward"
	if o.reverse {
		dir = "backward"
	}
	if t.q != nil {
		crossed := "segment boundaries"
		if boundaries == 1 {
			crossed = "segment boundary"
		}
		fmt.Fprintf(out, "-- %d %s shown (%s from cursor %s), %d %s crossed; committed end at cursor %s\n",
			shown, plural(shown, "frame"), dir, t.cursorString(start), boundaries, crossed, t.cursorString(end))
	} else {
		fmt.Fprintf(out, "-- %d %s shown (%s from cursor %d); committed end at cursor %d (file offset %d)\n",
			shown, plural(shown, "frame"), dir, start, end, t.log.Header().DataOffset+end)
	}
	if bad > 0 {
		if err := out.Flush(); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		return &exitError{1, fmt.Errorf("%s: %d of the %d %s shown did not decode as %s", path, bad, shown, plural(shown, "frame"), typ.Name())}
	}
	return out.Flush()
}

// hexView writes p as indented hexdump -C lines, the first max bytes only (all when max is 0).
func hexView(w io.Writer, p []byte, max int) {
	shown := p
	if max > 0 && len(p) > max {
		shown = p[:max]
	}
	for _, line := range strings.SplitAfter(hex.Dump(shown), "\n") {
		if line != "" {
			fmt.Fprintf(w, "  %s", line)
		}
	}
	if len(shown) < len(p) {
		fmt.Fprintf(w, "  ... %d more bytes (--max-bytes 0 shows all)\n", len(p)-len(shown))
	}
}

// dumpCorrupt shows the bytes around a corrupt frame of a log and returns the exit-1 error.
func dumpCorrupt(out *bufio.Writer, t *target, rawFrom int64, what string) error {
	fmt.Fprintf(out, "!! corrupt %s\n", what)
	if t.log != nil {
		if raw, _ := t.log.Bytes(rawFrom, 64); len(raw) > 0 {
			fmt.Fprintf(out, "!! raw bytes from cursor %d (file offset %d):\n", rawFrom, t.log.Header().DataOffset+rawFrom)
			hexView(out, raw, 0)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if t.q != nil {
		what += " (run shmio verify)"
	}
	return &exitError{1, fmt.Errorf("%s: corrupt %s", t.path, what)}
}
