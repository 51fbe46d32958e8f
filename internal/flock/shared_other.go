//go:build !linux

package flock

import "golang.org/x/sys/unix"

func procMode(*unix.Stat_t) (string, int) { return "", 0 }

// TryExclusiveOFDAt succeeds without locking: there are no OFD locks here (HeldOFDAt says so).
func TryExclusiveOFDAt(uintptr, int64) (bool, error) { return true, nil }

// UnlockOFDAt does nothing.
func UnlockOFDAt(uintptr, int64) {}

// HeldOFDAt cannot tell here: ok is false.
func HeldOFDAt(uintptr, int64) (held, ok bool) { return false, false }
