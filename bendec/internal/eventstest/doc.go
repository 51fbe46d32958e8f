// Package eventstest holds the Go code GenerateGo writes for the bendec test schema
// (bendec/testdata/schema.json), with tests proving it encodes byte for byte as the dynamic codec
// and Node bendec do, and benchmarks against raw frames.
package eventstest

//go:generate go run github.com/shmio/shmio/cmd/shmio gen go --schema ../../testdata/schema.json --package eventstest --out events.go
