package futex

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports whether Wait really sleeps until Wake.
const Supported = true

const (
	futexWait = 0 // FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the word is shared between processes
	futexWake = 1
)

// Wait sleeps while *addr == val, for at most timeout. It returns early on Wake, on a change of
// the word, on a signal, or spuriously: callers re-check their condition in a loop.
func Wait(addr *atomic.Uint32, val uint32, timeout time.Duration) {
	ts := unix.NsecToTimespec(int64(timeout))
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// Wake wakes every process and thread sleeping in Wait on addr.
func Wake(addr *atomic.Uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(1<<31-1), 0, 0, 0)
}

// WakeOne wakes one process or thread sleeping in Wait on addr, if any, and reports whether
// there was one.
func WakeOne(addr *atomic.Uint32) bool {
	n, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, 1, 0, 0, 0)
	return e != 0 || n > 0 // on an error, assume a sleeper
}
