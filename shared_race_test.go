//go:build race

package shmio

// shRace: the race detector is on; multi-process tests scale down.
const shRace = true
