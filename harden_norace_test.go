//go:build !race

package shmio

const hqRace = false
