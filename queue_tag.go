package shmio

import (
	"errors"
	"io/fs"
)

// Commit tags in a queue: a tag is stored only with the commit that makes its batch's last
// frame visible, and carried from segment to segment, so that Queue.CommitTag never names a
// frame that is not committed, whatever instant a writer dies at.

// commitKeepingTag publishes a segment's allocated frames with the tag its committed end has
// now, if it has one: the frames of a batch that straddles a roll must not claim its tag.
func (s *wseg) commitKeepingTag() error {
	if !s.w.uncommitted() {
		return nil
	}
	if tag, ok, err := s.log.CommitTag(); err != nil {
		return err
	} else if ok {
		return s.w.CommitTagged(tag)
	}
	return s.w.Commit()
}

// carryTag gives the empty segment next the tag of old's committed end (which old's final
// commit keeps), so that Queue.CommitTag finds it in the head once old is sealed, whether or not
// retention keeps old. Written before next is published, tag before end, as a commit does.
func carryTag(old, next *wseg) {
	tag, ok, err := old.log.CommitTag()
	if err != nil || !ok || next.w.uncommitted() || next.w.committedCursor() != 0 {
		return
	}
	next.log.word64(offTag0Tag).Store(tag)
	next.log.word64(offTag0End).Store(uint64(next.w.committedCursor() + next.log.dataOff()))
}

// CommitTag returns the tag stored by the last QueueWriter.CommitTagged, with ok only when it
// belongs to the current committed end (see Log.CommitTag). The head segment answers; while it
// has nothing committed it holds the tag carried from the previous segment, and for queues
// written before tags were carried the previous segment answers.
func (q *Queue) CommitTag() (tag uint64, ok bool, err error) {
	for tries := 0; ; tries++ {
		head, err := q.findHead(1)
		if err != nil {
			return 0, false, err
		}
		tag, ok, done, err := q.commitTagFrom(head)
		if done || err != nil || tries == 10 {
			return tag, ok, err
		}
		// The head was sealed and removed under us: look again.
	}
}

// commitTagFrom reads the tag at the head segment head; done is false if the head vanished.
func (q *Queue) commitTagFrom(head int64) (tag uint64, ok, done bool, err error) {
	for n := head; n >= max(head-1, 1); n-- {
		l, err := q.openSegment(n, q.debug)
		if errors.Is(err, fs.ErrNotExist) {
			return 0, false, n != head, nil
		}
		if err != nil {
			return 0, false, true, err
		}
		tag, ok, err = l.CommitTag()
		h := l.Header()
		l.Close()
		if err != nil {
			return 0, false, true, err
		}
		if ok || h.Size != h.DataOffset {
			return tag, ok, true, nil
		}
	}
	return 0, false, true, nil
}
