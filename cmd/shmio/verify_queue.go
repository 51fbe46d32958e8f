package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/shmio/shmio"
)

// runVerifyQueue checks a queue: the library's Verify (every segment's header, the chain between
// segments, every frame's two lengths), then, for a segment whose frames are damaged, the log
// walk of runVerify on that segment file, which names the first bad frame's cursor and offset.
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
	if len(res.Problems) == 0 {
		if errors.Is(verr, shmio.ErrCorrupt) {
			return &exitError{1, fmt.Errorf("%s: %s", dir, rootCause(verr))}
		}
		return fmt.Errorf("%s: %s", dir, rootCause(verr))
	}
	fmt.Fprintf(out, "%s: CORRUPT: %d %s\n", dir, len(res.Problems), plural(int64(len(res.Problems)), "problem"))
	for _, p := range res.Problems {
		fmt.Fprintf(out, "  %s\n", p)
	}
	first := res.Problems[0]
	// A frame problem in segment N: walk that segment as a log for the exact spot. (Segments
	// removed by retention meanwhile simply fail to open and keep the library's wording.)
	var seg int64
	if _, err := fmt.Sscanf(first, "segment %d:", &seg); err == nil && seg > 0 {
		var detail bytes.Buffer
		path := segFile(dir, seg)
		if werr := runVerify(&detail, path); werr != nil {
			var ee *exitError
			if errors.As(werr, &ee) && ee.code == 1 {
				fmt.Fprintf(out, "  segment %d, walked as a log:\n", seg)
				for _, line := range strings.Split(strings.TrimRight(detail.String(), "\n"), "\n") {
					fmt.Fprintf(out, "    %s\n", line)
				}
				msg := strings.TrimPrefix(werr.Error(), path+": ")
				var c int64
				if _, err := fmt.Sscanf(msg, "corrupt at cursor %d", &c); err == nil {
					msg = fmt.Sprintf("queue cursor %d, %s", shmio.QueueCursor(seg, c), msg)
				}
				first = fmt.Sprintf("segment %d (%s): %s", seg, path, msg)
			}
		}
	}
	return &exitError{1, fmt.Errorf("%s: %s", dir, first)}
}
