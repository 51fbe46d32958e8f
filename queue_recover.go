package shmio

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A queue writer opening after another one died: where to resume (see Queue.Writer).

// recover finds the head segment and repairs what a dead writer left.
func (w *QueueWriter) recover() error {
	q := w.q
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return newError("writer", q.dir, -1, err)
	}
	for _, e := range ents {
		// Open's create leaves ".NAME.tmp-PID-RAND" when killed before linking: a half-made
		// segment. Only the writer creates segments, and we hold the writer lock.
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, segSuffix+".tmp-") || strings.HasPrefix(n, metaFile+".tmp-") {
			os.Remove(filepath.Join(q.dir, n))
		}
	}
	testHook("recover")
	nums, err := q.listSegments()
	if err != nil {
		return err
	}
	head := int64(-1)
	var prevID uint64
	var prevEnd int64
	for i, n := range nums {
		h, err := q.segHeader(n)
		if err != nil {
			return newError("writer", q.dir, -1, fmt.Errorf("segment %d: %w", n, err))
		}
		if i > 0 && n != nums[i-1]+1 && head < 0 {
			return errorf("writer", q.dir, -1, ErrCorrupt, "segments %d and %d: the chain has a gap", nums[i-1], n)
		}
		if head >= 0 {
			// After the head: prepared ahead, never published. Anything committed here means
			// frames follow an unsealed segment, which no writer of ours does.
			if h.committed != 0 {
				return errorf("writer", q.dir, -1, ErrCorrupt, "segment %d holds %d committed bytes after unsealed segment %d", n, h.committed, head)
			}
			if err := os.Remove(q.segPath(n)); err != nil {
				return newError("writer", q.dir, -1, err)
			}
			continue
		}
		if h.nodeFmt {
			return errorf("writer", q.dir, -1, ErrBadHeader, "segment %d was not made by a shmio-go queue", n)
		}
		if !h.sealed {
			head = n
			continue
		}
		prevID, prevEnd = h.id, h.committed
		h.num = n
		w.sealed = append(w.sealed, h)
	}
	if w.q.opts.Retention.zero() {
		w.sealed = nil
	}
	if head < 0 && len(nums) > 0 {
		// Every segment is sealed: QueueWriter.Seal ended the queue.
		return errorf("writer", q.dir, -1, ErrSealed, "the queue was sealed (its last segment, %d, is sealed)", nums[len(nums)-1])
	}
	if head < 0 {
		head = 1
		s, err := q.prepareSegment(head)
		if err != nil {
			return err
		}
		s.log.word64(offSegPrevID).Store(prevID)
		s.log.word64(offSegPrevEnd).Store(uint64(prevEnd))
		w.setCur(s)
		return nil
	}
	l, err := Open(Options{Path: q.segPath(head), Writable: true, DebugChecks: q.debug, Prefault: q.opts.Prefault})
	if err != nil {
		return err
	}
	l.private = true // only this queue uses it: Close unmaps at once
	sw, err := l.Writer()
	if err != nil {
		l.Close()
		return err
	}
	s := &wseg{num: head, log: l, w: sw, id: l.Header().ID}
	// The first segment is stamped right after it is made; a writer killed in between left 0.
	if l.word64(offSegNum).Load() == 0 {
		if head > 1 {
			if ph, err := q.segHeader(head - 1); err == nil {
				l.word64(offSegPrevID).Store(ph.id)
				l.word64(offSegPrevEnd).Store(uint64(ph.committed))
			}
		}
		l.word64(offSegNum).Store(uint64(head))
	}
	w.setCur(s)
	return nil
}

func (w *QueueWriter) setCur(s *wseg) {
	w.cur = s
	w.sw = s.w
	w.seg = s.num
}
