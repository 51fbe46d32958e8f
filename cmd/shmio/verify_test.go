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

func TestQueueVerify(t *testing.T) {
	dir := createQueue(t, "4KiB")
	r := runShmio(t, []string{"verify", dir})
	if r.code != 0 || !strings.HasPrefix(r.stdout, dir+": OK: ") || !strings.Contains(r.stdout, "(head 1), 0 frames, 0 bytes committed") {
		t.Fatalf("verify of an empty queue: %+v", r)
	}
	appendLines(t, dir, queueLines(1, 2000)...)
	r = runShmio(t, []string{"verify", dir})
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "(head 8), 2000 frames, 30000 bytes committed; every segment and the chain between them are consistent\n") {
		t.Fatalf("verify of a clean queue: %+v", r)
	}

	// Damage the head length of the 10th frame of segment 3, a middle one.
	seg := filepath.Join(dir, "0000000003.seg")
	const bad = 9 * 15
	dataOffset := statJSON(t, seg).DataOffset
	writeAt(t, seg, bad, []byte{40, 0})
	r = runShmio(t, []string{"verify", dir})
	wantErr := fmt.Sprintf("shmio: %s: segment 3 (%s): queue cursor %d, corrupt at cursor %d (file offset %d): head length 40 but tail length 12336 (asymmetric frame)\n",
		dir, seg, 3<<32|bad, bad, dataOffset+bad)
	if r.code != 1 || r.stderr != wantErr {
		t.Fatalf("verify of a damaged queue: exit %d stderr %q, want 1 and %q\nstdout:\n%s", r.code, r.stderr, wantErr, r.stdout)
	}
	// The library located the frame: no second walk, the whole report is its problem list.
	wantOut := fmt.Sprintf("%s: CORRUPT: 1 problem\n  segment 3: frame at queue cursor %d (offset %d, file offset %d): head length 40 but tail length 12336 (asymmetric frame)\n",
		dir, 3<<32|bad, bad, dataOffset+bad)
	if r.stdout != wantOut {
		t.Errorf("verify output:\n%q\nwant:\n%q", r.stdout, wantOut)
	}
	// Readers stop at the damage with exit 1, naming the queue cursor.
	r = runShmio(t, []string{"tail", dir, "--from", "start"})
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("at cursor %d (segment 3 offset %d)", 3<<32|bad, bad)) {
		t.Fatalf("tail over the damage: exit %d stderr %q", r.code, r.stderr)
	}
	wantLines(t, r.stdout, queueLines(1, 2*260+9)...)

	// A missing middle segment breaks the chain.
	writeAt(t, seg, bad, []byte{15, 0})
	if r := runShmio(t, []string{"verify", dir}); r.code != 0 {
		t.Fatalf("verify after repair: %+v", r)
	}
	if err := osRemove(seg); err != nil {
		t.Fatal(err)
	}
	r = runShmio(t, []string{"verify", dir})
	if r.code != 1 || r.stderr != "shmio: "+dir+": segments 3 to 3 are missing\n" {
		t.Fatalf("verify without segment 3: %+v", r)
	}

	notQueue := t.TempDir()
	r = runShmio(t, []string{"verify", notQueue})
	if r.code != 2 || r.stderr != "shmio: "+notQueue+": is a directory, not a shmio log\n" {
		t.Fatalf("verify of an empty directory: %+v", r)
	}
}

var osRemove = os.Remove
