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
}

func newDumpCmd() *cobra.Command {
	var o dumpOptions
	cmd := &cobra.Command{
		Use:   "dump PATH|DIR",
		Short: "Show frames with their cursors, lengths and a hex/ASCII view, forward or backward",
		Long: `Show committed frames with their cursor (offset from the first frame), file offset,
payload length, frame length and a hex/ASCII view of the payload.

--reverse walks backward from --from (default: the committed end), newest frame first, the way a
reader recovering after a crash would. Forward, --from is the first frame shown (default: 0).
A corrupt frame stops the dump with exit status 1; the raw bytes at that offset are shown.

Given a queue directory, dump walks across its segments (a "== segment N" line where each
segment starts) and cursors are queue cursors (segment<<32 | offset; --from also takes
SEGMENT:OFFSET).`,
		Example: `  shmio dump /dev/shm/events -n 5
  shmio dump /dev/shm/events --reverse -n 3
  shmio dump /dev/shm/events --from 4096 --max-bytes 0`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if shmio.IsQueue(args[0]) {
				return runDumpQueue(cmd, args[0], o)
			}
			return runDump(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.reverse, "reverse", false, "walk backward, newest frame first")
	f.StringVar(&o.from, "from", "", "cursor to start at (default: 0, or the committed end with --reverse)")
	f.Int64VarP(&o.n, "frames", "n", -1, "show at most this many frames (default: all)")
	f.IntVar(&o.maxBytes, "max-bytes", 256, "payload bytes to show per frame (0: all)")
	return cmd
}

func runDump(cmd *cobra.Command, path string, o dumpOptions) error {
	if o.maxBytes < 0 {
		return fmt.Errorf("invalid --max-bytes %d: want 0 (all) or more", o.maxBytes)
	}
	l, it, err := openReader(path)
	if err != nil {
		return err
	}
	defer l.Close()
	h := l.Header()
	end := it.End() // a stable end for this dump, even if a writer is busy
	start := int64(0)
	if o.reverse {
		start = end
	}
	if o.from != "" {
		if start, err = parseCursor(o.from); err != nil {
			return fmt.Errorf("invalid --from %q: want a cursor", o.from)
		}
		if start > end {
			return cursorError(path, start, end, nil)
		}
	}
	if err := seekCursor(it, path, start); err != nil {
		return err
	}

	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	defer out.Flush()
	ls := lenFieldSize(h)
	var shown int64
	for o.n < 0 || shown < o.n {
		var p []byte
		var c int64
		if o.reverse {
			frameEnd := it.Cursor()
			if p, err = it.Prev(); err != nil {
				problem := frameEndProblem(path, h, frameEnd)
				if problem == "" {
					problem = rootCause(err)
				}
				return dumpCorrupt(out, path, h, max(0, frameEnd-32), fmt.Sprintf("frame ending at cursor %d (file offset %d): %s", frameEnd, h.DataOffset+frameEnd, problem))
			}
			c = it.Cursor()
		} else {
			c = it.Cursor()
			if c >= end {
				break
			}
			if p, err = it.Next(); err != nil {
				return dumpCorrupt(out, path, h, c, describeCorrupt(path, h, c, end, err))
			}
		}
		if p == nil {
			break
		}
		fmt.Fprintf(out, "cursor %d  file offset %d  length %d (frame %d bytes)\n", c, h.DataOffset+c, len(p), int64(len(p))+2*ls)
		hexView(out, p, o.maxBytes)
		shown++
	}
	dir := "forward"
	if o.reverse {
		dir = "backward"
	}
	fmt.Fprintf(out, "-- %d %s shown (%s from cursor %d); committed end at cursor %d (file offset %d)\n",
		shown, plural(shown, "frame"), dir, start, end, h.DataOffset+end)
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

// dumpCorrupt shows the raw bytes around a corrupt frame and returns the exit-1 error.
func dumpCorrupt(out *bufio.Writer, path string, h shmio.Header, rawFrom int64, what string) error {
	fmt.Fprintf(out, "!! corrupt %s\n", what)
	if raw := rawBytes(path, h, rawFrom, 64); len(raw) > 0 {
		fmt.Fprintf(out, "!! raw bytes from cursor %d (file offset %d):\n", rawFrom, h.DataOffset+rawFrom)
		hexView(out, raw, 0)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return &exitError{1, fmt.Errorf("%s: corrupt %s", path, what)}
}
