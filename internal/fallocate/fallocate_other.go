//go:build !linux

package fallocate

// Reserve is a no-op where there is no fallocate: the file stays sparse.
func Reserve(fd int, size int64) error { return nil }
