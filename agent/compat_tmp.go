package agent

import "errors"

// TEMPORARY until the root package compiles: stand-ins for shmio.BatchOptions and sentinels.
type batchOptions struct{ MaxMessages, MaxBytes int }

var errFrameTooLarge = errors.New("frame too large")
