package shmio

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/futex"
	"github.com/shmio/shmio/internal/testproc"
	"golang.org/x/sys/unix"
)

// Helpers of the unit tests carry a "ut" prefix so that they cannot collide with the helpers of
// the multi-process tests in the same package.

// utPayload is the golden file's payload rule: byte j of frame i is (i*31 + j*7) & 0xff.
func utPayload(i, n int) []byte {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i*31 + j*7)
	}
	return p
}

// utOpen opens (creating) a writable log in a fresh temporary directory and closes it at cleanup.
func utOpen(t testing.TB, opts Options) *Log {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "log")
	}
	if opts.Capacity == 0 {
		opts.Capacity = 64 << 10
	}
	opts.Writable = true
	l, err := Open(opts)
	if err != nil {
		t.Fatalf("Open(%+v): %v", opts, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// utReopen opens another handle on the same file.
func utReopen(t testing.TB, path string, writable, debug bool) *Log {
	t.Helper()
	l, err := Open(Options{Path: path, Writable: writable, DebugChecks: debug})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func utWriter(t testing.TB, l *Log) *Writer {
	t.Helper()
	w, err := l.Writer()
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	return w
}

func utIter(t testing.TB, l *Log) *Iterator {
	t.Helper()
	it, err := l.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatalf("NewIterator: %v", err)
	}
	return it
}

// utAppend appends frames with the payload rule, sizes given, starting at index first, and commits.
func utAppend(t testing.TB, w *Writer, first int, sizes ...int) {
	t.Helper()
	for k, n := range sizes {
		if err := w.Append(utPayload(first+k, n)); err != nil {
			t.Fatalf("Append frame %d (%d bytes): %v", first+k, n, err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// utReadAll reads every committed frame from the cursor with Next, copying them.
func utReadAll(t testing.TB, it *Iterator) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		f, err := it.Next()
		if err != nil {
			t.Fatalf("Next after %d frames: %v", len(out), err)
		}
		if f == nil {
			return out
		}
		out = append(out, bytes.Clone(f))
	}
}

// utIs fails unless err wraps want and is an *Error.
func utIs(t testing.TB, err, want error, what string) *Error {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v (%T) is not a *shmio.Error", what, err, err)
	}
	return e
}

func utDirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestOpenCreatesWithHeader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	l := utOpen(t, Options{Path: path, Capacity: 10000})
	h := l.Header()
	if h.HeaderSize != 192 || h.DataOffset != 192 || h.Size != 192 || h.Capacity != 10000 {
		t.Fatalf("header %+v: want HeaderSize=DataOffset=Size=192, Capacity=10000", h)
	}
	if h.NodeFormat || h.WideFrames || h.Sealed || h.Version != 1 || h.ID == 0 || h.Waiters != 0 || h.WriterPID != 0 {
		t.Fatalf("header %+v: want a fresh version-1 shmio-go header with an identity", h)
	}
	if l.Path() != path || l.MaxPayload() != 65531 {
		t.Fatalf("Path=%q MaxPayload=%d", l.Path(), l.MaxPayload())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 10000 {
		t.Fatalf("file size %d, want 10000", fi.Size())
	}
	if names := utDirNames(t, dir); len(names) != 1 || names[0] != "log" {
		t.Fatalf("directory holds %q, want only the log (no temporary files)", names)
	}
}

func TestOpenMode(t *testing.T) {
	old := syscall.Umask(0o077) // a restrictive umask must not change the requested mode
	defer syscall.Umask(old)
	for _, tc := range []struct {
		mode, want os.FileMode
	}{{0, 0o600}, {0o640, 0o640}, {0o666, 0o666}, {0o604, 0o604}} {
		path := filepath.Join(t.TempDir(), "log")
		l := utOpen(t, Options{Path: path, Mode: tc.mode})
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tc.want {
			t.Errorf("Mode %v: file mode %v, want %v", tc.mode, got, tc.want)
		}
		l.Close()
	}
}

func TestOpenExistingKeepsSizeAndFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 8192})
	w := utWriter(t, l)
	utAppend(t, w, 0, 10, 20)
	id := l.Header().ID
	l.Close()

	// Capacity and WideFrames apply to new files only.
	l2, err := Open(Options{Path: path, Capacity: 1 << 20, Writable: true, WideFrames: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	h := l2.Header()
	if h.Capacity != 8192 || h.WideFrames || h.ID != id || h.Size != 192+14+24 {
		t.Fatalf("reopened header %+v: want capacity 8192, narrow frames, id %d, size %d", h, id, 192+14+24)
	}
	got := utReadAll(t, utIter(t, l2))
	if len(got) != 2 || !bytes.Equal(got[0], utPayload(0, 10)) || !bytes.Equal(got[1], utPayload(1, 20)) {
		t.Fatalf("reopened frames %v", got)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(Options{Path: filepath.Join(dir, "missing")})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file, read-only: %v, want fs.ErrNotExist", err)
	}
	if _, err := Open(Options{}); err == nil {
		t.Fatal("empty path: no error")
	}
	// Too small for the header and one frame: refused, nothing left behind.
	if _, err := Open(Options{Path: filepath.Join(dir, "small"), Capacity: 196, Writable: true}); err == nil {
		t.Fatal("capacity 196: no error")
	}
	if _, err := Open(Options{Path: filepath.Join(dir, "neg"), Capacity: -1, Writable: true}); err == nil {
		t.Fatal("capacity -1: no error")
	}
	if names := utDirNames(t, dir); len(names) != 0 {
		t.Fatalf("failed creates left %q", names)
	}
	// The smallest capacity holds exactly one 1-byte frame.
	l := utOpen(t, Options{Path: filepath.Join(dir, "tiny"), Capacity: 197})
	w := utWriter(t, l)
	utAppend(t, w, 0, 1)
	utIs(t, w.Append([]byte{1}), ErrFull, "second frame in a 197-byte log")
}

func TestOpenConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	const n = 8
	logs := make([]*Log, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			logs[i], errs[i] = Open(Options{Path: path, Capacity: 1 << 16, Writable: true})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer logs[i].Close()
	}
	id := logs[0].Header().ID
	for i, l := range logs {
		if got := l.Header().ID; got != id {
			t.Fatalf("log %d has identity %d, log 0 has %d: not the same file", i, got, id)
		}
	}
	if names := utDirNames(t, dir); len(names) != 1 || names[0] != "log" {
		t.Fatalf("directory holds %q, want only the log", names)
	}
	// One file: what one handle writes, another reads.
	w := utWriter(t, logs[3])
	utAppend(t, w, 0, 42)
	got := utReadAll(t, utIter(t, logs[5]))
	if len(got) != 1 || !bytes.Equal(got[0], utPayload(0, 42)) {
		t.Fatalf("read through another handle: %v", got)
	}
}

func TestOpenNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	l := utOpen(t, Options{Path: real})
	utAppend(t, utWriter(t, l), 0, 5)
	l.Close()

	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{sub, fifo, link, dangling} {
		for _, writable := range []bool{false, true} {
			// A FIFO must not block Open: each attempt runs with a deadline.
			done := make(chan error, 1)
			go func() {
				l, err := Open(Options{Path: path, Writable: writable, Capacity: 4096})
				if err == nil {
					l.Close()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("Open(%s, writable=%v) hangs", path, writable)
			}
			if err == nil {
				t.Fatalf("Open(%s, writable=%v) succeeded", path, writable)
			}
			if path != sub && !errors.Is(err, ErrBadHeader) {
				t.Errorf("Open(%s, writable=%v): %v, want ErrBadHeader", path, writable, err)
			}
			if path == fifo && !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Open(fifo): %q does not say it is not a regular file", err)
			}
			if path == sub && !errors.Is(err, ErrBadHeader) && !errors.Is(err, syscall.EISDIR) {
				t.Errorf("Open(directory, writable=%v): %v, want ErrBadHeader or EISDIR", writable, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open through a dangling symlink created its target: %v", err)
	}
}

// utBadFile writes data to a file and expects Open (read-only and writable) to refuse it with
// ErrBadHeader.
func utBadFile(t *testing.T, name string, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, writable := range []bool{false, true} {
		l, err := Open(Options{Path: path, Writable: writable, Capacity: 1 << 16})
		if err == nil {
			l.Close()
			t.Errorf("%s (writable=%v): Open succeeded", name, writable)
			continue
		}
		if !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s (writable=%v): %v, want ErrBadHeader", name, writable, err)
		}
		if ErrorCode(err) != "ERR_SHM_BAD_HEADER" {
			t.Errorf("%s: ErrorCode %q", name, ErrorCode(err))
		}
	}
	// The refused file is left as it was.
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Errorf("%s: file changed by a refused Open (err %v)", name, err)
	}
}

// utGoHeader returns a valid shmio-go file of n bytes holding no frames.
func utGoHeader(n int) []byte {
	b := make([]byte, n)
	copy(b, newHeader(false, 7, 1))
	return b
}

func TestOpenBadFiles(t *testing.T) {
	u64 := func(b []byte, off int, v uint64) []byte { le.PutUint64(b[off:], v); return b }
	u32 := func(b []byte, off int, v uint32) []byte { le.PutUint32(b[off:], v); return b }
	node := func(hs, do, size uint64, n int) []byte {
		b := make([]byte, n)
		return u64(u64(u64(b, 0, hs), 8, do), 16, size)
	}
	utBadFile(t, "empty", nil)
	utBadFile(t, "zero-filled", make([]byte, 4096))
	utBadFile(t, "23 bytes", node(24, 24, 24, 24)[:23])
	utBadFile(t, "header size beyond file", node(4096, 4096, 4096, 100))
	utBadFile(t, "header size below 24", node(16, 24, 24, 100))
	utBadFile(t, "data offset beyond file", node(24, 200, 200, 100))
	utBadFile(t, "data offset inside header", node(64, 32, 64, 100))
	utBadFile(t, "committed end beyond file", node(24, 24, 101, 100))
	utBadFile(t, "committed end before data", node(24, 24, 23, 100))
	utBadFile(t, "committed end huge", node(24, 24, 1<<63+24, 100))
	utBadFile(t, "unknown version", u32(utGoHeader(4096), offVersion, 2))
	utBadFile(t, "version 0", u32(utGoHeader(4096), offVersion, 0))
	utBadFile(t, "unknown flags", u32(utGoHeader(4096), offFlags, 1<<7))
	utBadFile(t, "go header truncated", utGoHeader(4096)[:100])
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		g := make([]byte, 24+rng.IntN(8000))
		for j := range g {
			g[j] = byte(rng.Uint32())
		}
		// Garbage headers are refused unless, by chance, they describe a valid layout.
		if hs, do, sz := le.Uint64(g), le.Uint64(g[8:]), le.Uint64(g[16:]); hs < 24 || hs > uint64(len(g)) || do < hs || sz < do || sz > uint64(len(g)) {
			utBadFile(t, "garbage "+string(rune('a'+i)), g)
		}
	}

	// A minimal Node header with no frames is fine, and so is a Go header with the sealed flag.
	for name, data := range map[string][]byte{
		"node empty":  node(24, 24, 24, 24),
		"node 4k":     node(24, 24, 24, 4096),
		"node bigger": node(64, 128, 128, 4096),
		"go sealed":   u32(utGoHeader(4096), offFlags, flagSealed),
	} {
		path := filepath.Join(t.TempDir(), "ok")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(Options{Path: path})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		it := utIter(t, l)
		if f, err := it.Next(); f != nil || err != nil {
			t.Errorf("%s: Next = %v, %v on an empty log", name, f, err)
		}
		if name == "go sealed" && !l.Header().Sealed {
			t.Errorf("sealed flag not reported")
		}
		if name == "node bigger" && (l.Header().HeaderSize != 64 || l.Header().DataOffset != 128 || !l.Header().NodeFormat) {
			t.Errorf("node bigger: header %+v", l.Header())
		}
		l.Close()
	}
}

// Garbage frames behind a valid header: every reading method returns frames or errors, never
// panics, and never returns a slice outside the committed range.
func TestGarbageFramesNoPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 60 {
		n := 24 + rng.IntN(3000)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if round%3 == 0 { // small lengths make frames that look plausible
			for j := range b {
				b[j] &= 0x0f
			}
		}
		le.PutUint64(b[0:], 24)
		le.PutUint64(b[8:], 24)
		le.PutUint64(b[16:], uint64(24+rng.IntN(n-23)))
		path := filepath.Join(t.TempDir(), "g")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, debug := range []bool{false, true} {
			l, err := Open(Options{Path: path, DebugChecks: debug})
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			end := int64(le.Uint64(b[16:])) - 24
			it := utIter(t, l)
			for i := 0; i < n; i++ {
				f, err := it.Next()
				if f == nil || err != nil {
					if err != nil && !errors.Is(err, ErrCorrupt) {
						t.Fatalf("round %d: Next: %v, want ErrCorrupt", round, err)
					}
					break
				}
				if it.Cursor() > end {
					t.Fatalf("round %d: cursor %d beyond committed %d", round, it.Cursor(), end)
				}
			}
			for i := 0; i < n; i++ {
				f, err := it.Prev()
				if f == nil || err != nil {
					break
				}
				if it.Cursor() < 0 {
					t.Fatalf("round %d: Prev moved the cursor to %d", round, it.Cursor())
				}
			}
			for range 20 {
				it.Seek(int64(rng.IntN(n+10))-5, rng.IntN(3))
				if c := it.Cursor(); c < 0 || c > end {
					t.Fatalf("round %d: Seek moved the cursor to %d of %d", round, c, end)
				}
			}
			var dst [][]byte
			it.Seek(0, 0)
			for i := 0; i < n; i++ {
				k := len(dst)
				dst, err = it.NextBatch(dst, BatchOptions{MaxFrames: 1 + rng.IntN(5), MaxBytes: rng.IntN(200)})
				if err != nil || len(dst) == k {
					break
				}
			}
			l.Close()
		}
	}
}

func TestWriterLocking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	if h := l.Header(); h.WriterPID != os.Getpid() {
		t.Fatalf("WriterPID %d, want %d", h.WriterPID, os.Getpid())
	}
	if held, pid, err := l.WriterStatus(); err != nil || !held || pid != os.Getpid() {
		t.Fatalf("WriterStatus = %v, %d, %v; want held by %d", held, pid, err, os.Getpid())
	}

	// The same Log twice.
	_, err := l.Writer()
	if e := utIs(t, err, ErrLocked, "second Writer on one Log"); e.Path != path {
		t.Fatalf("error path %q", e.Path)
	}
	// Another Log on the same path, in this process: the flock is per open file.
	l2 := utReopen(t, path, true, false)
	_, err = l2.Writer()
	utIs(t, err, ErrLocked, "Writer on a second Log")
	if ErrorCode(err) != "ERR_SHM_LOCKED" {
		t.Fatalf("code %q", ErrorCode(err))
	}
	if held, pid, err := l2.WriterStatus(); err != nil || !held || pid != os.Getpid() {
		t.Fatalf("second log's WriterStatus = %v, %d, %v", held, pid, err)
	}
	utAppend(t, w, 0, 10, 11)

	// Released on Close: the other Log now gets the writer and resumes at the committed end.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if h := l.Header(); h.WriterPID != 0 {
		t.Fatalf("WriterPID %d after Close, want 0", h.WriterPID)
	}
	if held, _, err := l2.WriterStatus(); err != nil || held {
		t.Fatalf("WriterStatus after Close = %v, %v; want not held", held, err)
	}
	w2 := utWriter(t, l2)
	utAppend(t, w2, 2, 12)
	_, err = l.Writer()
	utIs(t, err, ErrLocked, "first Log while the second writes")
	got := utReadAll(t, utIter(t, l))
	if len(got) != 3 || !bytes.Equal(got[2], utPayload(2, 12)) || !bytes.Equal(got[0], utPayload(0, 10)) {
		t.Fatalf("frames after writer hand-over: %d", len(got))
	}

	// Closing a Log releases its writer too.
	l2.Close()
	w3 := utWriter(t, l)
	w3.Close()

	// A read-only Log never writes.
	ro := utReopen(t, path, false, false)
	_, err = ro.Writer()
	e := utIs(t, err, ErrReadOnly, "Writer on a read-only Log")
	if e.Op != "writer" || ErrorCode(err) != "ERR_SHM_READ_ONLY" {
		t.Fatalf("read-only error %+v code %q", e, ErrorCode(err))
	}
}

func TestLogClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path})
	w := utWriter(t, l)
	utAppend(t, w, 0, 8, 9)
	it := utIter(t, l)
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	closedErr := func(what string, err error) {
		t.Helper()
		utIs(t, err, ErrClosed, what)
		if ErrorCode(err) != "ERR_SHM_ITERATOR_CLOSED" {
			t.Errorf("%s: code %q", what, ErrorCode(err))
		}
	}
	closedErr("Log.Close twice", l.Close())
	_, err := l.Writer()
	closedErr("Log.Writer", err)
	_, err = l.NewIterator(IteratorOptions{})
	closedErr("Log.NewIterator", err)
	_, _, err = l.WriterStatus()
	closedErr("Log.WriterStatus", err)
	if tag, ok, _ := l.CommitTag(); ok || tag != 0 {
		t.Errorf("CommitTag on a closed log = %d, %v", tag, ok)
	}
	if h := l.Header(); h.DataOffset != 192 || h.Size != 0 {
		t.Errorf("Header of a closed log %+v: want the layout and no size", h)
	}
	// The writer and the iterator of a closed log.
	_, err = w.Allocate(1)
	closedErr("Writer.Allocate", err)
	closedErr("Writer.Append", w.Append([]byte{1}))
	closedErr("Writer.Commit", w.Commit())
	closedErr("Writer.CommitTagged", w.CommitTagged(1))
	closedErr("Writer.Sync", w.Sync())
	closedErr("Writer.Close", w.Close())
	utIterClosed(t, it, closedErr)
	if it.Cursor() != 12 {
		t.Errorf("Cursor of a closed iterator %d, want 12", it.Cursor())
	}
	// Another handle still reads the file: closing one Log changes nothing on disk.
	got := utReadAll(t, utIter(t, utReopen(t, path, false, false)))
	if len(got) != 2 {
		t.Fatalf("%d frames after Close, want 2", len(got))
	}
}

// utIterClosed checks that every error-returning method of a closed iterator says ErrClosed.
func utIterClosed(t *testing.T, it *Iterator, closedErr func(string, error)) {
	t.Helper()
	f, err := it.Next()
	closedErr("Iterator.Next", err)
	if f != nil {
		t.Errorf("Next returned a frame on a closed iterator")
	}
	dst := [][]byte{[]byte("x")}
	got, err := it.NextBatch(dst, BatchOptions{})
	closedErr("Iterator.NextBatch", err)
	if len(got) != 1 {
		t.Errorf("NextBatch changed dst on a closed iterator: %d", len(got))
	}
	_, err = it.Prev()
	closedErr("Iterator.Prev", err)
	_, err = it.Seek(0, 0)
	closedErr("Iterator.Seek", err)
	closedErr("Iterator.Wait", it.Wait(t.Context()))
	closedErr("Iterator.Close", it.Close())
	n := 0
	for f, err := range it.All() {
		n++
		if f != nil {
			t.Errorf("All yielded a frame on a closed iterator")
		}
		closedErr("Iterator.All", err)
	}
	for f, err := range it.Follow(t.Context()) {
		n++
		if f != nil {
			t.Errorf("Follow yielded a frame on a closed iterator")
		}
		closedErr("Iterator.Follow", err)
	}
	if n != 2 {
		t.Errorf("All and Follow yielded %d values on a closed iterator, want one error each", n)
	}
}

func TestPrefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 1 << 20, Prefault: true})
	w := utWriter(t, l)
	utAppend(t, w, 0, 100, 200, 300)
	r, err := Open(Options{Path: path, Prefault: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := utReadAll(t, utIter(t, r))
	if len(got) != 3 || !bytes.Equal(got[2], utPayload(2, 300)) {
		t.Fatalf("prefaulted read: %d frames", len(got))
	}
}

// Truncating the file under a mapped log gives ErrMappingGone from the iterator, not a crash.
func TestMappingGone(t *testing.T) {
	for _, size := range []int64{0, 4096} {
		path := filepath.Join(t.TempDir(), "log")
		l := utOpen(t, Options{Path: path, Capacity: 64 << 10})
		w := utWriter(t, l)
		sizes := make([]int, 30)
		for i := range sizes {
			sizes[i] = 1000
		}
		utAppend(t, w, 0, sizes...)
		w.Close()
		r := utReopen(t, path, false, false)
		first, mid, last := utIter(t, r), utIter(t, r), utIter(t, r)
		if _, err := mid.Seek(10*1004, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := last.Seek(0, 2); err != nil {
			t.Fatal(err)
		}
		batch := utIter(t, r)
		if _, err := batch.Seek(10*1004, 0); err != nil {
			t.Fatal(err)
		}
		gone := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, ErrMappingGone) {
				t.Fatalf("truncated to %d: %s: %v, want ErrMappingGone", size, what, err)
			}
			if ErrorCode(err) != "ERR_SHM_MAPPING_GONE" {
				t.Fatalf("code %q", ErrorCode(err))
			}
		}
		// A reader asleep in Wait when the file shrinks to nothing wakes up with ErrMappingGone.
		var waitErr chan error
		if size == 0 && futex.Supported {
			sleeper, err := r.NewIterator(IteratorOptions{StartCursor: 30 * 1004, Spin: -1})
			if err != nil {
				t.Fatal(err)
			}
			waitErr = make(chan error, 1)
			go func() { waitErr <- sleeper.Wait(context.Background()) }()
			testproc.WaitFor(t, 10*time.Second, "the reader to sleep", func() bool { return r.Header().Waiters != 0 })
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		if waitErr != nil {
			select {
			case err := <-waitErr:
				gone("Wait while asleep", err)
			case <-time.After(5 * time.Second):
				t.Fatal("Wait did not notice the truncation")
			}
		}
		if size == 0 {
			gone("Wait", last.Wait(context.Background()))
		}
		// Frames past the first page are gone in both cases.
		_, err := mid.Next()
		gone("Next", err)
		_, err = batch.NextBatch(nil, BatchOptions{})
		gone("NextBatch", err)
		_, err = last.Prev()
		gone("Prev", err)
		_, err = last.Seek(20*1004, 0)
		gone("Seek", err)
		if size == 0 {
			_, err = first.Next()
			gone("Next at the start", err)
			_, err = first.Seek(0, 2)
			gone("Seek to the end", err)
		}
		if size == 0 {
			// The methods without an error result must not crash either: they fall back.
			if h := r.Header(); h.Size != 0 || h.DataOffset != goHeaderSize {
				t.Fatalf("Header after truncation: %+v", h)
			}
			if _, ok, _ := r.CommitTag(); ok {
				t.Fatal("CommitTag after truncation reported a tag")
			}
			if got := last.End(); got != 30*1004 {
				t.Fatalf("End after truncation = %d, want the last size seen", got)
			}
			if r.Sealed() {
				t.Fatal("Sealed after truncation")
			}
		}
		// The cursors did not move.
		if mid.Cursor() != 10*1004 || last.Cursor() != 30*1004 {
			t.Fatalf("cursors moved: %d %d", mid.Cursor(), last.Cursor())
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close after truncation: %v", err)
		}
	}
}

// The writer's commit path survives a truncated file too: Commit reports ErrMappingGone and
// Close still releases the lock.
func TestMappingGoneWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := Open(Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); !errors.Is(err, ErrMappingGone) {
		t.Fatalf("Commit after truncation: %v, want ErrMappingGone", err)
	}
	if err := w.CommitTagged(7); !errors.Is(err, ErrMappingGone) {
		t.Fatalf("CommitTagged after truncation: %v, want ErrMappingGone", err)
	}
	if err := w.Close(); !errors.Is(err, ErrUncommitted) {
		t.Fatalf("writer Close after truncation with a frame allocated: %v, want ErrUncommitted", err)
	}
	if _, err := l.Writer(); !errors.Is(err, ErrMappingGone) {
		t.Fatalf("Writer after truncation: %v, want ErrMappingGone", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close after truncation: %v", err)
	}
}
