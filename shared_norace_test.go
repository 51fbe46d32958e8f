//go:build !race

package shmio

const shRace = false
