package flock

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func procMode(st *unix.Stat_t) (mode string, pid int) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return "", 0
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || fields[5] != want {
			continue
		}
		pid, _ := strconv.Atoi(fields[4])
		if fields[3] == "WRITE" {
			return "exclusive", pid
		}
		return "shared", pid
	}
	return "", 0
}

// ofdAt sets or clears (F_UNLCK) an open-file-description lock on the byte at off without
// waiting; false means another open file description holds a conflicting one.
func ofdAt(fd uintptr, off int64, typ int16) (bool, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return false, nil
		default:
			return false, err
		}
	}
}

// TryExclusiveOFDAt takes the exclusive open-file-description lock on the byte at off: a shared
// writer's liveness token. False (nil error) means another open file description holds it.
func TryExclusiveOFDAt(fd uintptr, off int64) (bool, error) { return ofdAt(fd, off, unix.F_WRLCK) }

// UnlockOFDAt releases the lock TryExclusiveOFDAt took.
func UnlockOFDAt(fd uintptr, off int64) { ofdAt(fd, off, unix.F_UNLCK) }

// HeldOFDAt reports whether an open file description other than fd's holds a lock on the byte
// at off; ok is false when the system cannot tell.
func HeldOFDAt(fd uintptr, off int64) (held, ok bool) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(fd, unix.F_OFD_GETLK, &lk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, false
		}
		return lk.Type != unix.F_UNLCK, true
	}
}
