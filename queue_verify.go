package shmio

import (
	"errors"
	"fmt"
	"io/fs"
)

// QueueVerifyResult is what Queue.Verify found.
type QueueVerifyResult struct {
	Segments int
	Head     int64 // the segment being written
	Frames   int64
	Bytes    int64    // committed bytes, lengths included
	Problems []string // empty when the queue is consistent
}

// Verify checks every segment and the chain between them: numbers without gaps, each segment's
// recorded number and the ID of its predecessor, every segment before the head sealed and none
// after it holding frames, and every frame's two lengths. It returns an error wrapping ErrCorrupt
// listing the problems (also in the result), or nil. Segments removed by retention while it runs
// are skipped.
func (q *Queue) Verify() (QueueVerifyResult, error) {
	var res QueueVerifyResult
	nums, err := q.listSegments()
	if err != nil {
		return res, err
	}
	bad := func(format string, args ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, args...)) }
	var prev *segHeader
	head := int64(-1)
	for _, n := range nums {
		h, err := q.segHeader(n)
		if errors.Is(err, fs.ErrNotExist) {
			prev = nil
			continue
		}
		if err != nil {
			bad("segment %d: %v", n, err)
			prev = nil
			continue
		}
		res.Segments++
		if h.nodeFmt {
			bad("segment %d: not made by a shmio-go queue", n)
		}
		if prev != nil && n != prev.num+1 && head < 0 { // after the head: prepared ahead, in any order
			bad("segments %d to %d are missing", prev.num+1, n-1)
		}
		if h.segNum != 0 && h.segNum != n {
			bad("segment %d: header says it is segment %d", n, h.segNum)
		}
		if h.segNum == 0 && (h.sealed || h.committed > 0) {
			bad("segment %d: holds frames but its number was never recorded", n)
		}
		// Segments after the head are prepared ahead: the roll to them stamps their chain word.
		if prev != nil && prev.num == n-1 && h.segNum != 0 && head < 0 && h.prevID != prev.id {
			bad("segment %d: previous segment's ID %#x, segment %d has %#x (replaced or out of order)", n, h.prevID, n-1, prev.id)
		}
		switch {
		case head >= 0 && (h.committed > 0 || h.sealed):
			bad("segment %d: has frames or is sealed after unsealed segment %d", n, head)
		case head < 0 && !h.sealed:
			head = n
		}
		if h.sealed && h.sealedAt == 0 {
			bad("segment %d: sealed without a seal time", n)
		}
		if h.committed > 0 {
			frames, bytes, err := q.verifyFrames(n)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				bad("segment %d: %v", n, err)
			}
			res.Frames += frames
			res.Bytes += bytes
		}
		prev = &h
	}
	res.Head = head
	if head < 0 && res.Segments > 0 {
		bad("every segment is sealed: no head to write to")
	}
	if len(res.Problems) > 0 {
		return res, errorf("verify", q.dir, -1, ErrCorrupt, "%d problem(s): %v", len(res.Problems), res.Problems)
	}
	return res, nil
}

// verifyFrames walks one segment's frames, checking both lengths of each.
func (q *Queue) verifyFrames(n int64) (frames, bytes int64, err error) {
	l, err := q.openSegment(n, true)
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	it, err := l.NewIterator(IteratorOptions{Spin: -1})
	if err != nil {
		return 0, 0, err
	}
	end := l.Header().Size - l.Header().DataOffset
	batch := make([][]byte, 0, 256)
	for it.Cursor() < end {
		batch, err = it.NextBatch(batch[:0], BatchOptions{MaxMessages: 256, MaxBytes: 1 << 20})
		for _, f := range batch {
			frames++
			bytes += int64(len(f)) + 4
		}
		if err != nil {
			return frames, bytes, err
		}
		if len(batch) == 0 {
			break
		}
	}
	return frames, bytes, nil
}
