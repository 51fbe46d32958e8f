package flock

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procLocks looks for a FLOCK WRITE lock on the file's device and inode in /proc/locks.
// Lines look like: "1: FLOCK  ADVISORY  WRITE 4242 00:1a:123456 0 EOF".
func procLocks(st *unix.Stat_t) (held bool, pid int, ok bool) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return false, 0, false
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// A blocked waiter line has "->" after the index; it holds nothing.
		if len(fields) < 6 || fields[1] != "FLOCK" || fields[3] != "WRITE" || fields[5] != want {
			continue
		}
		pid, _ := strconv.Atoi(fields[4])
		return true, pid, true
	}
	return false, 0, sc.Err() == nil
}
