package main

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

// runDumpQueue is dump over a queue directory: frames across segments, with a line at every
// segment boundary.
func runDumpQueue(cmd *cobra.Command, dir string, o dumpOptions) error {
	if o.maxBytes < 0 {
		return fmt.Errorf("invalid --max-bytes %d: want 0 (all) or more", o.maxBytes)
	}
	q, err := openQueue(dir, false)
	if err != nil {
		return err
	}
	defer q.Close()
	it, err := q.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return fmt.Errorf("%s: %s", dir, rootCause(err))
	}
	defer it.Close()
	// A stable end for this dump, even if a writer is busy.
	end, err := it.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("%s: %s", dir, rootCause(err))
	}
	start := int64(0)
	if o.reverse {
		start = end
	}
	if o.from != "" {
		if start, err = parseQueueCursor(o.from); err != nil {
			return fmt.Errorf("invalid --from %q: want a cursor", o.from)
		}
	}
	if _, err := it.Seek(start, io.SeekStart); err != nil {
		return queueCursorError(dir, start, err)
	}
	start = it.Cursor()

	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	defer out.Flush()
	var shown int64
	curSeg := int64(-1)
	boundaries := 0
	for o.n < 0 || shown < o.n {
		var p []byte
		var c int64
		if o.reverse {
			frameEnd := it.Cursor()
			if p, err = it.Prev(); err != nil {
				return queueDumpCorrupt(out, dir, fmt.Sprintf("frame ending at cursor %s: %s", queueCursorString(frameEnd), rootCause(err)))
			}
			c = it.Cursor()
		} else {
			c = it.Cursor()
			if c >= end {
				break
			}
			if p, err = it.Next(); err != nil {
				return queueDumpCorrupt(out, dir, fmt.Sprintf("frame at cursor %s: %s", queueCursorString(c), rootCause(err)))
			}
		}
		if p == nil {
			break
		}
		seg, off := shmio.SplitQueueCursor(c)
		if seg != curSeg {
			if curSeg >= 0 {
				boundaries++
			}
			fmt.Fprintf(out, "== segment %d (%s)\n", seg, segFile(dir, seg))
			curSeg = seg
		}
		fmt.Fprintf(out, "cursor %d  segment %d offset %d  length %d (frame %d bytes)\n", c, seg, off, len(p), len(p)+4)
		hexView(out, p, o.maxBytes)
		shown++
	}
	dirName := "forward"
	if o.reverse {
		dirName = "backward"
	}
	crossed := "segment boundaries"
	if boundaries == 1 {
		crossed = "segment boundary"
	}
	fmt.Fprintf(out, "-- %d %s shown (%s from cursor %s), %d %s crossed; committed end at cursor %s\n",
		shown, plural(shown, "frame"), dirName, queueCursorString(start), boundaries, crossed, queueCursorString(end))
	return out.Flush()
}

// segFile is the file name of segment n in a queue, for people (the layout is the library's:
// zero-padded to ten digits, ".seg").
func segFile(dir string, n int64) string { return filepath.Join(dir, fmt.Sprintf("%010d.seg", n)) }

func queueDumpCorrupt(out *bufio.Writer, dir, what string) error {
	fmt.Fprintf(out, "!! corrupt %s\n", what)
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return &exitError{1, fmt.Errorf("%s: corrupt %s (run shmio verify)", dir, what)}
}
