// Package futex lets processes sleep on a 32-bit word inside a shared mapping until another
// process changes it. On Linux it is the futex system call (shared, not private, futexes: the word
// lives in a MAP_SHARED file mapping seen by several processes); elsewhere Supported is false
// and callers poll.
package futex
