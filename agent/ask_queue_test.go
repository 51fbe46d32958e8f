package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// TestWriteFrameQueueShared: prompts written to a queue go through a shared writer, so they
// append beside another shared writer that is open (as concurrent `shmio prompt` calls do)
// instead of waiting for it, and each arrives whole.
func TestWriteFrameQueueShared(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: dir, Writable: true, SegmentSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	other, err := q.SharedWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		if err := writeFrame(ctx, dir, fmt.Appendf(nil, "prompt %d %0200d", i, 0)); err != nil {
			t.Fatalf("prompt %d: %v", i, err)
		}
	}
	it, err := q.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for f, err := range it.All() {
		if err != nil || string(f) != string(fmt.Appendf(nil, "prompt %d %0200d", n, 0)) {
			t.Fatalf("frame %d: %q, %v", n, f, err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("%d prompts in the queue, want 10", n)
	}
}
