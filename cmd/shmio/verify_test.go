package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyClean(t *testing.T) {
	path := createLog(t, "1MiB")
	r := runShmio(t, []string{"verify", path})
	if r.code != 0 || r.stdout != path+": OK: 0 frames, 0 bytes committed; forward and backward walks agree\n" {
		t.Fatalf("verify of an empty log: %+v", r)
	}
	appendLines(t, path, "a", "bb", "ccc")
	r = runShmio(t, []string{"verify", path})
	if r.code != 0 || r.stderr != "" || r.stdout != path+": OK: 3 frames, 18 bytes committed; forward and backward walks agree\n" {
		t.Fatalf("verify of a clean log: %+v", r)
	}

	node := copyNodeLog(t)
	r = runShmio(t, []string{"verify", node})
	if r.code != 0 || r.stdout != node+": OK: 220 frames, 102784 bytes committed; forward and backward walks agree\n" {
		t.Fatalf("verify of the Node log: %+v", r)
	}
}

// TestVerifyManyFrames crosses several of verify's comparison chunks, clean and then damaged
// near the end.
func TestVerifyManyFrames(t *testing.T) {
	path := createLog(t, "1MiB")
	lines := numbered("", 10000, 19999) // 10000 frames of 9 bytes
	appendLines(t, path, lines...)
	r := runShmio(t, []string{"verify", path})
	if r.code != 0 || r.stdout != path+": OK: 10000 frames, 90000 bytes committed; forward and backward walks agree\n" {
		t.Fatalf("verify: %+v", r)
	}
	const bad = 9990 * 9
	writeAt(t, path, bad, []byte{20, 0})
	r = runShmio(t, []string{"verify", path})
	want := fmt.Sprintf("shmio: %s: corrupt at cursor %d (file offset %d): head length 20 but tail length 9 (asymmetric frame)\n", path, bad, bad+192)
	if r.code != 1 || r.stderr != want {
		t.Fatalf("verify: exit %d stderr %q, want 1 and %q", r.code, r.stderr, want)
	}
	wantOut := fmt.Sprintf(`%s: CORRUPT
  first problem: cursor %d (file offset %d): head length 20 but tail length 9 (asymmetric frame)
  forward walk:  9990 good frames, stopped at cursor %d: head length 20 but tail length 9 (asymmetric frame)
  backward walk: 9 good frames from cursor 90000 down to %d, stopped: tail length 9 points back to cursor %d, where the head length is 20 (asymmetric frame)
`, path, bad, bad+192, bad, bad+9, bad)
	if r.stdout != wantOut {
		t.Fatalf("verify printed:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
}

func TestVerifyCorrupt(t *testing.T) {
	// Three 9-byte frames at cursors 0, 9 and 18; each case damages the middle one.
	tests := []struct {
		name    string
		at      int64
		bytes   []byte
		problem string
	}{
		{"asymmetric lengths", 16, []byte{7, 0}, "head length 9 but tail length 7 (asymmetric frame)"},
		{"length past the committed end", 9, []byte{40, 0}, "length 40 runs past the committed end 27 (the frame would end at 49)"},
		{"length too small", 9, []byte{3, 0}, "length 3 is smaller than the smallest frame (5 bytes)"},
		{"zero length", 9, []byte{0, 0}, "length 0 is smaller than the smallest frame (5 bytes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := createLog(t, "1MiB")
			appendLines(t, path, "hello", "world", "again")
			writeAt(t, path, tc.at, tc.bytes)
			r := runShmio(t, []string{"verify", path})
			want := "shmio: " + path + ": corrupt at cursor 9 (file offset 201): " + tc.problem + "\n"
			if r.code != 1 || r.stderr != want {
				t.Fatalf("exit %d stderr %q, want 1 and %q", r.code, r.stderr, want)
			}
			if !strings.HasPrefix(r.stdout, path+": CORRUPT\n  first problem: cursor 9 (file offset 201): "+tc.problem+"\n") {
				t.Fatalf("verify printed:\n%s", r.stdout)
			}
		})
	}

	// Damage in the last frame's tail is found by both walks at the same frame.
	path := createLog(t, "1MiB")
	appendLines(t, path, "hello", "world", "again")
	writeAt(t, path, 25, []byte{0xff, 0xff})
	r := runShmio(t, []string{"verify", path})
	want := "shmio: " + path + ": corrupt at cursor 18 (file offset 210): head length 9 but tail length 65535 (asymmetric frame)\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("exit %d stderr %q, want 1 and %q", r.code, r.stderr, want)
	}
}

func TestVerifyErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("\x01\x02\x03\x04garbage!", 64)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Not a log: that is a failed verification (1), not a failure to run (2).
	r := runShmio(t, []string{"verify", garbage})
	if r.code != 1 || !isNotALog(r.stderr, garbage) {
		t.Fatalf("verify of garbage: %+v", r)
	}
	r = runShmio(t, []string{"verify", filepath.Join(dir, "missing")})
	if r.code != 2 || r.stderr != "shmio: "+filepath.Join(dir, "missing")+": no such file (create one with: shmio create "+filepath.Join(dir, "missing")+" --capacity 64MiB)\n" {
		t.Fatalf("verify of a missing file: %+v", r)
	}
	r = runShmio(t, []string{"verify", dir})
	if r.code != 2 || r.stderr != "shmio: "+dir+": is a directory, not a shmio log\n" {
		t.Fatalf("verify of a directory: %+v", r)
	}
}

// TestWalkMerger checks the comparison of the two walks on disagreements that a file cannot
// produce while both walks check both lengths (they need the file to change between the walks).
func TestWalkMerger(t *testing.T) {
	replay := func(frames ...frameRef) func() (frameRef, bool, error) {
		i := len(frames) // newest first
		return func() (frameRef, bool, error) {
			if i == 0 {
				return frameRef{}, false, nil
			}
			i--
			return frames[i], true, nil
		}
	}
	tests := []struct {
		name     string
		fwd, bwd []frameRef // oldest first
		want     *verifyProblem
	}{
		{"agree", []frameRef{{0, 9}, {9, 9}, {18, 9}}, []frameRef{{0, 9}, {9, 9}, {18, 9}}, nil},
		{"empty", nil, nil, nil},
		{"backward merged two frames", []frameRef{{0, 9}, {9, 9}, {18, 9}}, []frameRef{{0, 18}, {18, 9}},
			&verifyProblem{0, "forward walk read length 9, backward walk length 18"}},
		{"backward split a frame", []frameRef{{0, 18}, {18, 9}}, []frameRef{{0, 9}, {9, 9}, {18, 9}},
			&verifyProblem{0, "forward walk read length 18, backward walk length 9"}},
		{"backward skipped the first frames", []frameRef{{0, 5}, {5, 5}, {10, 9}}, []frameRef{{10, 9}},
			&verifyProblem{0, "forward walk found a frame of length 5 here, the backward walk did not"}},
		{"backward found an extra frame at the start", []frameRef{{9, 9}}, []frameRef{{0, 9}, {9, 9}},
			&verifyProblem{0, "backward walk found a frame of length 9 here, the forward walk did not"}},
		{"disagreement in the middle", []frameRef{{0, 9}, {9, 9}, {18, 9}, {27, 9}}, []frameRef{{0, 9}, {9, 6}, {15, 12}, {27, 9}},
			&verifyProblem{9, "forward walk read length 9, backward walk length 6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newWalkMerger(replay(tc.fwd...))
			for i := len(tc.bwd) - 1; i >= 0; i-- {
				m.add(tc.bwd[i])
			}
			m.finish()
			if m.err != nil {
				t.Fatal(m.err)
			}
			if (m.mismatch == nil) != (tc.want == nil) || m.mismatch != nil && *m.mismatch != *tc.want {
				t.Fatalf("mismatch %+v, want %+v", m.mismatch, tc.want)
			}
		})
	}
}
