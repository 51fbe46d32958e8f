package shmio

import (
	"io"
	"io/fs"

	"golang.org/x/sys/unix"
)

// segHeader is a segment header read with pread: no mapping, for listing and retention.
type segHeader struct {
	num       int64
	fileSize  int64
	committed int64 // bytes of frames (committed end minus data offset)
	sealed    bool
	nodeFmt   bool
	id        uint64
	created   int64
	segNum    int64
	prevID    uint64
	sealedAt  int64
	prevEnd   int64
}

// readSegHeader reads a segment's header with pread and validates it as Open does (parseHeader).
func readSegHeader(path string) (segHeader, error) {
	var h segHeader
	f, err := openQueueFile("read header", path, unix.O_RDONLY)
	if err != nil {
		return h, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return h, err
	}
	h.fileSize = fi.Size()
	buf := make([]byte, goHeaderSize) // zeros past a short file's end: parseHeader bounds by its size
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return h, err
	}
	lo, err := parseHeader(buf, h.fileSize, path)
	if err != nil {
		return h, err
	}
	h.committed = int64(le.Uint64(buf[lo.sizeOff:])) - lo.dataOffset
	if lo.nodeFormat {
		h.nodeFmt = true
		return h, nil
	}
	h.sealed = le.Uint32(buf[offFlags:])&flagSealed != 0
	h.id = le.Uint64(buf[offID:])
	h.created = int64(le.Uint64(buf[offCreated:]))
	h.segNum = int64(le.Uint64(buf[offSegNum:]))
	h.prevID = le.Uint64(buf[offSegPrevID:])
	h.sealedAt = int64(le.Uint64(buf[offSegSealedAt:]))
	h.prevEnd = int64(le.Uint64(buf[offSegPrevEnd:]))
	return h, nil
}

func (q *Queue) segHeader(n int64) (segHeader, error) {
	h, err := readSegHeader(q.segPath(n))
	h.num = n
	if err == nil && h.segNum != 0 && h.segNum != n {
		return h, q.misnumbered(n)
	}
	return h, err
}

// misnumbered explains a segment file found recording a number other than n. Recycling renames
// a file out of sight before it rewrites its header, so a file seen under its old name with a
// new number was opened just before the rename, and segment n is gone (fs.ErrNotExist). But if
// the name still shows a file with another number, that file is damaged (ErrCorrupt).
func (q *Queue) misnumbered(n int64) error {
	path := q.segPath(n)
	h, err := readSegHeader(path)
	if err == nil && h.segNum != 0 && h.segNum != n {
		return errorf("open segment", path, offSegNum, ErrCorrupt, "the segment file records number %d", h.segNum)
	}
	return &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}
