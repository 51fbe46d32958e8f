// Package fallocate reserves a file's blocks up front, so that a full filesystem (a full
// /dev/shm above all) is an error when a log is created instead of a SIGBUS on first write.
package fallocate
