package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newVerifyCmd()) }

func newVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify PATH|DIR",
		Short: "Check every committed frame of a log or queue",
		Long: `Check a log's integrity: walk every committed frame forward from the first, checking that
each frame's leading and trailing lengths agree and that the frames end exactly at the committed
end. Then a reader walking backward from the end with the trailing lengths meets the same frames;
on damage, verify reports how much of the end that backward walk still reads.

Exit status 0: the log is clean. 1: the log is damaged (or not a shmio log); the first problem is
printed with its cursor and file offset. 2: verify could not run (missing file, bad arguments).
Safe on a live log: frames committed after verify started are not checked.

Given a queue directory, verify checks every segment (header, recorded number, every frame's
lengths) and the chain between them (no gaps, each segment naming its predecessor's ID, every
segment before the one being written sealed), each segment under the lock queue readers hold, so
retention does not recycle it meanwhile. Every problem is listed; a damaged frame is named by
its queue cursor, its cursor within the segment and its file offset. Exit status 2 there means
segments could not be read (permissions, I/O) and nothing was found damaged.`,
		Example: `  shmio verify /dev/shm/events && echo clean
  shmio verify /dev/shm/events.q`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := openTarget(args[0], false)
			if err != nil {
				if errors.Is(err, shmio.ErrBadHeader) {
					return &exitError{1, err}
				}
				return err
			}
			defer t.Close()
			res, verr := t.s.Verify()
			if t.q != nil {
				return printQueueVerify(cmd.OutOrStdout(), t, res, verr)
			}
			return printLogVerify(cmd.OutOrStdout(), t, res, verr)
		},
	}
}

func printLogVerify(out io.Writer, t *target, res shmio.VerifyResult, verr error) error {
	path := t.path
	if verr == nil {
		fmt.Fprintf(out, "%s: OK: %d %s, %d bytes committed; forward and backward walks agree\n", path, res.Frames, plural(res.Frames, "frame"), res.End)
		return nil
	}
	if len(res.Problems) == 0 {
		return fmt.Errorf("%s: %s", path, rootCause(verr))
	}
	first := res.Problems[0]
	fmt.Fprintf(out, "%s: CORRUPT\n", path)
	fmt.Fprintf(out, "  first problem: cursor %d (file offset %d): %s\n", first.Cursor, first.Offset, first.What)
	fmt.Fprintf(out, "  forward walk:  %d good %s, stopped at cursor %d: %s\n", res.Frames, plural(res.Frames, "frame"), first.Cursor, first.What)
	stop := ""
	if len(res.Problems) > 1 {
		stop = ", stopped: " + res.Problems[1].What
	}
	fmt.Fprintf(out, "  backward walk: %d good %s from cursor %d down to %d%s\n", res.TailFrames, plural(res.TailFrames, "frame"), res.End, res.TailStart, stop)
	return &exitError{1, fmt.Errorf("%s: corrupt at cursor %d (file offset %d): %s", path, first.Cursor, first.Offset, first.What)}
}

// printQueueVerify prints the library's problems. Exit status 1 names the first one; for a damaged
// frame, with its queue cursor, its cursor within the segment and its file offset.
func printQueueVerify(out io.Writer, t *target, res shmio.VerifyResult, verr error) error {
	dir := t.path
	if verr == nil {
		fmt.Fprintf(out, "%s: OK: %d %s (head %d), %d %s, %d bytes committed; every segment and the chain between them are consistent\n",
			dir, res.Segments, plural(int64(res.Segments), "segment"), res.Head, res.Frames, plural(res.Frames, "frame"), res.Bytes)
		return nil
	}
	if len(res.Problems) == 0 { // Verify could not start (listing the directory)
		if errors.Is(verr, shmio.ErrCorrupt) {
			return &exitError{1, fmt.Errorf("%s: %s", dir, rootCause(verr))}
		}
		return fmt.Errorf("%s: %s", dir, rootCause(verr))
	}
	if !errors.Is(verr, shmio.ErrCorrupt) {
		// Nothing found damaged, but segments could not be read: verify could not run.
		return fmt.Errorf("%s: cannot verify: %s", dir, res.Problems[0])
	}
	fmt.Fprintf(out, "%s: CORRUPT: %d %s\n", dir, len(res.Problems), plural(int64(len(res.Problems)), "problem"))
	for _, p := range res.Problems {
		fmt.Fprintf(out, "  %s\n", p)
	}
	p := res.Problems[0]
	if p.Segment < 0 || p.Cursor < 0 {
		return &exitError{1, fmt.Errorf("%s: %s", dir, p)}
	}
	_, off := shmio.SplitQueueCursor(p.Cursor)
	return &exitError{1, fmt.Errorf("%s: segment %d (%s): queue cursor %d, corrupt at cursor %d (file offset %d): %s",
		dir, p.Segment, t.q.SegmentPath(p.Segment), p.Cursor, off, p.Offset, p.What)}
}
