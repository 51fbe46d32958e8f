package shmio

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shmio/shmio/internal/testproc"
)

// Cross-process tests run the test binary itself as the other processes, through the shared
// harness internal/testproc: TestMain runs the child role the environment names instead of the
// tests. The race detector cannot see
// memory shared through mmap between processes, so these tests check results (sequence numbers,
// checksums, liveness), not data races. Parameters reach a child through testproc.Param;
// a child reports on stdout (one JSON object, or one line per event) and exits 0 when it is happy.

// xpRoles are the child roles (run by testproc.Main), registered by the files that use them.
var xpRoles = map[string]func() error{}

func TestMain(m *testing.M) { testproc.Main(m, xpRoles) }

// xpCreate creates an empty log of the given capacity and returns its path.
func xpCreate(t testing.TB, dir, name string, capacity int64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	l, err := Open(Options{Path: path, Capacity: capacity, Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Test frames. Frame seq (0, 1, 2, ...) holds [seq u64][body][crc32 u32] where the size and the
// body are functions of seq and the CRC covers seq and body: a reader can check that it got
// exactly the frame it expected, whole. Sizes vary (12 to 139 bytes, one frame in 512 up to
// 3 KB, so frames straddle pages); the body is a window of a fixed random pattern, so filling and
// checking cost one copy and one compare even in race-instrumented children.
const (
	xpMinSize = 12
	xpMaxBody = 3000
)

var xpPattern = func() []byte {
	b := make([]byte, 256+xpMaxBody)
	for i := range b {
		b[i] = byte(xpMix(uint64(i)))
	}
	return b
}()

// xpMix is splitmix64's finaliser: a cheap, well-spread hash of seq.
func xpMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func xpSize(seq uint64) int {
	h := xpMix(seq)
	if h&511 == 0 {
		return xpMinSize + int((h>>9)%xpMaxBody)
	}
	return xpMinSize + int((h>>9)%128)
}

// xpSpan is the bytes frames [0, n) take in a u16-framed log.
func xpSpan(n uint64) int64 {
	var s int64
	for i := uint64(0); i < n; i++ {
		s += int64(xpSize(i)) + 4
	}
	return s
}

func xpFill(p []byte, seq uint64) {
	le.PutUint64(p, seq)
	n := len(p) - 4
	copy(p[8:n], xpPattern[seq%256:])
	le.PutUint32(p[n:], crc32.ChecksumIEEE(p[:n]))
}

// xpCheck verifies that p is frame want, whole.
func xpCheck(p []byte, want uint64) error {
	if len(p) < xpMinSize {
		return fmt.Errorf("frame %d: %d bytes, want %d", want, len(p), xpSize(want))
	}
	if seq := le.Uint64(p); seq != want {
		return fmt.Errorf("frame seq %d, want %d (len %d)", seq, want, len(p))
	}
	if len(p) != xpSize(want) {
		return fmt.Errorf("frame %d: %d bytes, want %d", want, len(p), xpSize(want))
	}
	n := len(p) - 4
	if got, sum := le.Uint32(p[n:]), crc32.ChecksumIEEE(p[:n]); got != sum {
		return fmt.Errorf("frame %d torn: crc %#x, computed %#x", want, got, sum)
	}
	if !bytes.Equal(p[8:n], xpPattern[want%256:want%256+uint64(n-8)]) {
		return fmt.Errorf("frame %d: body differs from the pattern", want)
	}
	return nil
}

// xpFields splits a child's event line ("c 12 3456") and parses the numbers after the tag.
func xpFields(line string) (tag string, nums []int64, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", nil, fmt.Errorf("empty line")
	}
	for _, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("line %q: %v", line, err)
		}
		nums = append(nums, v)
	}
	return f[0], nums, nil
}

// TestXPFrames checks the test frame helpers themselves.
func TestXPFrames(t *testing.T) {
	big := 0
	for seq := uint64(0); seq < 5000; seq++ {
		p := make([]byte, xpSize(seq))
		if len(p) > 139 {
			big++
		}
		xpFill(p, seq)
		if err := xpCheck(p, seq); err != nil {
			t.Fatal(err)
		}
		if seq > 0 && xpCheck(p, seq-1) == nil {
			t.Fatalf("frame %d passes as %d", seq, seq-1)
		}
		p[len(p)/2] ^= 1
		if xpCheck(p, seq) == nil {
			t.Fatalf("frame %d with a flipped byte passes", seq)
		}
	}
	if big == 0 {
		t.Fatal("no large frames in 5000")
	}
}

// xpOpenWriter opens the log at PATH and its writer, for a writer child.
func xpOpenWriter() (*Log, *Writer, error) {
	l, err := Open(Options{Path: testproc.Param("PATH"), Writable: true})
	if err != nil {
		return nil, nil, err
	}
	w, err := l.Writer()
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, w, nil
}
