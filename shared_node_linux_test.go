package shmio

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/format"
	"github.com/shmio/shmio/internal/testproc"
)

// TestSharedNodeLive: three Go shared-writer processes append (commits of 1 to 16 frames, a
// pause after each) while the real Node shmio's iterator follows the log in another process:
// Node gets every writer's frames once, in that writer's order, none torn (CRC), and the same
// bytes in the same order as a Go reader of the finished log (count and checksum). Before they
// start, a writer is killed (SIGKILL) holding the lock with garbage past the committed end,
// which Node never sees. Needs SHMIO_NODE_MODULE.
func TestSharedNodeLive(t *testing.T) {
	node, module := nodeNeeded(t)
	const writers = 3
	n := shScale(20_000)
	path := xpCreate(t, testproc.ShmDir(t), "shared.log", int64(writers*n*85)+1<<20)
	r := testproc.StartCmd(t, "node follow", nodeCmd(node, module, "follow", path, strconv.Itoa(writers), strconv.Itoa(n)))
	if l := r.Line(time.Minute); l != "ready" {
		t.Fatalf("node follow said %q", l)
	}
	// A writer killed while it holds the append lock, garbage written past the committed end:
	// the writers below take the lock over and write over the garbage, which Node never sees.
	h := testproc.Start(t, "shholder", "PATH="+path)
	h.WaitLine(time.Minute, "held", func(s string) bool { return s == "held" })
	h.Kill9()
	var ws []*testproc.Child
	for id := range writers {
		// Pausing 0.1 ms after each commit keeps the writers going while Node reads; the line on
		// stdin, read after the last frame, lets each finish.
		w := testproc.Start(t, "shwriter", "PATH="+path, fmt.Sprint("ID=", id), fmt.Sprint("N=", n), "BATCH=16", "REPORT=1", "PAUSE_US=100")
		if _, err := w.Stdin().Write([]byte("\n")); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		var res shWriterResult
		w.Finish(5*time.Minute, &res)
		if res.Frames != int64(n) {
			t.Fatalf("writer reports %d frames, want %d", res.Frames, n)
		}
	}
	var res struct {
		Frames  int    `json:"frames"`
		Sum     uint32 `json:"sum"`
		Batches int    `json:"batches"`
		Empty   int    `json:"empty"`
	}
	r.Finish(5*time.Minute, &res)
	l := utReopen(t, path, false, false)
	tr := shReadAll(t, l)
	var sum uint32
	all := utReadAll(t, utIter(t, l))
	for _, p := range all {
		sum = nodeSum(sum, p)
	}
	for id := range uint32(writers) {
		if tr[id] != uint64(n) {
			t.Fatalf("writer %d: %d frames in the log, want %d", id, tr[id], n)
		}
	}
	if n := u32at(l.mem, format.OffShareSteals).Load(); n != 1 {
		t.Fatalf("%d lock take-overs, want 1 (from the killed holder)", n)
	}
	if res.Frames != len(all) || res.Sum != sum {
		t.Fatalf("real Node shmio read %d frames, checksum %d; the log holds %d, checksum %d", res.Frames, res.Sum, len(all), sum)
	}
	t.Logf("real Node shmio followed %d writers × %d frames in %d batches, finding nothing new %d times", writers, n, res.Batches, res.Empty)
}
