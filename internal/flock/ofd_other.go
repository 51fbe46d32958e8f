//go:build !linux

package flock

// OFDSupported reports whether the open-file-description locks below really lock: not here
// (there are no OFD locks), so callers must not rely on them to exclude anyone.
const OFDSupported = false

// ShareOFD always succeeds: nothing can hold an exclusive lock.
func ShareOFD(uintptr) bool { return true }

// TryExclusiveOFD always fails: whether someone shares the file cannot be known.
func TryExclusiveOFD(uintptr) bool { return false }

// UnlockOFD does nothing.
func UnlockOFD(uintptr) {}
