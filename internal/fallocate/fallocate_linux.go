package fallocate

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Reserve allocates size bytes for fd. Filesystems that cannot reserve (EOPNOTSUPP) are accepted
// as they are: the file is then sparse, as ftruncate left it.
func Reserve(fd int, size int64) error {
	for {
		err := unix.Fallocate(fd, 0, 0, size)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			return nil
		}
		return err
	}
}
