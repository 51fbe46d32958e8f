package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/shmio/shmio"
)

// runVerifyQueue checks a queue with the library's Verify (every segment's header, the chain
// between segments, every frame's two lengths, each segment under the lock queue readers take)
// and prints its problems. Exit status 1 names the first one; for a damaged frame, with its
// queue cursor, its cursor within the segment and its file offset, as Verify located them.
func runVerifyQueue(out io.Writer, dir string) error {
	q, err := openQueue(dir, false)
	if err != nil {
		return err
	}
	defer q.Close()
	res, verr := q.Verify()
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
	return &exitError{1, fmt.Errorf("%s: %s", dir, queueProblemSummary(dir, res.Problems[0]))}
}

// queueProblemSummary words a problem for the error line: a damaged frame with its segment file
// and the three ways to find it (queue cursor, cursor within the segment as verify and dump of
// that file print it, file offset).
func queueProblemSummary(dir string, p shmio.QueueProblem) string {
	if p.Segment < 0 || p.Cursor < 0 {
		return p.String()
	}
	_, off := shmio.SplitQueueCursor(p.Cursor)
	return fmt.Sprintf("segment %d (%s): queue cursor %d, corrupt at cursor %d (file offset %d): %s",
		p.Segment, segFile(dir, p.Segment), p.Cursor, off, p.Offset, p.What)
}
