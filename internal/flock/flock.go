// Package flock holds the single-writer lock of a shmio log: an exclusive flock(2) on the file,
// which the kernel releases when the holding process dies, however it dies.
package flock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrWouldBlock reports that another open file description holds the lock.
var ErrWouldBlock = errors.New("lock held by another writer")

// TryLock takes the exclusive lock without waiting.
func TryLock(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return ErrWouldBlock
		default:
			return err
		}
	}
}

// Unlock releases the lock taken by TryLock.
func Unlock(fd int) error { return unix.Flock(fd, unix.LOCK_UN) }

// Holder reports whether some process holds the exclusive lock on path, and its pid when the
// system says (0 when it does not). It reads /proc/locks where there is one, so it never takes the
// lock itself; elsewhere it probes with a shared lock, which a writer starting at that very
// instant could see as held.
func Holder(path string) (held bool, pid int, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, 0, err
	}
	if held, pid, ok := procLocks(&st); ok {
		return held, pid, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, 0, err
	}
	defer f.Close()
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err {
	case nil:
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false, 0, nil
	case unix.EWOULDBLOCK:
		return true, 0, nil
	default:
		return false, 0, err
	}
}
