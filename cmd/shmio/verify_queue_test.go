package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
