package shmio

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

func init() { xpRoles["crashwriter"] = xpCrashWriterChild }

// xpCrashWriterChild is a writer meant to be killed: it resumes the log at PATH from its commit
// tag (the number of frames committed), prints "ready <frames> <end>", then commits bursts of 1
// to 40 frames with CommitTagged(frames), printing "c <frames> <end>" after each commit. It
// pauses at random while frames are allocated but not committed, so that many kills land there.
// When the log is full it commits what it has, prints "full" and idles until killed.
func xpCrashWriterChild() error {
	rng := rand.New(rand.NewPCG(uint64(testproc.ParamInt("SEED", 1)), 4))
	l, w, err := xpOpenWriter()
	if err != nil {
		return err
	}
	var seq uint64
	it, err := l.NewIterator(IteratorOptions{})
	if err != nil {
		return err
	}
	if tag, ok, _ := l.CommitTag(); ok {
		// The tag was stored atomically with the end it describes: the last committed frame
		// must be frame tag-1.
		seq = tag
		if _, err := it.Seek(0, io.SeekEnd); err != nil {
			return err
		}
		f, err := it.Prev()
		if err != nil {
			return err
		}
		if err := xpCheck(f, seq-1); err != nil {
			return fmt.Errorf("commit tag %d does not match the last frame: %w", tag, err)
		}
	} else if it.End() != 0 {
		return fmt.Errorf("%d bytes committed but no commit tag", it.End())
	}
	fmt.Printf("ready %d %d\n", seq, l.Header().Size)
	for {
		k := uint64(1 + rng.IntN(40))
		full := false
		var i uint64
		for ; i < k; i++ {
			p, err := w.Allocate(xpSize(seq + i))
			if errors.Is(err, ErrFull) {
				full = true
				break
			}
			if err != nil {
				return err
			}
			// Fill in two steps with an occasional pause between: a kill then leaves a
			// half-written frame past the committed end.
			le.PutUint64(p, seq+i)
			if rng.IntN(32) == 0 {
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			}
			xpFill(p, seq+i)
		}
		seq += i
		if err := w.CommitTagged(seq); err != nil {
			return err
		}
		fmt.Printf("c %d %d\n", seq, l.Header().Size)
		if full {
			fmt.Println("full")
			time.Sleep(time.Hour)
		}
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
		}
	}
}

// TestCrashKill9 kills a writer child with SIGKILL at random points, 200 times (30 with
// -short), on one log that each new writer continues. After each kill this process checks that
// the log holds exactly whole committed frames 0..n-1 (sequence numbers and checksums), that
// every commit the child reported before dying is there, that the commit tag matches the
// committed end, and the next child must get the writer lock (freed by the kernel) and resume.
func TestCrashKill9(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 30
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	dir := testproc.ShmDir(t)
	const capacity = 2 << 20 // small enough that a run fills a few files: ErrFull mid-burst too

	var (
		path  string
		l     *Log
		it    *Iterator
		seq   uint64 // frames verified in the current file
		files int
	)
	openNext := func() {
		if l != nil {
			l.Close()
		}
		files++
		path = xpCreate(t, dir, "log"+strconv.Itoa(files), capacity)
		var err error
		if l, err = Open(Options{Path: path}); err != nil {
			t.Fatal(err)
		}
		if it, err = l.NewIterator(IteratorOptions{}); err != nil {
			t.Fatal(err)
		}
		seq = 0
	}
	openNext()
	defer func() { l.Close() }()

	var beforeReady, noCommit, inFlight, commitsSeen int
	start := time.Now()
	for kill := 0; kill < kills; kill++ {
		c := testproc.Start(t, "crashwriter", "PATH="+path, "SEED="+strconv.FormatInt(rng.Int64(), 10))
		ready, full := false, false
		lastSeq, lastEnd := int64(-1), int64(-1)
		handle := func(line string) {
			tag, nums, err := xpFields(line)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tag == "ready" && len(nums) == 2:
				ready = true
				if uint64(nums[0]) != seq {
					t.Fatalf("kill %d: new writer resumes at frame %d, the log holds %d", kill, nums[0], seq)
				}
			case tag == "c" && len(nums) == 2:
				lastSeq, lastEnd = nums[0], nums[1]
				commitsSeen++
			case tag == "full":
				full = true
			default:
				t.Fatalf("kill %d: child said %q", kill, line)
			}
		}
		if rng.IntN(4) == 0 {
			// Anywhere from process start on: before Open, inside it, holding the lock, writing.
			time.Sleep(time.Duration(rng.IntN(30_000)) * time.Microsecond)
		} else {
			for commits := rng.IntN(40); commits > 0 && !full; {
				line := c.Line(30 * time.Second)
				handle(line)
				if line[0] == 'c' {
					commits--
				}
			}
			time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		}
		for _, line := range c.Kill9() {
			handle(line)
		}
		if !ready {
			beforeReady++
		} else if lastSeq < 0 {
			noCommit++
		}

		// What the dead writer left: whole committed frames only, all it reported.
		end := l.Header().Size
		if end < lastEnd {
			t.Fatalf("kill %d: child reported committed end %d, log ends at %d", kill, lastEnd, end)
		}
		for {
			f, err := it.Next()
			if err != nil {
				t.Fatalf("kill %d: %v", kill, err)
			}
			if f == nil {
				break
			}
			if err := xpCheck(f, seq); err != nil {
				t.Fatalf("kill %d: %v", kill, err)
			}
			seq++
		}
		if got := it.Cursor() + l.Header().DataOffset; got != end {
			t.Fatalf("kill %d: frames end at %d, committed end %d", kill, got, end)
		}
		if int64(seq) < lastSeq {
			t.Fatalf("kill %d: child reported %d frames committed, log holds %d", kill, lastSeq, seq)
		}
		if tag, ok, _ := l.CommitTag(); seq > 0 && (!ok || tag != seq) {
			t.Fatalf("kill %d: commit tag %d (ok %v), want %d", kill, tag, ok, seq)
		}
		if end+2 <= int64(len(l.mem)) && le.Uint16(l.mem[end:]) != 0 {
			inFlight++ // a frame was allocated past the committed end (now or by an earlier writer)
		}
		if full {
			openNext()
		}
	}

	// A writer in this process continues the last file: the lock was freed by the kernel.
	wl, err := Open(Options{Path: path, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	w, err := wl.Writer()
	if err != nil {
		t.Fatalf("Writer after the last kill: %v", err)
	}
	p, err := w.Allocate(xpSize(seq))
	if err != nil {
		t.Fatal(err)
	}
	xpFill(p, seq)
	if err := w.CommitTagged(seq + 1); err != nil {
		t.Fatal(err)
	}
	f, err := it.Next()
	if err != nil || f == nil {
		t.Fatalf("frame appended after the kills: %v, %v", f, err)
	}
	if err := xpCheck(f, seq); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills in %v over %d files: %d before the child was ready, %d before its first commit, "+
		"%d with frames allocated past the committed end; %d commits reported, %d frames in the last file",
		kills, time.Since(start).Round(time.Millisecond), files, beforeReady, noCommit, inFlight, commitsSeen, seq+1)
	if beforeReady == kills {
		t.Error("every kill landed before the writer was ready")
	}
}

// TestCrashTornFile checks, across a process boundary, that a frame a killed writer left half
// written past the committed end stays invisible to a reader process, also when the file is
// copied elsewhere (a backup taken after the crash) and opened there.
func TestCrashTornFile(t *testing.T) {
	dir := testproc.ShmDir(t)
	path := xpCreate(t, dir, "log", 1<<20)
	c := testproc.Start(t, "crashwriter", "PATH="+path, "SEED=7")
	for n := 0; n < 20; {
		if line := c.Line(30 * time.Second); line[0] == 'c' {
			n++
		}
	}
	c.Kill9()
	l, err := Open(Options{Path: path, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Forge what a kill mid-fill leaves: a frame allocated past the end, lengths written,
	// payload half done. Readers must not see it.
	end := l.Header().Size
	le.PutUint16(l.mem[end:], 20+4)
	le.PutUint16(l.mem[end+22:], 20+4)
	cp := filepath.Join(dir, "copy")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, cp} {
		var res xpReaderResult
		n := uint64(0)
		if tag, ok, _ := l.CommitTag(); ok {
			n = tag
		}
		testproc.Start(t, "reader", "PATH="+p, "N="+strconv.FormatUint(n, 10), "MODE=next", "BACK=1", "TIMEOUT_MS=10000").Finish(time.Minute, &res)
		if res.Frames != n || res.Cursor != end-l.Header().DataOffset {
			t.Errorf("%s: reader saw %d frames to cursor %d, want %d to %d", p, res.Frames, res.Cursor, n, end-l.Header().DataOffset)
		}
	}
}
