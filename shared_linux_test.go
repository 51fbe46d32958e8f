package shmio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/format"
	"github.com/shmio/shmio/internal/testproc"
)

func init() {
	xpRoles["shwriter"] = shWriterChild
	xpRoles["shreader"] = shReaderChild
	xpRoles["shholder"] = shHolderChild
}

// shWriterResult is a writer child's report.
type shWriterResult struct {
	Frames   int64 `json:"frames"`
	Commits  int64 `json:"commits"`
	MaxBlock int64 `json:"max_block_ns"` // longest commit, first Allocate (the lock wait) to Commit
}

// shWriterChild writes frames 0..N-1 of writer ID through a SharedWriter, in commits of 1 to
// BATCH frames. With REPORT=1 it prints "c SEQ NS" after each commit (every frame before SEQ is
// committed; NS is how long that commit took, from its first Allocate), pauses PAUSE_US µs, and after its last frame
// waits on stdin.
func shWriterChild() error {
	l, err := Open(Options{Path: testproc.Param("PATH"), Writable: true})
	if err != nil {
		return err
	}
	defer l.Close()
	w, err := l.SharedWriter()
	if err != nil {
		return err
	}
	res, err := shWriteLoop(w, func(uint64) error { return w.Commit() })
	if err != nil {
		return err
	}
	report := testproc.Param("REPORT") == "1"
	if report {
		var b [1]byte
		os.Stdin.Read(b[:]) // wait to be killed
	}
	if err := w.Close(); err != nil {
		return err
	}
	testproc.Report(res)
	return nil
}

// shWriteLoop is the shared-writer children's loop: frames 0..N-1 of writer ID in commits of 1
// to BATCH frames, each published by commit (given the writer's count of frames after it); with
// REPORT=1 each commit is printed ("c COUNT NANOS"), PAUSE_US apart. A commit's time starts at its
// first Allocate, which waits for the lock.
func shWriteLoop(w FrameWriter, commit func(count uint64) error) (shWriterResult, error) {
	id := uint32(testproc.ParamInt("ID", 0))
	n := uint64(testproc.ParamInt("N", 1000))
	batch := testproc.ParamInt("BATCH", 16)
	report := testproc.Param("REPORT") == "1"
	pause := time.Duration(testproc.ParamInt("PAUSE_US", 0)) * time.Microsecond
	var res shWriterResult
	var line []byte
	for seq := uint64(0); seq < n; {
		k := min(1+xpMix(seq^uint64(id)<<20)%uint64(batch), n-seq)
		t0 := time.Now()
		for i := range k {
			p, err := w.Allocate(shSize(id, seq+i))
			if err != nil {
				return res, err
			}
			shFill(p, id, seq+i)
		}
		if err := commit(seq + k); err != nil {
			return res, err
		}
		d := time.Since(t0).Nanoseconds()
		res.MaxBlock = max(res.MaxBlock, d)
		res.Commits++
		seq += k
		if report {
			line = fmt.Appendf(line[:0], "c %d %d\n", seq, d)
			os.Stdout.Write(line)
			time.Sleep(pause)
		}
	}
	res.Frames = int64(n)
	return res, nil
}

// shFinishAll waits for writer children that each wrote n frames and reader children that each
// read every writer's n, and returns the longest commit a writer reported.
func shFinishAll(t *testing.T, ws, rs []*testproc.Child, n int) time.Duration {
	t.Helper()
	var maxBlock time.Duration
	for _, w := range ws {
		var res shWriterResult
		w.Finish(5*time.Minute, &res)
		if res.Frames != int64(n) {
			t.Fatalf("writer reports %d frames, want %d", res.Frames, n)
		}
		maxBlock = max(maxBlock, time.Duration(res.MaxBlock))
	}
	for _, r := range rs {
		var res map[string]int
		r.Finish(5*time.Minute, &res)
		if res["frames"] != len(ws)*n {
			t.Fatalf("reader got %d frames, want %d", res["frames"], len(ws)*n)
		}
	}
	return maxBlock
}

// shReaderChild follows the log until each of WRITERS writers delivered N frames, checking
// every frame (whole, once, in its writer's order), and reports how many it read.
func shReaderChild() error {
	l, err := Open(Options{Path: testproc.Param("PATH")})
	if err != nil {
		return err
	}
	defer l.Close()
	it, err := l.NewIterator(IteratorOptions{})
	if err != nil {
		return err
	}
	writers := int(testproc.ParamInt("WRITERS", 1))
	n := uint64(testproc.ParamInt("N", 1000))
	tr := shTracker{}
	done, total := 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var frames []Frame
	for done < writers {
		if frames, err = it.NextFrames(frames[:0], BatchOptions{}); err != nil {
			return err
		}
		if len(frames) == 0 {
			if err := it.Wait(ctx); err != nil {
				return fmt.Errorf("after %d frames: %w", total, err)
			}
			continue
		}
		for _, f := range frames {
			if err := tr.add(f.Data); err != nil {
				return fmt.Errorf("cursor %d: %w", f.Cursor, err)
			}
			total++
			if w := le.Uint32(f.Data); tr[w] == n {
				done++
			} else if tr[w] > n {
				return fmt.Errorf("writer %d: more than %d frames", w, n)
			}
		}
	}
	testproc.Report(map[string]int{"frames": total})
	return nil
}

// shHolderChild takes the lock word as a SharedWriter's Commit does, writes a half frame of
// garbage past the committed end, says "held" and waits to be killed, lock in hand.
func shHolderChild() error {
	l, err := Open(Options{Path: testproc.Param("PATH"), Writable: true})
	if err != nil {
		return err
	}
	w, err := l.SharedWriter()
	if err != nil {
		return err
	}
	sh := w.sh
	sh.turn.take(nil)
	if _, err := sh.lock.lock(nil, false); err != nil {
		return err
	}
	end := int(l.size.Load())
	copy(l.mem[end:], []byte{0xff, 0x00, 'g', 'a', 'r', 'b', 'a', 'g', 'e'})
	fmt.Println("held")
	var b [1]byte
	os.Stdin.Read(b[:])
	return nil
}

// shScale is the multi-process tests' size: full in a normal run, a tenth under -race or -short.
func shScale(n int) int {
	if shRace || testing.Short() {
		return n / 10
	}
	return n
}

// TestSharedXPWriters: 8 writer processes × 100,000 frames in commits of 1 to 64 frames, and 4
// reader processes following them: every reader gets every writer's frames once, in that
// writer's order, none torn, and the log verifies.
func TestSharedXPWriters(t *testing.T) {
	const writers, readers = 8, 4
	n := shScale(100_000)
	path := xpCreate(t, testproc.ShmDir(t), "shared.log", int64(writers*n*85)+1<<20)
	var rs, ws []*testproc.Child
	for range readers {
		rs = append(rs, testproc.Start(t, "shreader", "PATH="+path, fmt.Sprint("WRITERS=", writers), fmt.Sprint("N=", n)))
	}
	for id := range writers {
		ws = append(ws, testproc.Start(t, "shwriter", "PATH="+path, fmt.Sprint("ID=", id), fmt.Sprint("N=", n), "BATCH=64"))
	}
	maxBlock := shFinishAll(t, ws, rs, n)
	l := utReopen(t, path, false, false)
	tr := shReadAll(t, l)
	for id := range uint32(writers) {
		if tr[id] != uint64(n) {
			t.Fatalf("writer %d: %d frames in the log, want %d", id, tr[id], n)
		}
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writers × %d frames, 4 readers; longest Commit %v", writers, n, maxBlock)
}

// TestSharedXPKill9: four writer processes append (pausing 0.5 ms between commits, so that the
// log holds out) while the test kills one with
// SIGKILL at a time, at least 100 times, and starts a new one (a new writer id) in its place;
// every tenth victim is a process killed while it holds the lock with garbage written past the
// committed end. Survivors carry on; at the end every writer's frames in the log are whole,
// each writer's a prefix of its sequence holding at least every frame it reported committed,
// the garbage never appears, and the lock was taken over from each dead holder.
func TestSharedXPKill9(t *testing.T) {
	const live = 4
	kills := 100
	if shRace || testing.Short() {
		kills = 20
	}
	path := xpCreate(t, testproc.ShmDir(t), "kill.log", 512<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	type wr struct {
		c  *testproc.Child
		id uint32
	}
	committed := map[uint32]uint64{} // frames each writer reported committed
	var maxBlock time.Duration
	nextID := uint32(0)
	start := func() wr {
		id := nextID
		nextID++
		c := testproc.Start(t, "shwriter", "PATH="+path, fmt.Sprint("ID=", id), "N=1000000000", "BATCH=64", "REPORT=1", "PAUSE_US=500")
		return wr{c, id}
	}
	note := func(w wr, lines []string) { maxBlock = max(maxBlock, shNoteCommits(committed, w.id, lines)) }
	var ws []wr
	for range live {
		ws = append(ws, start())
	}
	l := utReopen(t, path, false, false)
	steals := func() uint32 { return u32at(l.mem, format.OffShareSteals).Load() }
	held := 0
	for k := range kills {
		if k%10 == 9 {
			// A holder killed with the lock: the survivors must take it over.
			before := steals()
			h := testproc.Start(t, "shholder", "PATH="+path)
			h.WaitLine(time.Minute, "held", func(s string) bool { return s == "held" })
			h.Kill9()
			held++
			testproc.WaitFor(t, time.Minute, "a survivor to take the dead holder's lock", func() bool { return steals() > before })
		}
		i := rng.IntN(live)
		w := ws[i]
		// Let it commit something first, so kills land at every stage of a writer's life.
		note(w, []string{w.c.WaitLine(time.Minute, "a commit", func(s string) bool { return strings.HasPrefix(s, "c ") })})
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		note(w, w.c.Kill9())
		ws[i] = start()
	}
	for _, w := range ws {
		note(w, w.c.Kill9())
	}
	tr := shReadAll(t, l)
	for id, n := range committed {
		if tr[id] < n {
			t.Fatalf("writer %d reported %d frames committed, the log holds %d", id, n, tr[id])
		}
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	if steals() < uint32(held) {
		t.Fatalf("%d lock take-overs for %d holders killed with the lock", steals(), held)
	}
	// A hang detector, not a speed target: the benchmark and the report measure the bound.
	if maxBlock > 30*time.Second {
		t.Fatalf("a Commit waited %v", maxBlock)
	}
	t.Logf("%d kills (%d holding the lock), %d writers, %d take-overs, longest Commit of a survivor %v", kills+live+held, held, nextID, steals(), maxBlock)
}

// shNoteCommits reads a shwriter/qshwriter child's "c SEQ NS" lines: it raises committed[id] to
// the frames the child reported committed and returns the longest commit among them.
func shNoteCommits(committed map[uint32]uint64, id uint32, lines []string) (longest time.Duration) {
	for _, s := range lines {
		f := strings.Fields(s)
		if len(f) != 3 || f[0] != "c" {
			continue
		}
		seq, _ := strconv.ParseUint(f[1], 10, 64)
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		committed[id] = max(committed[id], seq)
		longest = max(longest, time.Duration(ns))
	}
	return longest
}
