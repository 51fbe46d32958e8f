//go:build !linux

package futex

import "runtime"

// Yield gives way to other goroutines; there is no portable sched_yield.
func Yield() { runtime.Gosched() }
