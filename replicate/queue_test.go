package replicate

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// TestQueueToQueue replicates a segmented queue into another one through the same interfaces,
// with segments small enough that batches straddle rolls, and restarts both sides once.
func TestQueueToQueue(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "js"), 0)
	open := func(name string) *shmio.Queue {
		q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: filepath.Join(dir, name), SegmentSize: 256 << 10, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	src, dst := open("src"), open("dst")
	sw, err := src.Writer()
	if err != nil {
		t.Fatal(err)
	}
	dw, err := dst.Writer()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	write := func(first, n int) {
		for i := first; i < first+n; i++ {
			b, err := sw.Allocate(min(frameSize(rng), 20000))
			if err != nil {
				t.Fatal(err)
			}
			fillFrame(b, i)
			if i%100 == 99 {
				if err := sw.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := sw.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	cursorFile := filepath.Join(dir, "cursor")
	nc := connect(t, s.ClientURL())
	round := func(want int64) {
		it, err := src.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		push, err := NewPusher(it, PushConfig{Conn: nc, Stream: StreamOptions{Name: "Q"}, LogID: 0x5eed, CursorFile: cursorFile, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		tag, _, err := dst.CommitTag()
		if err != nil {
			t.Fatal(err)
		}
		pull, err := NewPuller(dw, PullConfig{Conn: nc, Stream: "Q", Durable: "q", Tag: tag, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		stopPush, stopPull := runBG(push.Run), runBG(pull.Run)
		eventually(t, 2*time.Minute, "queue copied", func() bool { return pull.Stats().Frames >= want })
		if err := stopPush(); err != nil {
			t.Fatal(err)
		}
		if err := stopPull(); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 6000)
	round(6000)
	write(6000, 4000)
	round(4000)

	if _, ok, err := dst.CommitTag(); err != nil || !ok {
		t.Fatalf("destination tag %v %v", ok, err)
	}
	si, err := src.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	di, err := dst.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		a, err := si.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := di.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a == nil || b == nil {
			if a != nil || b != nil {
				t.Fatalf("queues differ in length after %d frames", n)
			}
			break
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("frame %d differs", n)
		}
		n++
	}
	if n != 10000 {
		t.Fatalf("compared %d frames", n)
	}
	if segs, _ := src.Segments(); len(segs) < 5 {
		t.Fatalf("only %d source segments: the test wants rolls", len(segs))
	}
}
