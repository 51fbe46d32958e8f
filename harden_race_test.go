//go:build race

package shmio

// hqRace: the race detector runs atomics in its own runtime, where a fault on a truncated
// mapping cannot become a panic: truncation scenarios are skipped under it.
const hqRace = true
