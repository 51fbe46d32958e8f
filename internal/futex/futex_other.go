//go:build !linux

package futex

import (
	"sync/atomic"
	"time"
)

// Supported reports whether Wait really sleeps until Wake; here it does not, so callers poll.
const Supported = false

// Wait sleeps for timeout (there is no cross-process wake-up here).
func Wait(_ *atomic.Uint32, _ uint32, timeout time.Duration) { time.Sleep(timeout) }

// Wake does nothing: sleepers poll.
func Wake(*atomic.Uint32) {}

// WakeOne does nothing and reports true: sleepers poll.
func WakeOne(*atomic.Uint32) bool { return true }
