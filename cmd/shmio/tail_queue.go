package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

// queueJSONFrame is one line of tail --format json on a queue: jsonFrame plus the cursor's parts.
type queueJSONFrame struct {
	Cursor        int64  `json:"cursor"`
	Segment       int64  `json:"segment"`
	Offset        int64  `json:"offset"`
	Length        int    `json:"length"`
	Next          int64  `json:"next"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
}

func queueFormatterFor(name string) (frameFormatter, error) {
	if name != "json" {
		return formatterFor(name)
	}
	return func(buf, p []byte, c, next int64) []byte {
		seg, off := shmio.SplitQueueCursor(c)
		buf = append(buf, `{"cursor":`...)
		buf = strconv.AppendInt(buf, c, 10)
		buf = append(buf, `,"segment":`...)
		buf = strconv.AppendInt(buf, seg, 10)
		buf = append(buf, `,"offset":`...)
		buf = strconv.AppendInt(buf, off, 10)
		buf = append(buf, `,"length":`...)
		buf = strconv.AppendInt(buf, int64(len(p)), 10)
		buf = append(buf, `,"next":`...)
		buf = strconv.AppendInt(buf, next, 10)
		return appendJSONPayload(buf, p)
	}, nil
}

func runTailQueue(cmd *cobra.Command, dir string, o tailOptions) error {
	format, err := queueFormatterFor(o.format)
	if err != nil {
		return err
	}
	if o.lines < 0 {
		return fmt.Errorf("invalid -n %d: want a number of frames, 0 or more", o.lines)
	}
	if o.cursorFile != "" {
		return errors.New("--cursor-file is for log files; a queue keeps a reader's cursor itself: use --name READER")
	}
	fromGiven := cmd.Flags().Changed("from")
	var from int64
	switch o.from {
	case "", "start", "end":
	default:
		if from, err = parseQueueCursor(o.from); err != nil {
			return fmt.Errorf("invalid --from %q: want start, end or a cursor", o.from)
		}
	}
	q, err := openQueue(dir, false)
	if err != nil {
		return err
	}
	defer q.Close()

	existed := false
	if o.name != "" {
		readers, err := q.Readers()
		if err != nil {
			return fmt.Errorf("%s: %s", dir, rootCause(err))
		}
		existed = slices.ContainsFunc(readers, func(r shmio.ReaderInfo) bool { return r.Name == o.name })
	}
	it, err := q.NamedIterator(o.name, shmio.IteratorOptions{})
	if err != nil {
		if errors.Is(err, shmio.ErrLocked) {
			return fmt.Errorf("%s: reader %q is in use by another process", dir, o.name)
		}
		return fmt.Errorf("%s: %s", dir, rootCause(err))
	}
	defer it.Close()

	limit := int64(-1)
	if (fromGiven || o.name != "") && cmd.Flags().Changed("lines") {
		limit = int64(o.lines)
	}
	switch {
	case o.name != "" && existed && !fromGiven:
		// resume where the named reader stopped
	case fromGiven || o.name != "":
		switch o.from {
		case "", "start":
			if _, err = it.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("%s: %s", dir, rootCause(err))
			}
		case "end":
			if _, err = it.Seek(0, io.SeekEnd); err != nil {
				return fmt.Errorf("%s: %s", dir, rootCause(err))
			}
		default:
			if _, err = it.Seek(from, io.SeekStart); err != nil {
				return queueCursorError(dir, from, err)
			}
		}
	default:
		// The last N frames: step back from the committed end, across segments.
		if _, err := it.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("%s: %s", dir, rootCause(err))
		}
		for i := 0; i < o.lines; i++ {
			end := it.Cursor()
			p, err := it.Prev()
			if err != nil {
				return &exitError{1, fmt.Errorf("%s: corrupt frame ending at cursor %s: %s (run shmio verify)", dir, queueCursorString(end), rootCause(err))}
			}
			if p == nil {
				break
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	out := cmd.OutOrStdout()
	var buf []byte
	var batch [][]byte
	var walkErr error
	// A named reader acknowledges what it read whenever it asks for more (NextBatch and Wait
	// store its cursor), so every batch is formatted and written out, in one write, before the
	// next request: a kill -9 then never leaves the stored cursor past a line not yet written.
	for printed := int64(0); limit < 0 || printed < limit; {
		bo := tailBatch
		if limit >= 0 {
			bo.MaxFrames = int(min(int64(bo.MaxFrames), limit-printed)) // read no frame it will not print
		}
		c := it.Cursor()
		batch, err = it.NextBatch(batch[:0], bo)
		if len(batch) > 0 {
			// A batch holds frames of one segment; at a roll it is the next one, from its start.
			if seg, _ := shmio.SplitQueueCursor(c); seg != it.Segment() {
				c = shmio.QueueCursor(it.Segment(), 0)
			}
			start := c
			buf = buf[:0]
			for i, p := range batch {
				next := c + int64(len(p)) + 4 // queue segments have u16 lengths
				if i == len(batch)-1 && err == nil {
					next = it.Cursor() // the next segment's start when this one is sealed here
				}
				buf = format(buf, p, c, next)
				c = next
			}
			if _, werr := out.Write(buf); werr != nil {
				// Not written, so not read: a named reader resumes at this batch (the lines it
				// did write, if any, come again: at least once).
				if _, serr := it.Seek(start, io.SeekStart); serr != nil {
					werr = errors.Join(werr, serr)
				}
				return fmt.Errorf("writing output: %w", werr)
			}
			printed += int64(len(batch))
		}
		if err != nil {
			walkErr = &exitError{1, fmt.Errorf("%s: at cursor %s: %s (run shmio verify)", dir, queueCursorString(it.Cursor()), rootCause(err))}
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
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("%s: %s", dir, rootCause(err))
		}
	}
	// Close stores a named reader's cursor: after the last frame written.
	if err := it.Close(); err != nil {
		return fmt.Errorf("%s: %s", dir, rootCause(err))
	}
	return walkErr
}

// tailBatch bounds what tail reads, formats and writes at a time: one write per batch keeps
// the system calls few, and the named reader's cursor is acknowledged only after it.
var tailBatch = shmio.BatchOptions{MaxFrames: 1024, MaxBytes: 256 << 10}

// queueCursorError words a failure to start at a queue cursor the user gave.
func queueCursorError(dir string, c int64, err error) error {
	if errors.Is(err, shmio.ErrCursor) {
		return fmt.Errorf("%s: cursor %s: %s", dir, queueCursorString(c), rootCause(err))
	}
	return fmt.Errorf("%s: cannot start at cursor %s: %s", dir, queueCursorString(c), rootCause(err))
}
