package shmio

import (
	"path/filepath"
	"testing"
)

// BenchmarkQueueNextBatch reads 32-byte frames in batches of 64 from one large queue segment,
// starting over at its end: the per-call cost of a queue iterator (its close guard and fault
// guard, issue 11 point 22) on top of the log iterator's.
func BenchmarkQueueNextBatch(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	w, err := q.Writer()
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 32)
	for w.Segment() == 1 {
		if err := w.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("batch=64", func(b *testing.B) {
		dst := make([][]byte, 0, 64)
		b.SetBytes(32)
		b.ReportAllocs()
		for read := 0; read < b.N; {
			dst, err = it.NextBatch(dst[:0], BatchOptions{MaxFrames: 64})
			if err != nil {
				b.Fatal(err)
			}
			if len(dst) == 0 || it.Segment() != 1 {
				if _, err := it.Seek(QueueCursor(1, 0), 0); err != nil {
					b.Fatal(err)
				}
				continue
			}
			read += len(dst)
		}
	})
	b.Run("next", func(b *testing.B) {
		b.SetBytes(32)
		b.ReportAllocs()
		for read := 0; read < b.N; {
			f, err := it.Next()
			if err != nil {
				b.Fatal(err)
			}
			if f == nil || it.Segment() != 1 {
				if _, err := it.Seek(QueueCursor(1, 0), 0); err != nil {
					b.Fatal(err)
				}
				continue
			}
			read++
		}
	})
}
