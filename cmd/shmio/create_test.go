package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreate(t *testing.T) {
	path := testLogPath(t)
	out := mustRun(t, []string{"create", path, "--capacity", "1MiB"})
	want := "created " + path + ": capacity 1MiB (1048384 bytes for frames), u16 frame lengths (Node shmio compatible), max payload 65531 bytes, mode 0600\n"
	if out != want {
		t.Fatalf("create printed %q, want %q", out, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 1<<20 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file size %d mode %v, want 1048576 and 0600", fi.Size(), fi.Mode().Perm())
	}
	s := statJSON(t, path)
	if s.Format != "shmio-go" || s.Frames != 0 || s.Committed != 0 || s.Capacity != 1<<20 || s.FirstCursor != nil {
		t.Fatalf("new log stat = %+v", s)
	}
}

func TestCreateModeAndWide(t *testing.T) {
	path := testLogPath(t)
	out := mustRun(t, []string{"create", path, "--capacity", "64KiB", "--mode", "0640", "--wide"})
	if !strings.Contains(out, "u32 frame lengths (wide; not readable by Node shmio)") || !strings.HasSuffix(out, "mode 0640\n") {
		t.Fatalf("create --wide --mode 0640 printed %q", out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640 whatever the umask", fi.Mode().Perm())
	}
	s := statJSON(t, path)
	if s.Format != "shmio-go-wide" || !s.WideFrames || s.NodeCompatible || s.Capacity != 64<<10 {
		t.Fatalf("wide log stat = %+v", s)
	}
}

func TestCreateRefusesToOverwrite(t *testing.T) {
	path := createLog(t, "64KiB")
	appendLines(t, path, "keep me")

	r := runShmio(t, []string{"create", path, "--capacity", "1MiB"})
	if r.code != 2 || r.stderr != "shmio: "+path+": already exists (use --force to replace it)\n" || r.stdout != "" {
		t.Fatalf("create over an existing log: %+v", r)
	}
	if s := statJSON(t, path); s.Frames != 1 || s.Capacity != 64<<10 {
		t.Fatalf("the existing log changed: %+v", s)
	}

	mustRun(t, []string{"create", path, "--capacity", "1MiB", "--force"})
	if s := statJSON(t, path); s.Frames != 0 || s.Capacity != 1<<20 {
		t.Fatalf("--force did not replace the log: %+v", s)
	}
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	// A directory nobody (and no unprivileged owner) may create files in.
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	makeReachable(t, dir)
	tests := []struct {
		name   string
		args   []string
		opts   []runOpt
		stderr string
	}{
		{"bad size", []string{"create", path, "--capacity", "12XB"},
			nil, `shmio: invalid argument "12XB" for "--capacity" flag: invalid size "12XB": want a number with an optional unit such as 64MiB or 1GiB` + "\n"},
		{"negative size", []string{"create", path, "--capacity", "-5MiB"},
			nil, `shmio: invalid argument "-5MiB" for "--capacity" flag: invalid size "-5MiB": out of range` + "\n"},
		{"no capacity", []string{"create", path},
			nil, `shmio: required flag(s) "capacity" not set` + "\n"},
		{"zero capacity", []string{"create", path, "--capacity", "0"},
			nil, "shmio: --capacity must be greater than zero (for example --capacity 64MiB)\n"},
		{"too small", []string{"create", path, "--capacity", "100"},
			nil, "shmio: " + path + ": cannot create a log of 100B: capacity 100 too small: need at least 197 bytes for the header and one frame\n"},
		{"bad mode", []string{"create", path, "--capacity", "1MiB", "--mode", "0999"},
			nil, `shmio: invalid argument "0999" for "--mode" flag: invalid mode "0999": want octal permission bits such as 0640` + "\n"},
		{"no directory", []string{"create", filepath.Join(dir, "nope", "x.log"), "--capacity", "1MiB"},
			nil, "shmio: " + filepath.Join(dir, "nope", "x.log") + ": cannot create: directory " + filepath.Join(dir, "nope") + " does not exist\n"},
		{"directory as path", []string{"create", dir, "--capacity", "1MiB"},
			nil, "shmio: " + dir + ": already exists (use --force to replace it)\n"},
		{"directory with force", []string{"create", dir, "--capacity", "1MiB", "--force"},
			nil, "shmio: " + dir + ": is a directory; --force only replaces files\n"},
		{"no write permission", []string{"create", filepath.Join(locked, "x.log"), "--capacity", "1MiB"},
			[]runOpt{asNobody()}, "shmio: " + filepath.Join(locked, "x.log") + ": permission denied (cannot create a file in " + locked + ")\n"},
		{"no path", []string{"create", "--capacity", "1MiB"},
			nil, "shmio: create: want PATH, got 0 arguments (see shmio create --help)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runShmio(t, tc.args, tc.opts...)
			if r.code != 2 || r.stderr != tc.stderr || r.stdout != "" {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit 2, stderr %q", r.code, r.stdout, r.stderr, tc.stderr)
			}
		})
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("a failed create left %s behind", path)
	}
}

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
