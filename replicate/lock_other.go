//go:build !unix

package replicate

// lockFile is a no-op where flock is missing.
func lockFile(string) (func(), error) { return func() {}, nil }
