package shmio

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Files inside a queue directory are opened without following symbolic links: whoever may
// write to the directory must not be able to make the queue read, create or overwrite a file
// elsewhere. Files are created with O_EXCL under unpredictable temporary names, and given their
// mode with fchmod, so that the umask does not narrow the mode the queue records.

// queueFileError explains why a file of a queue could not be opened.
func queueFileError(op, path string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		return errorf(op, path, -1, ErrBadHeader, "refusing to follow a symbolic link")
	}
	return newError(op, path, -1, err)
}

// openQueueFile opens a regular file of a queue directory; flags are unix.O_RDONLY or O_RDWR.
func openQueueFile(op, path string, flags int) (*os.File, error) {
	fd, err := openRetry(path, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, queueFileError(op, path, err)
	}
	return regularFile(op, path, fd)
}

// openQueueFileAt is openQueueFile relative to the open directory dir.
func openQueueFileAt(op string, dir *os.File, name string, flags int) (*os.File, error) {
	path := filepath.Join(dir.Name(), name)
	for {
		fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, queueFileError(op, path, err)
		}
		return regularFile(op, path, fd)
	}
}

func regularFile(op, path string, fd int) (*os.File, error) {
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w: not a regular file", ErrBadHeader)
	}
	if err != nil {
		f.Close()
		return nil, newError(op, path, -1, err)
	}
	return f, nil
}

// createQueueFileAt creates name in dir (failing if anything, a link included, is there) with
// exactly mode.
func createQueueFileAt(dir *os.File, name string, mode os.FileMode) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &fs.PathError{Op: "create", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name))
	if err := f.Chmod(permOr600(mode)); err != nil {
		f.Close()
		unix.Unlinkat(int(dir.Fd()), name, 0)
		return nil, err
	}
	return f, nil
}

// openDir opens a directory: the queue's own (a path the application chose, which may be a
// link) with follow, one inside it (readers/) without following a link.
func openDir(op, path string, follow bool) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openRetry(path, flags, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return nil, errorf(op, path, -1, ErrBadHeader, "not a directory (or a symbolic link)")
		}
		return nil, queueFileError(op, path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// mkdirMode creates directory path with exactly dirMode(mode), unless it exists; it reports
// whether it did. follow is as for openDir.
func mkdirMode(path string, mode os.FileMode, follow bool) (bool, error) {
	if err := os.Mkdir(path, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	d, err := openDir("mkdir", path, follow)
	if err == nil {
		err = d.Chmod(dirMode(mode))
		d.Close()
	}
	return true, err
}

// tempName returns an unpredictable name for a temporary file beside base.
func tempName(base string) string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%s.tmp-%d-%x", base, os.Getpid(), rnd)
}

// readQueueFile reads a small file of the queue directory.
func readQueueFile(op, path string) ([]byte, error) {
	f, err := openQueueFile(op, path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// writeFileAtomic replaces name in dir with data (exactly mode): a temporary file created
// exclusively, then renamed over name (which replaces a link without following it).
func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) error {
	path := filepath.Join(dir, name)
	d, err := openDir("write", dir, true)
	if err != nil {
		return err
	}
	defer d.Close()
	tmp := tempName(name)
	f, err := createQueueFileAt(d, tmp, mode)
	if err != nil {
		return newError("write", path, -1, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(int(d.Fd()), tmp, int(d.Fd()), name)
	}
	if err != nil {
		unix.Unlinkat(int(d.Fd()), tmp, 0)
		return newError("write", path, -1, err)
	}
	return nil
}

// fileModeString and parseFileMode keep a mode in queue.json as octal text ("0640").
func fileModeString(m os.FileMode) string { return fmt.Sprintf("%#o", uint32(m.Perm())) }

func parseFileMode(s string) os.FileMode {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0
	}
	return os.FileMode(v)
}

// openLockFile opens writer.lock, creating it (with the queue's mode) when missing.
func (q *Queue) openLockFile() (*os.File, error) {
	path := filepath.Join(q.dir, lockFile)
	for {
		f, err := openQueueFile("writer", path, unix.O_RDWR)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		d, err := openDir("writer", q.dir, true)
		if err != nil {
			return nil, err
		}
		f, err = createQueueFileAt(d, lockFile, q.opts.Mode)
		d.Close()
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, newError("writer", path, -1, err)
		}
		// Another writer created it meanwhile (or a link appeared): open what is there.
	}
}

// readersDirFile opens readers/, creating it (with the queue's mode) when create is set.
// fs.ErrNotExist when it is missing and create is not set.
func (q *Queue) readersDirFile(op string, create bool) (*os.File, error) {
	path := filepath.Join(q.dir, readersDir)
	d, err := openDir(op, path, false)
	if err == nil || !create || !errors.Is(err, fs.ErrNotExist) {
		return d, err
	}
	if _, err := mkdirMode(path, q.opts.Mode, false); err != nil {
		return nil, newError(op, path, -1, err)
	}
	return openDir(op, path, false)
}
