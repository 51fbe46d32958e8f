package shmio

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/shmio/shmio/internal/flock"
	"golang.org/x/sys/unix"
)

// Remove deletes the log file at path, and only a log file that no writer holds: it refuses
// (ErrLocked) while a writer, in any process, holds the log's writer lock, since that writer
// would go on appending to a file nobody can open any more; and it refuses (ErrBadHeader)
// anything that is not a regular file holding a shmio log header (Node-made logs included): a
// directory, a symbolic link (never followed), a named pipe, a device node, a file of other data.
// It holds the writer lock while it unlinks, so no writer can start on the file meanwhile.
// Readers that have the log open keep their mapping until they close it.
func Remove(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return newError("remove", path, -1, err)
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG {
		return errorf("remove", path, -1, ErrBadHeader, "%s, not a shmio log: not removed", fileKind(fileMode(uint32(st.Mode))))
	}
	// Regular a moment ago: O_NOFOLLOW and O_NONBLOCK keep a swapped-in link or FIFO harmless,
	// and the identity check below refuses whatever replaced it.
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return errorf("remove", path, -1, ErrBadHeader, "a symbolic link, not a shmio log: not removed")
		}
		return newError("remove", path, -1, err)
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return newError("remove", path, -1, err)
	}
	if fst.Dev != st.Dev || fst.Ino != st.Ino || uint32(fst.Mode)&unix.S_IFMT != unix.S_IFREG {
		return newError("remove", path, -1, errors.New("the file changed while it was being checked: not removed"))
	}
	if err := checkLogHeader(fd, fst.Size, path); err != nil {
		return err
	}
	switch err := flock.TryLock(fd); {
	case errors.Is(err, flock.ErrWouldBlock):
		who := "a writer"
		if _, pid, _ := flock.Holder(path); pid > 0 {
			who = fmt.Sprintf("a writer (pid %d)", pid)
		}
		return errorf("remove", path, -1, ErrLocked, "%s holds the log: close it before removing the log", who)
	case err != nil:
		return newError("remove", path, -1, fmt.Errorf("flock: %w", err))
	}
	defer flock.Unlock(fd)
	// The name must still be the file we checked and locked.
	if err := unix.Lstat(path, &st); err != nil {
		return newError("remove", path, -1, err)
	}
	if st.Dev != fst.Dev || st.Ino != fst.Ino {
		return newError("remove", path, -1, errors.New("the file was replaced while it was being checked: not removed"))
	}
	if err := unix.Unlink(path); err != nil {
		return newError("remove", path, -1, err)
	}
	return nil
}

// checkLogHeader reads the header of the open file fd and returns ErrBadHeader (op "remove")
// unless it is a shmio log's.
func checkLogHeader(fd int, size int64, path string) error {
	buf := make([]byte, goHeaderSize) // 8-byte aligned, as parseHeader's atomic loads need
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return newError("remove", path, -1, err)
	}
	if n < len(buf) {
		clear(buf[n:])
	}
	if _, err := parseHeader(buf, size, path); err != nil {
		var e *Error
		if errors.As(err, &e) {
			err = e.Err
		}
		return newError("remove", path, -1, fmt.Errorf("%w: not removed", err))
	}
	return nil
}

// fileMode converts the type bits of a stat mode to an fs.FileMode, for fileKind.
func fileMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}
