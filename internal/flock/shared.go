package flock

import "golang.org/x/sys/unix"

// TryLockShared takes the shared lock without waiting: shared writers hold it together, and it
// excludes the exclusive lock of TryLock (ErrWouldBlock either way round).
func TryLockShared(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
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

// Mode reports which flock(2) lock processes hold on path: "exclusive", "shared" or "" (none or
// unknown), and the pid of one holder where the system tells. It reads /proc/locks on Linux;
// elsewhere it reports "".
func Mode(path string) (mode string, pid int) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", 0
	}
	return procMode(&st)
}
