package flock

import "golang.org/x/sys/unix"

// OFDSupported reports whether the open-file-description locks below really lock. On Linux they
// are independent of the flock(2) lock above: a segment's writer lock and its mapping locks do
// not interfere.
const OFDSupported = true

// ofd sets (or clears, with F_UNLCK) an open-file-description lock on byte 0 of fd without
// waiting; false means another open file description holds a conflicting one.
func ofd(fd uintptr, typ int16) bool {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 1}
	for {
		err := unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			return err == nil
		}
	}
}

// ShareOFD takes a shared lock on byte 0 of fd (a reader mapping a segment); false means an
// exclusive holder has it.
func ShareOFD(fd uintptr) bool { return ofd(fd, unix.F_RDLCK) }

// TryExclusiveOFD takes the exclusive lock on byte 0 of fd (a recycler); false means someone
// holds a shared one.
func TryExclusiveOFD(fd uintptr) bool { return ofd(fd, unix.F_WRLCK) }

// UnlockOFD releases the lock ShareOFD or TryExclusiveOFD took through fd.
func UnlockOFD(fd uintptr) { ofd(fd, unix.F_UNLCK) }
