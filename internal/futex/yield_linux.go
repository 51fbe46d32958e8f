package futex

import "golang.org/x/sys/unix"

// Yield gives the CPU to another runnable thread (sched_yield): a lock's waiter lets a preempted
// holder in another process run.
func Yield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
