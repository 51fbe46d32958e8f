//go:build !linux

package bench

import "os/exec"

// setChildAttrs has no parent-death signal to set outside Linux; the parent kills its children on
// every exit path it controls.
func setChildAttrs(cmd *exec.Cmd) {}

// freeBytes is not checked outside Linux (/dev/shm is a Linux thing).
func freeBytes(dir string) (int64, bool) { return 0, false }
