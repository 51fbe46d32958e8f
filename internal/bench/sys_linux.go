package bench

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// setChildAttrs makes the kernel kill a child when the parent dies, even by SIGKILL, so no writer or
// reader is left spinning on a core after the command is gone.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// freeBytes is the space left for unprivileged users on the file system holding dir.
func freeBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
