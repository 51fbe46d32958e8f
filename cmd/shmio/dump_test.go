package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// writeAt overwrites bytes of the log file at a cursor (file offset DataOffset+cursor).
func writeAt(t testing.TB, path string, cursor int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, statJSON(t, path).DataOffset+cursor); err != nil {
		t.Fatal(err)
	}
}

func TestDump(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "hello", "0123456789abcdefXYZ", "end")

	want := `cursor 0  file offset 192  length 5 (frame 9 bytes)
  00000000  68 65 6c 6c 6f                                    |hello|
cursor 9  file offset 201  length 19 (frame 23 bytes)
  00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|
  00000010  58 59 5a                                          |XYZ|
cursor 32  file offset 224  length 3 (frame 7 bytes)
  00000000  65 6e 64                                          |end|
-- 3 frames shown (forward from cursor 0); committed end at cursor 39 (file offset 231)
`
	if out := mustRun(t, []string{"dump", path}); out != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", out, want)
	}

	want = `cursor 32  file offset 224  length 3 (frame 7 bytes)
  00000000  65 6e 64                                          |end|
cursor 9  file offset 201  length 19 (frame 23 bytes)
  00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|
  00000010  58 59 5a                                          |XYZ|
-- 2 frames shown (backward from cursor 39); committed end at cursor 39 (file offset 231)
`
	if out := mustRun(t, []string{"dump", path, "--reverse", "-n", "2"}); out != want {
		t.Fatalf("dump --reverse -n 2:\n%s\nwant:\n%s", out, want)
	}

	// Backward from a cursor: the frames before it, newest first.
	want = `cursor 0  file offset 192  length 5 (frame 9 bytes)
  00000000  68 65 6c 6c 6f                                    |hello|
-- 1 frame shown (backward from cursor 9); committed end at cursor 39 (file offset 231)
`
	if out := mustRun(t, []string{"dump", path, "--reverse", "--from", "9"}); out != want {
		t.Fatalf("dump --reverse --from 9:\n%s\nwant:\n%s", out, want)
	}

	// Forward from a cursor, payload view cut short.
	want = `cursor 9  file offset 201  length 19 (frame 23 bytes)
  00000000  30 31 32 33                                       |0123|
  ... 15 more bytes (--max-bytes 0 shows all)
-- 1 frame shown (forward from cursor 9); committed end at cursor 39 (file offset 231)
`
	if out := mustRun(t, []string{"dump", path, "--from", "9", "-n", "1", "--max-bytes", "4"}); out != want {
		t.Fatalf("dump --from 9 -n 1 --max-bytes 4:\n%s\nwant:\n%s", out, want)
	}
}

func TestDumpCorrupt(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "hello", "world", "again") // 9-byte frames at cursors 0, 9, 18
	writeAt(t, path, 9+7, []byte{7, 0})             // the tail length of "world"

	r := runShmio(t, []string{"dump", path})
	wantErr := "shmio: " + path + ": corrupt frame at cursor 9 (file offset 201): head length 9 but tail length 7 (asymmetric frame)\n"
	if r.code != 1 || r.stderr != wantErr {
		t.Fatalf("dump of a corrupt log: exit %d stderr %q, want 1 and %q", r.code, r.stderr, wantErr)
	}
	for _, want := range []string{
		"cursor 0  file offset 192  length 5 (frame 9 bytes)\n",
		"!! corrupt frame at cursor 9 (file offset 201): head length 9 but tail length 7 (asymmetric frame)\n",
		"!! raw bytes from cursor 9 (file offset 201):\n  00000000  09 00 77 6f 72 6c 64 07  00 09 00 61 67 61 69 6e  |..world....again|\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dump output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "cursor 18 ") {
		t.Errorf("dump went past the corrupt frame:\n%s", r.stdout)
	}

	// Backward, the same damage is met from the other side: the tail length 7 of the frame
	// ending at cursor 18 points at cursor 11, whose bytes are no length 7.
	r = runShmio(t, []string{"dump", path, "--reverse"})
	wantErr = "shmio: " + path + ": corrupt frame ending at cursor 18 (file offset 210): tail length 7 points back to cursor 11, where the head length is 28535 (asymmetric frame)\n"
	if r.code != 1 || r.stderr != wantErr || !strings.HasPrefix(r.stdout, "cursor 18  file offset 210  length 5 (frame 9 bytes)\n") {
		t.Fatalf("dump --reverse of a corrupt log: exit %d stdout %q stderr %q, want 1 and %q", r.code, r.stdout, r.stderr, wantErr)
	}
}

func TestDumpErrors(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "hello")
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"dump", path, "--from", "4"}, "shmio: " + path + ": cursor 4 is not the start of a frame (use a cursor printed by tail, dump or stat)"},
		{[]string{"dump", path, "--from", "10"}, "shmio: " + path + ": cursor 10 is past the committed end (9)"},
		{[]string{"dump", path, "--from", "x"}, `shmio: invalid --from "x": want a cursor`},
		{[]string{"dump", path + "x"}, "shmio: " + path + "x: no such file (create one with: shmio create " + path + "x --capacity 64MiB)"},
	} {
		r := runShmio(t, tc.args)
		if r.code != 2 || r.stderr != tc.stderr+"\n" || r.stdout != "" {
			t.Errorf("%v: exit %d stdout %q stderr %q, want exit 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.stderr)
		}
	}
}

func TestQueueDump(t *testing.T) {
	dir := createQueue(t, "4KiB")
	lines := queueLines(1, 1000) // segments 1-3 hold 260 frames each, 4 the last 220
	appendLines(t, dir, lines...)

	// Backward from the second frame of segment 3: two frames there, then the end of segment 2.
	out := mustRun(t, []string{"dump", dir, "--reverse", "--from", "3:30", "-n", "4"})
	want := fmt.Sprintf(`== segment 3 (%[1]s/0000000003.seg)
cursor %[2]d  segment 3 offset 15  length 11 (frame 15 bytes)
  00000000  6c 69 6e 65 2d 31 30 30  35 32 32                 |line-100522|
cursor %[3]d  segment 3 offset 0  length 11 (frame 15 bytes)
  00000000  6c 69 6e 65 2d 31 30 30  35 32 31                 |line-100521|
== segment 2 (%[1]s/0000000002.seg)
cursor %[4]d  segment 2 offset 3885  length 11 (frame 15 bytes)
  00000000  6c 69 6e 65 2d 31 30 30  35 32 30                 |line-100520|
cursor %[5]d  segment 2 offset 3870  length 11 (frame 15 bytes)
  00000000  6c 69 6e 65 2d 31 30 30  35 31 39                 |line-100519|
-- 4 frames shown (backward from cursor %[6]d (segment 3 offset 30)), 1 segment boundary crossed; committed end at cursor %[7]d (segment 4 offset 3300)
`, dir, 3<<32|15, 3<<32, 2<<32|3885, 2<<32|3870, 3<<32|30, 4<<32|3300)
	if out != want {
		t.Fatalf("dump --reverse:\n%s\nwant:\n%s", out, want)
	}

	// The whole queue backward: every frame, newest first, four segment headings.
	out = mustRun(t, []string{"dump", dir, "--reverse"})
	payloads := regexp.MustCompile(`\|(line-\d+)\|`).FindAllStringSubmatch(out, -1)
	if len(payloads) != len(lines) {
		t.Fatalf("dump --reverse showed %d frames, want %d", len(payloads), len(lines))
	}
	for i, m := range payloads {
		if m[1] != lines[len(lines)-1-i] {
			t.Fatalf("frame %d backward is %s, want %s", i, m[1], lines[len(lines)-1-i])
		}
	}
	if got := regexp.MustCompile(`(?m)^== segment (\d+)`).FindAllString(out, -1); strings.Join(got, ",") != "== segment 4,== segment 3,== segment 2,== segment 1" {
		t.Fatalf("segment headings backward: %q", got)
	}
	if !strings.HasSuffix(out, fmt.Sprintf("-- 1000 frames shown (backward from cursor %d (segment 4 offset 3300)), 3 segment boundaries crossed; committed end at cursor %[1]d (segment 4 offset 3300)\n", 4<<32|3300)) {
		t.Fatalf("dump --reverse summary:\n%s", out[strings.LastIndex(out, "--"):])
	}

	// Forward across one boundary.
	out = mustRun(t, []string{"dump", dir, "--from", fmt.Sprint(1<<32 | 3885), "-n", "2", "--max-bytes", "4"})
	if !strings.Contains(out, "== segment 1 ") || !strings.Contains(out, "== segment 2 ") || !strings.Contains(out, "|line|\n  ... 7 more bytes") ||
		!strings.Contains(out, fmt.Sprintf("cursor %d  segment 2 offset 0  length 11", 2<<32)) || !strings.Contains(out, "1 segment boundary crossed") {
		t.Fatalf("dump forward across a roll:\n%s", out)
	}
}

// TestDumpHelpExamples: every example of dump --help works on a log with a few frames.
func TestDumpHelpExamples(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "hello", "world")
	help := mustRun(t, []string{"dump", "--help"})
	examples := regexp.MustCompile(`(?m)^  shmio (dump /dev/shm/events.*)$`).FindAllStringSubmatch(help, -1)
	if len(examples) < 2 {
		t.Fatalf("dump --help has no examples:\n%s", help)
	}
	events := createLog(t, "1MiB") // for the --schema example: LogEvents
	fx := loadFixtures(t)
	appendRaw(t, events, fx[0].Frame, fx[1].Frame)
	for _, m := range examples {
		log := path
		if strings.Contains(m[1], "--schema types.json") {
			log = events
		}
		args := strings.Fields(strings.NewReplacer("/dev/shm/events", log, "types.json", schemaFile).Replace(m[1]))
		if r := runShmio(t, args); r.code != 0 {
			t.Errorf("shmio %s: %+v", m[1], r)
		}
	}
}
