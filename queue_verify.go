package shmio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// verifyHeld, when set (by tests), is called while Verify holds segment n mapped and locked.
var verifyHeld func(n int64)

// Verify checks every segment and the chain between them: numbers without gaps, each segment's
// recorded number and the ID of its predecessor, every segment before the head sealed and none
// after it holding frames, and every frame's two lengths. Each problem is in the result, located
// (for a damaged frame: its queue cursor and file offset; the walk of a segment stops at its
// first one). The error wraps ErrCorrupt when the queue is damaged; when the only problems are
// segments it could not read, it wraps the first of those errors instead.
//
// Verify checks each segment under the shared lock every queue reader holds (see Queue), so
// retention does not recycle a segment while it is being checked. It is safe on a live queue:
// segments removed by retention meanwhile are skipped, and a roll while it runs (a head sealed
// since, segments made after its listing of the directory) is not a problem; frames committed
// after it checked a segment are not checked.
func (q *Queue) Verify() (VerifyResult, error) {
	var res VerifyResult
	nums, err := q.listSegments()
	if err != nil {
		return res, err
	}
	add := func(p Problem) { res.Problems = append(res.Problems, p) }
	chainBad := func(format string, args ...any) {
		what := fmt.Sprintf(format, args...)
		add(Problem{Kind: ProblemChain, Segment: -1, Cursor: -1, Offset: -1, What: what, Err: errorf("verify", q.dir, -1, ErrCorrupt, "%s", what)})
	}
	segBad := func(n int64, format string, args ...any) {
		what := fmt.Sprintf(format, args...)
		add(Problem{Kind: ProblemSegment, Segment: n, Cursor: -1, Offset: -1, What: what, Err: errorf("verify", q.segPath(n), -1, ErrCorrupt, "%s", what)})
	}
	var prev *segHeader
	head := int64(-1)
	for i := 0; i < len(nums); {
		n := nums[i]
		if prev != nil && n > prev.num+1 && head < 0 {
			// Before the head, segments follow each other. The listing is no snapshot of a live
			// queue (segments are prepared ahead in parallel, retention removes them): look at
			// the next one itself. prev is sealed, so it existed when the writer rolled to it.
			switch {
			case segExists(q.segPath(prev.num + 1)):
				n = prev.num + 1 // made after the listing
			case !segExists(q.segPath(prev.num)):
				prev = nil // removed by retention since, and its successor after it (oldest first)
			default:
				chainBad("segments %d to %d are missing", prev.num+1, n-1)
			}
		}
		if n == nums[i] {
			i++
		}
		// Map and lock the segment first: from then on retention cannot recycle it, so the
		// header read next and the frames walked are those of segment n.
		l, openErr := q.openSegment(n, true)
		if errors.Is(openErr, fs.ErrNotExist) { // removed or being recycled
			prev = nil
			continue
		}
		h, err := q.segHeader(n)
		if errors.Is(err, fs.ErrNotExist) {
			closeVerified(l)
			prev = nil
			continue
		}
		if err != nil {
			closeVerified(l)
			add(Problem{Kind: ProblemRead, Segment: n, Cursor: -1, Offset: -1, What: err.Error(), Err: err})
			prev = nil
			continue
		}
		res.Segments++
		if h.nodeFmt {
			segBad(n, "not made by a shmio-go queue")
		}
		if h.segNum != 0 && h.segNum != n {
			segBad(n, "header says it is segment %d", h.segNum)
		}
		if h.segNum == 0 && (h.sealed || h.committed > 0) {
			segBad(n, "holds frames but its number was never recorded")
		}
		// Segments after the head are prepared ahead: the roll to them stamps their chain word.
		if prev != nil && prev.num == n-1 && h.segNum != 0 && head < 0 && h.prevID != prev.id {
			segBad(n, "previous segment's ID %#x, segment %d has %#x (replaced or out of order)", h.prevID, n-1, prev.id)
		}
		if head >= 0 && (h.committed > 0 || h.sealed) && q.sealedSince(head) {
			head = -1 // the writer rolled on while Verify looked: head was not the last
		}
		switch {
		case head >= 0 && (h.committed > 0 || h.sealed):
			segBad(n, "has frames or is sealed after unsealed segment %d", head)
		case head < 0 && !h.sealed:
			head = n
		}
		if h.sealed && h.sealedAt == 0 {
			segBad(n, "sealed without a seal time")
		}
		if h.committed > 0 {
			if openErr != nil {
				add(Problem{Kind: ProblemRead, Segment: n, Cursor: -1, Offset: -1, What: openErr.Error(), Err: openErr})
			} else {
				frames, bytes, p := verifyFrames(n, l)
				res.Frames += frames
				res.Bytes += bytes
				if p != nil {
					add(*p)
				}
			}
		}
		if l != nil && verifyHeld != nil {
			verifyHeld(n)
		}
		closeVerified(l)
		prev = &h
	}
	res.Head = head
	res.Sealed = head < 0 && res.Segments > 0 && !q.grewPast(nums[len(nums)-1])
	if len(res.Problems) == 0 {
		return res, nil
	}
	list := make([]string, len(res.Problems))
	for i, p := range res.Problems {
		list[i] = p.String()
	}
	msg := fmt.Sprintf("%d problem(s): %s", len(list), strings.Join(list, "; "))
	for _, p := range res.Problems {
		if p.damage() {
			return res, errorf("verify", q.dir, -1, ErrCorrupt, "%s", msg)
		}
	}
	return res, newError("verify", q.dir, -1, fmt.Errorf("%s: %w", msg, res.Problems[0].Err))
}

// segExists reports whether a segment file is there (an error other than its absence counts as
// there: Verify then reports it when it reads the segment).
func segExists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// sealedSince reports whether segment n, unsealed when Verify read it, is sealed now: on a live
// queue the writer may roll while Verify walks the segments after n. Gone counts as sealed:
// retention removes only sealed segments.
func (q *Queue) sealedSince(n int64) bool {
	h, err := q.segHeader(n)
	return errors.Is(err, fs.ErrNotExist) || err == nil && h.sealed
}

// grewPast reports whether the queue now has a segment after last, the last one Verify listed:
// when every segment it listed was sealed by the time it read it, the writer moved on to one made
// after the listing.
func (q *Queue) grewPast(last int64) bool {
	nums, err := q.listSegments()
	return err == nil && len(nums) > 0 && nums[len(nums)-1] > last
}

// closeVerified closes a segment Verify opened, if it did; a read-only mapping's close has nothing
// to report that would change the verdict.
func closeVerified(l *Log) {
	if l != nil {
		_ = l.Close()
	}
}

// verifyFrames walks the frames of segment n, mapped (with DebugChecks) and locked by the
// caller, checking both lengths of each. It returns the frames and bytes read and, when the
// walk stopped early, the problem: the first frame it could not read, located.
func verifyFrames(n int64, l *Log) (frames, bytes int64, prob *Problem) {
	it, err := l.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		return 0, 0, &Problem{Kind: ProblemRead, Segment: n, Cursor: -1, Offset: -1, What: err.Error(), Err: err}
	}
	defer it.Close()
	end := l.Header().Size - l.Header().DataOffset
	batch := make([][]byte, 0, 256)
	for it.Cursor() < end {
		batch, err = it.NextBatch(batch[:0], BatchOptions{MaxFrames: 256, MaxBytes: 1 << 20})
		frames += int64(len(batch))
		if err != nil {
			// The iterator stays on the frame it could not read.
			c := it.Cursor()
			return frames, c, &Problem{Kind: ProblemFrame, Segment: n, Cursor: QueueCursor(n, c), Offset: l.dataOff() + c,
				What: frameDamage(l, int(l.dataOff()+c), err), Err: err}
		}
		if len(batch) == 0 {
			break
		}
	}
	return frames, it.Cursor(), nil
}
