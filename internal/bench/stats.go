package bench

import (
	"math"
	"math/bits"
	"syscall"
	"time"
)

// nowNanos is a clock every process on the machine reads alike, for timestamps that cross processes
// (Go's monotonic reading is relative to each process's start, so it cannot be compared between them).
// It is the vDSO wall clock: about 20 ns, no system call.
func nowNanos() int64 { return time.Now().UnixNano() }

// usage is what getrusage says this process used so far: CPU time, and how often it gave up the CPU
// (waits: futex sleeps, blocking reads) or had it taken away (preempted). Rates swing with whatever
// else runs on a busy machine; CPU and switches per frame are steadier, and show how a side waits.
type usage struct {
	CPUNs     int64 `json:"cpu_ns"`    // user + system
	Waits     int64 `json:"waits"`     // voluntary context switches
	Preempted int64 `json:"preempted"` // involuntary context switches
}

func selfUsage() usage {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return usage{}
	}
	return usage{CPUNs: ru.Utime.Nano() + ru.Stime.Nano(), Waits: int64(ru.Nvcsw), Preempted: int64(ru.Nivcsw)}
}

// since is what was used from u0 to u.
func (u usage) since(u0 usage) usage {
	return usage{CPUNs: u.CPUNs - u0.CPUNs, Waits: u.Waits - u0.Waits, Preempted: u.Preempted - u0.Preempted}
}

// latHist is a log-linear latency histogram (32 sub-buckets per power of two, about 3% resolution)
// that records without allocating, for per-frame latencies in the demo.
type latHist struct {
	counts [64 * histSub]uint64
	n      uint64
	max    int64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
)

func histIndex(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - histSubBits // >= 1
	return e*histSub + int(uint64(v)>>(e-1)) - histSub
}

// histValue is the middle of bucket i (the inverse of histIndex).
func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := i / histSub
	m := int64(i%histSub + histSub)
	lo := m << (e - 1)
	return lo + (int64(1)<<(e-1))/2
}

func (h *latHist) add(v int64) {
	h.counts[histIndex(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// quantile returns the value at quantile q (0..1), 0 when empty.
func (h *latHist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(h.n)))
	if want < 1 {
		want = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			return min(histValue(i), h.max)
		}
	}
	return h.max
}

func (h *latHist) reset() { *h = latHist{} }
