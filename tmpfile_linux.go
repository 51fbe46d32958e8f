package shmio

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openTmpfile opens an unnamed file in dir (O_TMPFILE): if the process dies before linkTmpfile
// names it, the kernel frees it. f is nil when the file system or the kernel cannot do that.
func openTmpfile(dir string, mode os.FileMode) (f *os.File, err error) {
	fd, err := openRetry(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, uint32(mode))
	switch {
	case err == nil:
		return os.NewFile(uintptr(fd), dir), nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EINVAL):
		return nil, nil
	default:
		return nil, err
	}
}

// linkTmpfile gives the unnamed file f the name path, failing with EEXIST when path exists.
// unsupported reports that this process cannot link such files at all (no /proc, and no
// CAP_DAC_READ_SEARCH for AT_EMPTY_PATH).
func linkTmpfile(f *os.File, path string) (unsupported bool, err error) {
	fd := int(f.Fd())
	err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return false, err
	}
	if _, serr := os.Stat("/proc/self/fd"); serr == nil {
		return false, err // /proc works: the error is real
	}
	if err = unix.Linkat(fd, "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH); err == nil || errors.Is(err, unix.EEXIST) {
		return false, err
	}
	return true, err
}
