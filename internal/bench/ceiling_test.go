package bench

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
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

// TestCeilingRatiosAndGoals: VS CEILING from the ceiling row of the same size and readers; goals
// as ratios to it, and a socket goal the ceiling itself misses is called out of reach.
func TestCeilingRatiosAndGoals(t *testing.T) {
	rs := []Result{
		{Kind: "throughput", Transport: "shmio", Size: 32, Readers: 1, FramesPerSec: 90e6, Verified: true},
		{Kind: "throughput", Transport: "ceiling", Size: 32, Readers: 1, FramesPerSec: 100e6, Verified: true},
		{Kind: "throughput", Transport: "unix", Size: 32, Readers: 1, FramesPerSec: 30e6, Verified: true},
		{Kind: "throughput", Transport: "shmio", Size: 32, Readers: 3, FramesPerSec: 35e6, Verified: true},
		{Kind: "throughput", Transport: "ceiling", Size: 32, Readers: 3, FramesPerSec: 50e6, Verified: true},
		{Kind: "throughput", Transport: "unix", Size: 32, Readers: 3, FramesPerSec: 10e6, Verified: true},
		{Kind: "latency", Transport: "unix", Size: 32, Readers: 1, P50: 10_000, Verified: true},
	}
	fillRatios(rs)
	fillCeilingRatios(rs)
	for i, want := range []float64{0.9, 1, 0.3, 0.7, 1, 0.2, 0} {
		if d := rs[i].VsCeiling - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("row %d: vs ceiling %v, want %v", i, rs[i].VsCeiling, want)
		}
	}
	goals := strings.Join(Goals(rs, 3), "\n")
	for _, want := range []string{
		"32 B, 1 reader(s): 0.90x the bare-loop ceiling (goal >= 0.8x): at goal",
		"32 B, 3 reader(s): 0.70x the bare-loop ceiling (goal >= 0.8x): below goal",
		"32 B, 1 reader: 3.00x the socket's frames/s (goal >= 3x): met",
		// The ceiling itself does 5x the socket with 3 readers: the 6x goal is the machine's limit.
		"32 B, 3 readers: 3.50x the socket's frames/s (goal >= 6x): out of reach here: the bare-loop ceiling itself does 5.00x",
	} {
		if !strings.Contains(goals, want) {
			t.Errorf("goals lack %q:\n%s", want, goals)
		}
	}
	if strings.Contains(goals, "missed") {
		t.Errorf("goals say missed:\n%s", goals)
	}
}

// TestRoundsPairRatios: rows are measured in rounds with a rotating start, each row is its median
// run, and VS CEILING is the median of the ratios of runs measured in the same round, so a load
// that changes between rounds cancels out; a row whose run failed is measured no more.
func TestRoundsPairRatios(t *testing.T) {
	r := &runner{cfg: Config{Runs: 5}}
	load := []float64{1, 0.3, 2, 0.5, 1.5} // the machine's speed in each round
	rate := []float64{80e6, 100e6, 0}      // shmio, ceiling, a row failing in round 2
	var order []int
	calls := make([]int, 3) // each row runs once per round: its calls so far are the round
	runs := r.rounds(context.Background(), 3, func(i int) Result {
		order = append(order, i)
		k := calls[i]
		calls[i]++
		if i == 2 && k == 1 {
			return Result{Kind: "throughput", Transport: "bad", Error: "consumer died"}
		}
		return Result{Kind: "throughput", FramesPerSec: (rate[i] + 1e6) * load[k], Verified: true}
	})
	// Round k starts at row k mod 3; row 2 fails in round 1 and is skipped from then on.
	if want := []int{0, 1, 2, 1, 2, 0, 0, 1, 0, 1, 1, 0}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if len(runs[0]) != 5 || len(runs[1]) != 5 || len(runs[2]) != 2 || runs[2][1].Verified {
		t.Fatalf("runs per row: %d %d %d", len(runs[0]), len(runs[1]), len(runs[2]))
	}
	ratios := pairedRatios(runs[0], runs[1])
	if len(ratios) != 5 {
		t.Fatalf("ratios %v", ratios)
	}
	for _, x := range ratios {
		if x < 81.0/101-1e-9 || x > 81.0/101+1e-9 {
			t.Errorf("ratio %v, want %v in every round", x, 81.0/101)
		}
	}
	rows := medians(runs)
	if len(rows) != 3 || rows[0].FramesPerSec != 81e6 || rows[1].FramesPerSec != 101e6 || rows[0].Runs != 5 ||
		len(rows[0].RunsFramesPerSec) != 5 || rows[0].RunsFramesPerSec[1] != 81e6*0.3 {
		t.Errorf("median rows %+v", rows[:2])
	}
	if rows[2].Verified || rows[2].Runs != 2 || rows[2].Error != "consumer died" {
		t.Errorf("failed row %+v", rows[2])
	}
	if m := median([]float64{3, 1, 2, 5}); m != 3 {
		t.Errorf("median %v", m)
	}
}
