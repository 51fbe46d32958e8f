package shmio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

// Cross-process tests of queue shared writers (issue 15 on queues), with shared_linux_test.go's
// frames (shFill/shCheck: writer, sequence, CRC) and roll stages (queueTestHook).

func init() {
	xpRoles["qshwriter"] = qshWriterChild
	xpRoles["qshreader"] = qshReaderChild
}

// qshWriterChild writes frames 0..N-1 of writer ID into the queue in DIR through a
// QueueSharedWriter, in commits of 1 to BATCH frames, as shWriterChild does for a log (REPORT,
// PAUSE_US) and RETAIN as its retention's MaxSegments; each commit is tagged with the writer's count of frames. With STAGE set it kills itself the AFTER-th time a roll or commit reaches that stage.
func qshWriterChild() error {
	if stage := testproc.Param("STAGE"); stage != "" {
		after := testproc.ParamInt("AFTER", 1)
		var count atomic.Int64
		queueTestHook = func(s string) {
			if s == stage && count.Add(1) == after {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	q, err := OpenQueue(QueueOptions{Dir: testproc.Param("DIR"), Writable: true, SegmentSize: testproc.ParamInt("SEGSIZE", 64<<10),
		Retention: RetentionPolicy{MaxSegments: int(testproc.ParamInt("RETAIN", 0))}})
	if err != nil {
		return err
	}
	defer q.Close()
	w, err := q.SharedWriter()
	if err != nil {
		return err
	}
	// Tags cross rolls too (commit-between).
	res, err := shWriteLoop(w, w.CommitTagged)
	if err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	testproc.Report(res)
	return nil
}

// qshReaderChild follows the queue in DIR (through a named reader when NAME is set) until each
// of WRITERS writers delivered N frames, checking every frame, and reports how many it read.
func qshReaderChild() error {
	q, err := OpenQueue(QueueOptions{Dir: testproc.Param("DIR")})
	if err != nil {
		return err
	}
	defer q.Close()
	var it *QueueIterator
	if name := testproc.Param("NAME"); name != "" {
		it, err = q.NamedIterator(name, IteratorOptions{})
	} else {
		it, err = q.NewIterator(IteratorOptions{})
	}
	if err != nil {
		return err
	}
	writers := int(testproc.ParamInt("WRITERS", 1))
	n := uint64(testproc.ParamInt("N", 1000))
	tr := shTracker{}
	done, total := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for done < writers {
		f, err := it.Next()
		if err != nil {
			return err
		}
		if f == nil {
			if err := it.Wait(ctx); err != nil {
				return fmt.Errorf("after %d frames: %w", total, err)
			}
			continue
		}
		if err := tr.add(f); err != nil {
			return fmt.Errorf("cursor %#x: %w", it.Cursor(), err)
		}
		total++
		if w := le.Uint32(f); tr[w] == n {
			done++
		} else if tr[w] > n {
			return fmt.Errorf("writer %d: more than %d frames", w, n)
		}
	}
	testproc.Report(map[string]int{"frames": total, "segment": int(it.Segment())})
	return nil
}

// TestQueueSharedXPWriters: 8 writer processes × 100,000 frames, in commits of 1 to 64 frames,
// into a queue of 64 KiB segments (hundreds of rolls), and 4 reader processes following them (2
// of them named readers): every reader gets every writer's frames once, in that writer's order,
// none torn, and the queue verifies.
func TestQueueSharedXPWriters(t *testing.T) {
	const writers, readers = 8, 4
	n := shScale(100_000)
	dir := filepath.Join(testproc.ShmDir(t), "q")
	q := qsOpen(t, dir, 64<<10)
	var rs, ws []*testproc.Child
	for i := range readers {
		params := []string{"DIR=" + dir, fmt.Sprint("WRITERS=", writers), fmt.Sprint("N=", n)}
		if i < 2 {
			params = append(params, fmt.Sprint("NAME=r", i))
		}
		rs = append(rs, testproc.Start(t, "qshreader", params...))
	}
	for id := range writers {
		ws = append(ws, testproc.Start(t, "qshwriter", "DIR="+dir, fmt.Sprint("ID=", id), fmt.Sprint("N=", n), "BATCH=64"))
	}
	maxBlock := shFinishAll(t, ws, rs, n)
	tr := qsReadAll(t, q)
	for id := range uint32(writers) {
		if tr[id] != uint64(n) {
			t.Fatalf("writer %d: %d frames in the queue, want %d", id, tr[id], n)
		}
	}
	res, err := q.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments < 20 {
		t.Fatalf("%d segments: want many rolls", res.Segments)
	}
	t.Logf("%d writers × %d frames, 4 readers, %d segments; longest Commit %v", writers, n, res.Segments, maxBlock)
}

// TestQueueSharedXPRetention: 4 writer processes append to a queue of 16 KiB segments keeping 4
// segments, while 2 named readers (which the soft limit waits for) read everything: retention
// removes and recycles segments behind them (into each writer process's spare) and never one a
// reader or a writer still maps, so the readers get every frame whole; afterwards the queue
// holds no more than the policy keeps, and verifies.
func TestQueueSharedXPRetention(t *testing.T) {
	const writers, readers, keep = 4, 2, 4
	n := shScale(50_000)
	dir := filepath.Join(testproc.ShmDir(t), "q")
	q := qsOpen(t, dir, 16<<10)
	var rs, ws []*testproc.Child
	for i := range readers {
		rs = append(rs, testproc.Start(t, "qshreader", "DIR="+dir, fmt.Sprint("WRITERS=", writers), fmt.Sprint("N=", n), fmt.Sprint("NAME=r", i)))
	}
	// The names must exist before retention runs, or it would not wait for them.
	testproc.WaitFor(t, time.Minute, "the named readers", func() bool { rs, err := q.Readers(); return err == nil && len(rs) == readers })
	for id := range writers {
		ws = append(ws, testproc.Start(t, "qshwriter", "DIR="+dir, "SEGSIZE=16384", fmt.Sprint("RETAIN=", keep), fmt.Sprint("ID=", id), fmt.Sprint("N=", n), "BATCH=64"))
	}
	for _, w := range ws {
		var res shWriterResult
		w.Finish(5*time.Minute, &res)
	}
	last := 0
	for _, r := range rs {
		var res map[string]int
		r.Finish(5*time.Minute, &res)
		if res["frames"] != writers*n {
			t.Fatalf("named reader got %d frames, want %d", res["frames"], writers*n)
		}
		last = res["segment"]
	}
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true}) // the recorded policy
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) > keep+1 || last < 50 {
		t.Fatalf("%d segments left of %d, policy keeps %d", len(segs), last, keep)
	}
	if _, err := q.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writers × %d frames through %d segments; %d left", writers, n, last, len(segs))
}

// qshRollStages are the stages of a shared writer's roll (inside Allocate, the commit's frames
// not yet published) and of its seals.
var qshRollStages = []string{"roll-got-next", "roll-stamped", "roll-locked", "roll-carried", "seal-before", "seal-after", "commit-between"}

// TestQueueSharedXPKill9: four writer processes append to a queue of 16 KiB segments while the
// test kills one with SIGKILL at a time, at least 100 times, and starts a new one (a new writer
// id) in its place; every other victim kills itself at a stage of a roll (the next holder must
// finish or redo the roll). Survivors carry on. At the end every writer's frames are whole and
// in order, each writer's a prefix of its sequence holding every frame it reported committed,
// and no more for writers killed inside a roll's Allocate (frames not committed are never seen);
// the queue verifies; an exclusive writer then recovers the queue and appends, and shared
// writers append after it again.
func TestQueueSharedXPKill9(t *testing.T) {
	const live = 4
	kills := 100
	if shRace || testing.Short() {
		kills = 20
	}
	dir := filepath.Join(testproc.ShmDir(t), "q")
	q := qsOpen(t, dir, 16<<10)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))
	type wr struct {
		c     *testproc.Child
		id    uint32
		stage string
	}
	committed := map[uint32]uint64{}
	exact := map[uint32]bool{} // killed inside a roll's Allocate: visible == committed
	var maxBlock time.Duration
	nextID := uint32(0)
	start := func(stage string) wr {
		id := nextID
		nextID++
		params := []string{"DIR=" + dir, "SEGSIZE=16384", fmt.Sprint("ID=", id), "N=1000000000", "BATCH=64", "REPORT=1", "PAUSE_US=300"}
		if stage != "" {
			params = append(params, "STAGE="+stage, fmt.Sprint("AFTER=", 1+rng.IntN(3)))
		}
		return wr{testproc.Start(t, "qshwriter", params...), id, stage}
	}
	note := func(w wr, lines []string) { maxBlock = max(maxBlock, shNoteCommits(committed, w.id, lines)) }
	var ws []wr
	for range live {
		ws = append(ws, start(""))
	}
	perStage := map[string]int{}
	for k := range kills {
		i := rng.IntN(live)
		w := ws[i]
		if w.stage != "" {
			// It kills itself at its stage.
			note(w, w.c.AwaitKilled(time.Minute))
			perStage[w.stage]++
			if strings.HasPrefix(w.stage, "roll-") {
				exact[w.id] = true
			}
		} else {
			note(w, []string{w.c.WaitLine(time.Minute, "a commit", func(s string) bool { return strings.HasPrefix(s, "c ") })})
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			note(w, w.c.Kill9())
			perStage["random"]++
		}
		stage := ""
		if k%2 == 0 {
			stage = qshRollStages[(k/2)%len(qshRollStages)]
		}
		ws[i] = start(stage)
	}
	for _, w := range ws {
		note(w, w.c.Kill9())
	}
	tr := qsReadAll(t, q)
	for id, n := range committed {
		if tr[id] < n || exact[id] && tr[id] != n {
			t.Fatalf("writer %d reported %d frames committed, the queue holds %d (killed in a roll: %v)", id, n, tr[id], exact[id])
		}
	}
	res, err := q.Verify()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills %v, %d writers, %d segments; longest Commit of a writer %v", kills+live, perStage, nextID, res.Segments, maxBlock)

	// The exclusive writer recovers after them, then shared writers after it.
	ew, err := q.Writer()
	if err != nil {
		t.Fatalf("Writer after shared writers died: %v", err)
	}
	shAppend(t, ew, nextID, 0, 500)
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	sw := qsWriter(t, q)
	shAppend(t, sw, nextID, 500, 500)
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if tr := qsReadAll(t, q); tr[nextID] != 1000 {
		t.Fatalf("writer %d: %d frames after the restarts, want 1000", nextID, tr[nextID])
	}
	if _, err := q.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestQueueSharedAfterExclusiveCrash: an exclusive QueueWriter killed at each stage of its roll
// (segments prepared ahead, a roll half done, a batch straddling segments) leaves a queue that
// shared writers resume: the exclusive writer's committed frames stay, the shared writers' frames
// follow them, and the queue verifies.
func TestQueueSharedAfterExclusiveCrash(t *testing.T) {
	for _, stage := range []string{"roll-got-next", "seal-before", "seal-after", "commit-between"} {
		t.Run(stage, func(t *testing.T) {
			dir := filepath.Join(testproc.ShmDir(t), "q")
			c := testproc.Start(t, "queue-tagger", "DIR="+dir, "STAGE="+stage, "AFTER=3")
			c.AwaitKilled(time.Minute)
			q := qsOpen(t, dir, 4096)
			it, err := q.NewIterator(IteratorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			xp := uint64(0)
			for {
				f, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				if f == nil {
					break
				}
				if err := xpCheck(f, xp); err != nil {
					t.Fatal(err)
				}
				xp++
			}
			a, b := qsWriter(t, q), qsWriter(t, q)
			for i := range uint64(20) {
				shAppend(t, a, 1, i*30, 30)
				shAppend(t, b, 2, i*30, 30)
			}
			tr := shTrackAll(t, it)
			it.Close()
			if xp == 0 || tr[1] != 600 || tr[2] != 600 {
				t.Fatalf("%d frames of the exclusive writer, then %v of the shared ones", xp, tr)
			}
			if _, err := q.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestQueueSharedFullFilesystem: when a roll cannot make the next segment because the
// filesystem is full, Allocate's error wraps ErrFull and ENOSPC, and the committed frames stay
// readable.
func TestQueueSharedFullFilesystem(t *testing.T) {
	dir := filepath.Join(hqTmpfs(t, 256<<10), "q")
	q := qsOpen(t, dir, 32<<10)
	w := qsWriter(t, q)
	payload := bytes.Repeat([]byte{'x'}, 1000)
	n := 0
	var err error
	for ; n < 10_000; n++ {
		if err = w.Append(payload); err != nil {
			break
		}
		if err = w.Commit(); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after %d frames: %v; want ErrFull wrapping ENOSPC", n, err)
	}
	// The lock was released: another writer is answered, not kept waiting (ErrFull, or room
	// that the background's spare held for a moment while the first writer tried).
	if err := qsWriter(t, q).Append(payload); err != nil && !errors.Is(err, ErrFull) {
		t.Fatalf("second writer: %v, want ErrFull or nil", err)
	}
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for f, err := range it.All() {
		if err != nil || !bytes.Equal(f, payload) {
			t.Fatalf("frame %d: %d bytes, %v", read, len(f), err)
		}
		read++
	}
	if read != n {
		t.Fatalf("read %d frames, committed %d", read, n)
	}
}

// TestQueueSharedRecycles: with a retention policy, shared writers reuse the files of removed
// segments (the files' inodes repeat), and never one a reader still maps: an iterator left in an
// old segment reads its frames whole after the writers moved far past it.
func TestQueueSharedRecycles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 4096, Retention: RetentionPolicy{MaxSegments: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w := qsWriter(t, q)
	shAppend(t, w, 1, 0, 100) // a few segments
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if _, err := it.Next(); err != nil { // maps and locks the first segment still there
		t.Fatal(err)
	}
	held := it.Segment()
	inodes := map[uint64]bool{}
	segs := map[int64]bool{}
	seq := uint64(100)
	for range 300 {
		shAppend(t, w, 1, seq, 20)
		seq += 20
		w.qs.bg.Wait() // the background pass after each roll: deterministic, not needed otherwise
		nums, _ := q.listSegments()
		for _, n := range nums {
			var st syscall.Stat_t
			if syscall.Stat(q.segPath(n), &st) == nil && !segs[n] {
				segs[n], inodes[st.Ino] = true, true
			}
		}
	}
	if len(segs) < 50 || len(inodes) > len(segs)/4 {
		t.Fatalf("%d segments in %d files: want files reused", len(segs), len(inodes))
	}
	// The reader's segment was removed, not recycled: its frames are still there, whole.
	n := 0
	for {
		f, err := it.Next()
		if err != nil || f == nil || it.Segment() != held {
			break
		}
		if _, seq, err := shCheck(f); err != nil || seq != uint64(n+1) {
			t.Fatalf("frame %d of segment %d, held by the reader: seq %d, %v", n+1, held, seq, err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no frame read in segment %d", held)
	}
	t.Logf("%d segments in %d files; %d frames read in segment %d after its removal", len(segs), len(inodes), n, held)
}

// TestQueueSharedReusesMappings: two Queues of one directory (as two processes: each has its own
// mappings) write in turn, with retention recycling the files. The second one's writer, which
// only ever moves on to segments the first made or it made itself, must come back to the files
// it mapped before under their new numbers with the same mapping (keep and takePooled), not map
// each segment anew; and the queue verifies.
func TestQueueSharedReusesMappings(t *testing.T) {
	if !segRecycling {
		t.Skip("no OFD locks: segments are removed, not recycled")
	}
	dir := filepath.Join(t.TempDir(), "q")
	open := func() *Queue {
		q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 8192, Retention: RetentionPolicy{MaxSegments: 3}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	q1, q2 := open(), open()
	w1, w2 := qsWriter(t, q1), qsWriter(t, q2)
	logs, segs := map[*Log]bool{}, map[int64]bool{}
	var seq1, seq2 uint64
	for range 300 {
		shAppend(t, w1, 1, seq1, 20)
		seq1 += 20
		w1.qs.bg.Wait() // deterministic background passes, not needed otherwise
		shAppend(t, w2, 2, seq2, 20)
		seq2 += 20
		w2.qs.bg.Wait()
		segs[w2.Segment()], logs[w2.cur.e.log] = true, true
	}
	if len(segs) < 50 || len(logs) > len(segs)/4 {
		t.Fatalf("the second writer used %d segments through %d mappings: want mappings reused", len(segs), len(logs))
	}
	if _, err := q1.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d segments through %d mappings", len(segs), len(logs))
}

// TestQueueSharedWarmsPool: a process joining a queue with a retention policy maps its oldest
// segments (those retention recycles next) in the background, so that its writers find them
// mapped when they come back as new segments.
func TestQueueSharedWarmsPool(t *testing.T) {
	if !segRecycling {
		t.Skip("no OFD locks: segments are removed, not recycled")
	}
	dir := filepath.Join(t.TempDir(), "q")
	opts := QueueOptions{Dir: dir, Writable: true, SegmentSize: 8192, Retention: RetentionPolicy{MaxSegments: 4}}
	q1, err := OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q1.Close()
	w1 := qsWriter(t, q1)
	qsAppend800(t, w1, 1)
	w1.qs.bg.Wait()
	nums, err := q1.listSegments()
	if err != nil || len(nums) < 3 {
		t.Fatalf("segments %v, %v: want at least 3", nums, err)
	}
	q2, err := OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	w2 := qsWriter(t, q2)
	w2.qs.bg.Wait()
	w2.qs.mu.Lock()
	pooled := len(w2.qs.pool)
	w2.qs.mu.Unlock()
	if pooled < len(nums)-1 { // all but the head, which the writer maps itself
		t.Fatalf("%d segments mapped ahead of %d (%v)", pooled, len(nums)-1, nums)
	}
	qsAppend800(t, w2, 2)
	if _, err := q2.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestQueueSharedPoolLetsGoRemoved: a process whose writers are idle lets go, within about
// pruneTick, of its mappings of segment files that were removed since (their memory goes with
// the last mapping).
func TestQueueSharedPoolLetsGoRemoved(t *testing.T) {
	if !segRecycling {
		t.Skip("no OFD locks: no pool")
	}
	dir := filepath.Join(t.TempDir(), "q")
	q, err := OpenQueue(QueueOptions{Dir: dir, Writable: true, SegmentSize: 8192, Retention: RetentionPolicy{MaxSegments: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w := qsWriter(t, q)
	qsAppend800(t, w, 1)
	w.qs.bg.Wait()
	pooled := func() (n, gone int) {
		w.qs.mu.Lock()
		defer w.qs.mu.Unlock()
		for _, p := range w.qs.pool {
			n++
			if _, st, ok := fileKeyOf(p.l.file); ok && st.Nlink == 0 {
				gone++
			}
		}
		return n, gone
	}
	if n, _ := pooled(); n < 3 {
		t.Fatalf("%d mappings pooled: want the sealed segments'", n)
	}
	nums, err := q.listSegments()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nums[:len(nums)-1] { // as retention in another process would
		if err := os.Remove(q.segPath(n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, gone := pooled(); gone == 0 {
		t.Fatal("no pooled file removed: the test removed the wrong files")
	}
	testproc.WaitFor(t, 10*pruneTick, "removed files let go", func() bool { _, gone := pooled(); return gone == 0 })
}

// qsAppend800 appends frames 0..799 of writer id in commits of 20 (several rolls of a queue of
// 8 KiB segments).
func qsAppend800(t testing.TB, w *QueueSharedWriter, id uint32) {
	t.Helper()
	for i := range 40 {
		shAppend(t, w, id, uint64(i*20), 20)
	}
}
