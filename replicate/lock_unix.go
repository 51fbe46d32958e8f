//go:build unix

package replicate

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockFile takes an exclusive lock on path (created beside the cursor file) for as long as the
// process lives: a second pusher of the same cursor file is refused instead of racing the first.
// The kernel drops the lock when the holder dies, even by kill -9.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("replicate: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		who := strings.TrimSpace(string(b[:n]))
		if who == "" {
			who = "unknown"
		}
		return nil, fmt.Errorf("replicate: another pusher (pid %s) holds %s: one pusher per log and stream", who, path)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Truncate(0); f.Close() }, nil
}
