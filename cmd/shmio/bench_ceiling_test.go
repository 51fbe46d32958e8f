package main

import (
	"encoding/binary"
	"testing"
)

// ceilingFrames lays out n frames of size bytes as the ceiling producer writes them.
func ceilingFrames(n, size int) []byte {
	mem := make([]byte, n*(size+4))
	tmpl := benchTemplate(size)
	pos := 0
	for seq := range uint64(n) {
		binary.LittleEndian.PutUint16(mem[pos:], uint16(size+4))
		copy(mem[pos+2:], tmpl)
		benchFill(mem[pos+2:pos+2+size], seq)
		binary.LittleEndian.PutUint16(mem[pos+2+size:], uint16(size+4))
		pos += size + 4
	}
	return mem
}

func TestCeilingScanChecksEveryFrame(t *testing.T) {
	mem := ceilingFrames(1000, 32)
	chk := seqCheck{size: 32}
	dst := make([][]byte, 0, 256)
	pos, done := 0, false
	for pos < len(mem) && !done {
		var err error
		if dst, pos, err = ceilingScan(mem, pos, len(mem), dst[:0]); err != nil {
			t.Fatal(err)
		}
		done = chk.checkBatch(dst, 999)
	}
	if !done || chk.frames != 1000 || chk.gaps != 0 || chk.bad != 0 {
		t.Fatalf("done %v, %+v", done, chk)
	}
	// A damaged length is caught.
	binary.LittleEndian.PutUint16(mem[36*10:], 3)
	if _, _, err := ceilingScan(mem, 0, len(mem), make([][]byte, 0, 256)); err == nil {
		t.Fatal("damaged frame not reported")
	}
}

// BenchmarkCeilingScan is the ceiling consumer's work per 32-byte frame in one process: cut and
// check every sequence number.
func BenchmarkCeilingScan(b *testing.B) {
	const n = 1 << 16
	mem := ceilingFrames(n, 32)
	dst := make([][]byte, 0, 256)
	for b.Loop() {
		chk := seqCheck{size: 32}
		for pos := 0; pos < len(mem); {
			dst, pos, _ = ceilingScan(mem, pos, len(mem), dst[:0])
			chk.checkBatch(dst, n-1)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/frame")
}
