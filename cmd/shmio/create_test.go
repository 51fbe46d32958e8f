package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestCreateForceReplacesOnlyAnIdleLog: --force refuses a log whose writer holds the lock (the
// writer would go on appending into a deleted file), anything that is not a regular file holding
// a shmio log, and a symlink; it says how to proceed. An idle log is replaced.
func TestCreateForceReplacesOnlyAnIdleLog(t *testing.T) {
	path := createLog(t, "64KiB")
	w, in := startAppend(t, path)
	writeInput(t, in, "live\n")
	waitFor(t, 10*time.Second, "the writer to commit", func() bool { return tailAll(t, path, "text") == "live\n" })
	r := runShmio(t, []string{"create", path, "--capacity", "1MiB", "--force"})
	want := "shmio: " + path + ": a writer (pid " + itoa(w.cmd.Process.Pid) + ") holds the log; stop it before replacing the log\n"
	if r.code != 2 || r.stderr != want {
		t.Fatalf("create --force on a live log: exit %d stderr %q, want %q", r.code, r.stderr, want)
	}
	writeInput(t, in, "still there\n")
	in.Close()
	if code := w.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("writer exit %d: %s", code, w.stderr.String())
	}
	wantLines(t, tailAll(t, path, "text"), "live", "still there")

	dir := t.TempDir()
	notLog := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notLog, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	const how = "; --force only replaces a log; remove it yourself if you mean to replace it\n"
	for p, want := range map[string]string{
		notLog: "shmio: " + notLog + ": not a shmio log (file is 8 bytes, smaller than the 24-byte header)" + how,
		fifo:   "shmio: " + fifo + ": is a named pipe, not a shmio log" + how,
		link:   "shmio: " + link + ": is a symlink, not a shmio log" + how,
	} {
		if r := runShmio(t, []string{"create", p, "--capacity", "64KiB", "--force"}); r.code != 2 || r.stderr != want {
			t.Errorf("create --force %s: exit %d stderr %q, want %q", p, r.code, r.stderr, want)
		}
	}
	if b, err := os.ReadFile(notLog); err != nil || string(b) != "keep me\n" {
		t.Fatalf("the file that is not a log changed: %q, %v", b, err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the fifo was replaced: %v, %v", fi, err)
	}
	mustRun(t, []string{"create", path, "--capacity", "1MiB", "--force"})
	if s := statJSON(t, path); s.Frames != 0 || s.Capacity != 1<<20 {
		t.Fatalf("--force did not replace the idle log: %+v", s)
	}
}

// TestCreateUnits: the large units parse (the file system refuses the size, clearly), binary and
// decimal units are told apart and documented, and a wide log's max payload is what fits.
func TestCreateUnits(t *testing.T) {
	for _, size := range []string{"1EiB", "1PiB"} {
		r := runShmio(t, []string{"create", testLogPath(t), "--capacity", size})
		if r.code != 2 || strings.Contains(r.stderr, "want a number") || !strings.Contains(r.stderr, "cannot create a log of "+size+": ") {
			t.Errorf("create --capacity %s: %+v", size, r)
		}
	}
	help := mustRun(t, []string{"create", "--help"})
	if !strings.Contains(help, "are powers of 1024; KB, MB, GB, TB,\nPB and EB are powers of 1000. 64M and 64MiB are 67108864 bytes, 64MB is 64000000.") {
		t.Errorf("create --help does not document the units:\n%s", help)
	}
	out := mustRun(t, []string{"create", testLogPath(t), "--capacity", "64KiB", "--wide"})
	if !strings.Contains(out, "max payload 65336 bytes") { // 64 KiB - 192 header - 8 of lengths
		t.Fatalf("create --wide printed %q", out)
	}
}
