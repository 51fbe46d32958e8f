package shmio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// RetentionPolicy decides which old segments the writer removes. Only sealed segments go, oldest
// first. The soft limits (MaxSegments, MaxBytes, MaxAge) never remove a segment that a named
// reader has not finished; the hard limits remove it anyway, and that reader then gets ErrCursor
// naming the first cursor still available. Zero disables a limit; the zero policy keeps all.
type RetentionPolicy struct {
	MaxSegments int           `json:"max_segments,omitempty"` // segments up to the one being written
	MaxBytes    int64         `json:"max_bytes,omitempty"`    // size of all segment files, the prepared one included
	MaxAge      time.Duration `json:"max_age,omitempty"`      // since the segment was sealed

	HardMaxSegments int           `json:"hard_max_segments,omitempty"`
	HardMaxBytes    int64         `json:"hard_max_bytes,omitempty"`
	HardMaxAge      time.Duration `json:"hard_max_age,omitempty"`
}

func (p RetentionPolicy) validate() error {
	if p.MaxSegments < 0 || p.MaxBytes < 0 || p.MaxAge < 0 || p.HardMaxSegments < 0 || p.HardMaxBytes < 0 || p.HardMaxAge < 0 {
		return fmt.Errorf("retention: negative limit in %+v", p)
	}
	return nil
}

func (p RetentionPolicy) zero() bool { return p == RetentionPolicy{} }

// String describes the policy for humans.
func (p RetentionPolicy) String() string {
	if p.zero() {
		return "keep everything"
	}
	s := ""
	add := func(name string, v any, set bool) {
		if set {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s %v", name, v)
		}
	}
	add("max segments", p.MaxSegments, p.MaxSegments > 0)
	add("max bytes", p.MaxBytes, p.MaxBytes > 0)
	add("max age", p.MaxAge, p.MaxAge > 0)
	add("hard max segments", p.HardMaxSegments, p.HardMaxSegments > 0)
	add("hard max bytes", p.HardMaxBytes, p.HardMaxBytes > 0)
	add("hard max age", p.HardMaxAge, p.HardMaxAge > 0)
	return s
}

// ApplyRetention removes the segments the policy lets go and returns their numbers. The writer
// runs it in the background after every roll (and periodically when the policy has an age); a
// Writable Queue may run it at any time. It never removes the segment being written.
func (q *Queue) ApplyRetention() ([]int64, error) {
	if !q.opts.Writable {
		return nil, newError("retention", q.dir, -1, ErrReadOnly)
	}
	p := q.opts.Retention
	if p.zero() {
		return nil, nil
	}
	q.retMu.Lock()
	defer q.retMu.Unlock()
	return q.applyRetention(p, time.Now(), nil)
}

// applyRetention is one pass over the directory; recycle is as for retain.
func (q *Queue) applyRetention(p RetentionPolicy, now time.Time, recycle func(segHeader) bool) ([]int64, error) {
	nums, err := q.listSegments()
	if err != nil {
		return nil, err
	}
	var sealed []segHeader
	var total int64
	count, headSeen := 0, false
	for _, n := range nums {
		h, err := q.segHeader(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		total += h.fileSize
		if !headSeen {
			count++
			if h.sealed {
				sealed = append(sealed, h)
			} else {
				headSeen = true
			}
		}
	}
	if !headSeen && len(sealed) > 0 {
		sealed = sealed[:len(sealed)-1] // never the last segment
	}
	removed, _, err := q.retain(p, now, sealed, count, total, recycle)
	return removed, err
}

// retain removes the oldest of the sealed segments (oldest first, all before the head) that the
// policy lets go, given the count of segments up to the head and the bytes of all segment files.
// It returns the numbers removed and how many of sealed they were. recycle, when not nil, may
// take a segment's file for reuse instead of its removal.
func (q *Queue) retain(p RetentionPolicy, now time.Time, sealed []segHeader, count int, total int64, recycle func(segHeader) bool) ([]int64, int, error) {
	// needFrom: the oldest segment a named reader has not finished.
	cursors, err := q.readerCursors()
	if err != nil {
		return nil, 0, err
	}
	needFrom := int64(maxSegNum + 1)
	for _, c := range cursors {
		seg, off := SplitQueueCursor(c)
		if c == 0 {
			seg = 0 // has not started: needs everything
		} else if off > 0 {
			for _, h := range sealed {
				if h.num == seg && h.committed == off {
					seg++ // at the very end of a sealed segment: finished it
				}
			}
		}
		needFrom = min(needFrom, seg)
	}
	var removed []int64
	i := 0
	for ; i < len(sealed); i++ {
		h := sealed[i]
		age := time.Duration(-1)
		if h.sealedAt != 0 {
			age = now.Sub(time.Unix(0, h.sealedAt))
		}
		soft := p.MaxSegments > 0 && count > p.MaxSegments || p.MaxBytes > 0 && total > p.MaxBytes || p.MaxAge > 0 && age > p.MaxAge
		hard := p.HardMaxSegments > 0 && count > p.HardMaxSegments || p.HardMaxBytes > 0 && total > p.HardMaxBytes || p.HardMaxAge > 0 && age > p.HardMaxAge
		if !hard && !(soft && h.num < needFrom) {
			break
		}
		if recycle == nil || !recycle(h) {
			if err := os.Remove(q.segPath(h.num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, i, newError("retention", q.dir, -1, err)
			}
		}
		removed = append(removed, h.num)
		count--
		total -= h.fileSize
	}
	return removed, i, nil
}
