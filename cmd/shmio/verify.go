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
		Short: "Check every committed frame, walking forward and backward",
		Long: `Check a log's integrity: walk every committed frame forward from the first, checking that
each frame's leading and trailing lengths agree and stay within the committed end; then walk
backward from the committed end with the trailing lengths, as a reader recovering from the end
does; and check that both walks found exactly the same frames.

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
			if shmio.IsQueue(args[0]) {
				return runVerifyQueue(cmd.OutOrStdout(), args[0])
			}
			return runVerify(cmd.OutOrStdout(), args[0])
		},
	}
}

// frameRef is a frame as a walk saw it: its cursor and its length including the length fields.
type frameRef struct{ c, l int64 }

// verifyProblem is a damaged spot: where, and what is wrong.
type verifyProblem struct {
	cursor int64
	what   string
}

// verifyChunk is how many forward frames one checkpoint covers. Memory for the comparison is a
// cursor per chunk plus one chunk of frames, so any log size verifies in little memory.
const verifyChunk = 4096

func runVerify(out io.Writer, path string) error {
	// DebugChecks makes Next check trailing lengths and Prev check leading ones.
	l, err := openLog(path, false, true)
	if err != nil {
		if errors.Is(err, shmio.ErrBadHeader) {
			return &exitError{1, err}
		}
		return err
	}
	defer l.Close()
	h := l.Header()
	fwd, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	defer fwd.Close()
	end := fwd.End()
	bar := newTermProgress("verifying", 2*end)
	defer bar.finish()

	// Forward: every frame, with a checkpoint cursor at the start of each chunk.
	var checkpoints []int64
	var n int64
	var fwdProblem *verifyProblem
	for fwd.Cursor() < end {
		c := fwd.Cursor()
		if n%verifyChunk == 0 {
			checkpoints = append(checkpoints, c)
			bar.update(c)
		}
		p, err := fwd.Next()
		if err == nil && p == nil {
			err = errors.New("no frame") // cannot happen below the committed end
		}
		if err != nil {
			fwdProblem = &verifyProblem{c, frameDiagnosis(path, h, c, end, err)}
			break
		}
		if fwd.Cursor() > end {
			fwdProblem = &verifyProblem{c, fmt.Sprintf("frame of length %d runs past the committed end %d", fwd.Cursor()-c, end)}
			break
		}
		n++
	}

	// Backward, from the committed end, which may have grown since: frames from there down to
	// end are newer than the forward walk and are skipped.
	bwd, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	defer bwd.Close()
	_, err = bwd.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	// The forward frames, regenerated chunk by chunk from the checkpoints, newest first, to
	// compare with the backward walk. A second handle without DebugChecks seeks in O(1).
	var merge *walkMerger
	if fwdProblem == nil {
		l2, err := openLog(path, false, false)
		if err != nil {
			return err
		}
		defer l2.Close()
		replay, err := forwardFramesBackward(l2, checkpoints, n)
		if err != nil {
			return fmt.Errorf("%s: %s", path, rootCause(err))
		}
		merge = newWalkMerger(replay)
	}
	var bn int64 // backward frames below end
	var bwdProblem *verifyProblem
	low := end // lowest cursor the backward walk reached
	for {
		frameEnd := bwd.Cursor()
		p, err := bwd.Prev()
		if err != nil {
			what := frameEndProblem(path, h, frameEnd)
			if what == "" {
				what = rootCause(err)
			}
			bwdProblem = &verifyProblem{frameEnd, what}
			break
		}
		if p == nil {
			break
		}
		b := frameRef{bwd.Cursor(), frameEnd - bwd.Cursor()}
		if b.c >= end {
			continue // committed after the forward walk
		}
		if frameEnd > end {
			bwdProblem = &verifyProblem{b.c, fmt.Sprintf("backward walk found a frame of length %d crossing cursor %d, where the forward walk ended", b.l, end)}
			break
		}
		low = b.c
		bn++
		if bn%verifyChunk == 0 {
			bar.update(end + (end - b.c))
		}
		if merge != nil {
			merge.add(b)
		}
	}
	var mismatch *verifyProblem
	if merge != nil {
		if bwdProblem == nil {
			merge.finish()
		}
		if merge.err != nil {
			return fmt.Errorf("%s: re-reading frames: %s", path, rootCause(merge.err))
		}
		mismatch = merge.mismatch
	}
	bar.finish()

	first := fwdProblem
	for _, p := range []*verifyProblem{mismatch, bwdProblem} {
		if first == nil || (p != nil && p.cursor < first.cursor) {
			first = p
		}
	}
	if first == nil {
		fmt.Fprintf(out, "%s: OK: %d %s, %d bytes committed; forward and backward walks agree\n", path, n, plural(n, "frame"), end)
		return nil
	}
	fmt.Fprintf(out, "%s: CORRUPT\n", path)
	fmt.Fprintf(out, "  first problem: cursor %d (file offset %d): %s\n", first.cursor, h.DataOffset+first.cursor, first.what)
	if fwdProblem != nil {
		fmt.Fprintf(out, "  forward walk:  %d good %s, stopped at cursor %d: %s\n", n, plural(n, "frame"), fwdProblem.cursor, fwdProblem.what)
	} else {
		fmt.Fprintf(out, "  forward walk:  %d good %s up to the committed end %d\n", n, plural(n, "frame"), end)
	}
	if bwdProblem != nil {
		fmt.Fprintf(out, "  backward walk: %d good %s from cursor %d down to %d, stopped: %s\n", bn, plural(bn, "frame"), end, low, bwdProblem.what)
	} else {
		fmt.Fprintf(out, "  backward walk: %d good %s from cursor %d down to %d\n", bn, plural(bn, "frame"), end, low)
	}
	if mismatch != nil {
		fmt.Fprintf(out, "  the walks disagree; lowest difference at cursor %d: %s\n", mismatch.cursor, mismatch.what)
	}
	return &exitError{1, fmt.Errorf("%s: corrupt at cursor %d (file offset %d): %s", path, first.cursor, h.DataOffset+first.cursor, first.what)}
}

// walkMerger compares the backward walk, newest frame first, with the forward walk's frames
// replayed newest first (both sorted by cursor, descending), like a merge: a frame one walk has
// and the other lacks, or a cursor with two lengths, is a disagreement. mismatch ends up as the
// lowest one.
type walkMerger struct {
	replay   func() (frameRef, bool, error)
	f        frameRef // the next forward frame, if ok
	ok       bool
	err      error
	mismatch *verifyProblem
}

func newWalkMerger(replay func() (frameRef, bool, error)) *walkMerger {
	m := &walkMerger{replay: replay}
	m.advance()
	return m
}

func (m *walkMerger) advance() {
	if m.err == nil {
		m.f, m.ok, m.err = m.replay()
	}
	m.ok = m.ok && m.err == nil
}

func (m *walkMerger) forwardOnly() {
	m.mismatch = &verifyProblem{m.f.c, fmt.Sprintf("forward walk found a frame of length %d here, the backward walk did not", m.f.l)}
	m.advance()
}

// add takes the next frame of the backward walk.
func (m *walkMerger) add(b frameRef) {
	for m.ok && m.f.c > b.c {
		m.forwardOnly()
	}
	switch {
	case m.ok && m.f == b:
		m.advance()
	case m.ok && m.f.c == b.c:
		m.mismatch = &verifyProblem{b.c, fmt.Sprintf("forward walk read length %d, backward walk length %d", m.f.l, b.l)}
		m.advance()
	default:
		m.mismatch = &verifyProblem{b.c, fmt.Sprintf("backward walk found a frame of length %d here, the forward walk did not", b.l)}
	}
}

// finish is called when the backward walk reached the start cleanly: forward frames left are
// ones it never saw.
func (m *walkMerger) finish() {
	for m.ok {
		m.forwardOnly()
	}
}

// frameDiagnosis explains a corrupt frame found by the forward walk at cursor c.
func frameDiagnosis(path string, h shmio.Header, c, end int64, err error) string {
	if p := frameProblem(path, h, c, end); p != "" {
		return p
	}
	return rootCause(err)
}

// forwardFramesBackward returns a generator of the first n forward frames in reverse order,
// re-reading one chunk at a time from its checkpoint cursor.
func forwardFramesBackward(l *shmio.Log, checkpoints []int64, n int64) (func() (frameRef, bool, error), error) {
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		return nil, err
	}
	chunk := len(checkpoints)
	var buf []frameRef
	pos := -1
	return func() (frameRef, bool, error) {
		for pos < 0 {
			chunk--
			if chunk < 0 {
				return frameRef{}, false, nil
			}
			if _, err := it.Seek(checkpoints[chunk], io.SeekStart); err != nil {
				return frameRef{}, false, err
			}
			count := min(int64(verifyChunk), n-int64(chunk)*verifyChunk)
			buf = buf[:0]
			for i := int64(0); i < count; i++ {
				c := it.Cursor()
				p, err := it.Next()
				if err != nil {
					return frameRef{}, false, err
				}
				if p == nil {
					return frameRef{}, false, fmt.Errorf("frame at cursor %d vanished", c)
				}
				buf = append(buf, frameRef{c, it.Cursor() - c})
			}
			pos = len(buf) - 1
		}
		f := buf[pos]
		pos--
		return f, true, nil
	}, nil
}
