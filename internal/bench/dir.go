package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/shmio/shmio"
)

// DefaultLogDir is where Demo and Run put their logs: /dev/shm (memory, the intended home of a
// log) when it exists and has room for need bytes, else the temporary directory.
func DefaultLogDir(need int64) string {
	const shm = "/dev/shm"
	if st, err := os.Stat(shm); err == nil && st.IsDir() {
		if free, ok := freeBytes(shm); !ok || free >= need+need/8 {
			if f, err := os.CreateTemp(shm, ".shmio-probe-*"); err == nil {
				f.Close()
				os.Remove(f.Name())
				return shm
			}
		}
	}
	return os.TempDir()
}

// tempLogPath names a fresh log file in dir for this process.
func tempLogPath(dir, kind string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("shmio-%s-%d-%d", kind, os.Getpid(), n))
}

// createLog makes a fresh, closed log at path; what names the log in the error, which names the
// path once (the library's error names it and a temporary file besides).
func createLog(what, path string, capacity int64) (shmio.Header, error) {
	os.Remove(path) // a leftover from a killed run with a recycled pid
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: capacity, Writable: true})
	if err != nil {
		os.Remove(path)
		return shmio.Header{}, fmt.Errorf("creating %s %s: %s", what, path, cause(err))
	}
	h := l.Header()
	if err := l.Close(); err != nil {
		os.Remove(path)
		return shmio.Header{}, err
	}
	return h, nil
}

// cause is err without the library's wrapping and the path prefix of an *fs.PathError, for a
// message that names the path itself (as the command's rootCause does).
func cause(err error) string {
	var se *shmio.Error
	if errors.As(err, &se) && se.Err != nil {
		err = se.Err
	}
	msg := err.Error()
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		msg = strings.Replace(msg, pe.Op+" "+pe.Path+": ", "", 1)
	}
	return msg
}
