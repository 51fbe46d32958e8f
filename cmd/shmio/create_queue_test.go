package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// createQueue creates a queue with the CLI (tiny segments unless size says otherwise) and
// returns its directory.
func createQueue(t testing.TB, segSize string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "q")
	mustRun(t, append([]string{"create", "--queue", dir, "--segment-size", segSize}, extra...))
	return dir
}

// queueStatJSON runs stat --json on a queue.
func queueStatJSON(t testing.TB, dir string) queueStatInfo {
	t.Helper()
	var s queueStatInfo
	out := mustRun(t, []string{"stat", "--json", dir})
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, out)
	}
	return s
}

func TestCreateQueue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	out := mustRun(t, []string{"create", "--queue", dir, "--segment-size", "4KiB", "--mode", "0640",
		"--keep-segments", "8", "--keep-bytes", "1MiB", "--keep-age", "1h", "--hard-keep-segments", "100"})
	want := "created queue " + dir + ": segments of 4KiB, max payload 3900 bytes, retention: max segments 8, max bytes 1048576, max age 1h0m0s, hard max segments 100, mode 0640\n"
	if out != want {
		t.Fatalf("create printed %q, want %q", out, want)
	}
	fi, err := os.Stat(filepath.Join(dir, "0000000001.seg"))
	if err != nil || fi.Size() != 4096 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("first segment: %v %v", fi, err)
	}
	s := queueStatJSON(t, dir)
	if s.SegmentSize != 4096 || s.Retention.MaxSegments != 8 || s.Retention.MaxBytes != 1<<20 || s.Retention.HardMaxSegments != 100 ||
		len(s.Segments) < 1 || s.Segments[0].Number != 1 || s.Segments[0].State != "head" || s.Committed != 0 || len(s.Readers) != 0 || s.WriterLockHeld {
		t.Fatalf("stat of a new queue: %+v", s)
	}

	r := runShmio(t, []string{"create", "--queue", dir, "--segment-size", "4KiB"})
	if r.code != 2 || r.stderr != "shmio: "+dir+": already a queue (remove the directory to start over)\n" {
		t.Fatalf("create over a queue: %+v", r)
	}
	notEmpty := t.TempDir()
	os.WriteFile(filepath.Join(notEmpty, "x"), nil, 0o600)
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"create", "--queue", notEmpty}, "shmio: " + notEmpty + ": directory is not empty; a queue needs a new or empty directory\n"},
		{[]string{"create", "--queue", dir + "2", "--segment-size", "100"}, "shmio: --segment-size 100B: want 1KiB to 4GiB\n"},
		{[]string{"create", "--queue", dir + "2", "--capacity", "1MiB"}, "shmio: --capacity, --wide and --force are for log files; a queue takes --segment-size\n"},
		{[]string{"create", "--queue", dir + "2", "extra"}, "shmio: create: --queue DIR takes no PATH argument, got 1 (see shmio create --help)\n"},
		{[]string{"create", dir + "3", "--capacity", "1MiB", "--keep-segments", "3"}, "shmio: --segment-size and the --keep/--hard-keep flags need --queue DIR\n"},
		{[]string{"create", "--queue", dir + "2", "--keep-segments", "-1"}, "shmio: retention limits must not be negative\n"},
	}
	for _, tc := range tests {
		r := runShmio(t, tc.args)
		if r.code != 2 || r.stderr != tc.stderr || r.stdout != "" {
			t.Errorf("%s: exit %d stdout %q stderr %q, want 2 and %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.stderr)
		}
	}
	if _, err := os.Stat(dir + "2"); err == nil {
		t.Fatalf("a failed create left %s behind", dir+"2")
	}
}
