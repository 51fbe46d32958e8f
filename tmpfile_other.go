//go:build !linux

package shmio

import "os"

// openTmpfile: only Linux has O_TMPFILE; create uses a named temporary file.
func openTmpfile(dir string, mode os.FileMode) (*os.File, error) { return nil, nil }

func linkTmpfile(f *os.File, path string) (unsupported bool, err error) { return true, nil }
