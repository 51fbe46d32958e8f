package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio"
)

// numbered returns "prefix1" .. "prefixN".
func numbered(prefix string, from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprintf("%s%d", prefix, i))
	}
	return s
}

func TestTailStartingPoints(t *testing.T) {
	path := createLog(t, "1MiB")
	lines := numbered("line", 1, 15) // frames of 9 bytes ("line1".."line9") and 10 bytes
	appendLines(t, path, lines...)

	wantLines(t, mustRun(t, []string{"tail", path}), lines[5:]...) // the last 10, as tail(1)
	wantLines(t, mustRun(t, []string{"tail", path, "-n", "3"}), lines[12:]...)
	wantLines(t, mustRun(t, []string{"tail", path, "-n", "0"}))
	wantLines(t, mustRun(t, []string{"tail", path, "-n", "100"}), lines...)
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "start"}), lines...)
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "start", "-n", "2"}), lines[:2]...)
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "end"}))
	// line3 starts after two 9-byte frames.
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "18", "-n", "2"}), "line3", "line4")
	wantLines(t, mustRun(t, []string{"tail", path, "--from", "0"}), lines...)
}

func TestTailFormats(t *testing.T) {
	path := createLog(t, "1MiB")
	binary := []byte{0xff, 0xfe, 0}
	input := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(input, rawRecords([]byte("héllo \"q\""), binary), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, []string{"append", "-q", path, "--raw", "--file", input})

	wantLines(t, tailAll(t, path, "hex"), hex.EncodeToString([]byte("héllo \"q\"")), "fffe00")
	wantLines(t, tailAll(t, path, "base64"), "aMOpbGxvICJxIg==", "//4A")
	out := tailAll(t, path, "json")
	wantLines(t, out,
		`{"cursor":0,"length":10,"next":14,"payload":"héllo \"q\""}`,
		`{"cursor":14,"length":3,"next":21,"payload_base64":"//4A"}`)
	// Every line is valid JSON.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var jf jsonFrame
		if err := json.Unmarshal([]byte(line), &jf); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
}

// TestTailFollow: tail -f prints what is there, then frames appended later by another process,
// and exits 0 on SIGINT.
func TestTailFollow(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "before1", "before2")
	tail := startShmio(t, []string{"tail", "-f", "--from", "start", path})
	waitFor(t, 10*time.Second, "existing lines", func() bool { return tail.stdout.String() == "before1\nbefore2\n" })

	appendLines(t, path, "after1")
	waitFor(t, 10*time.Second, "a line appended later", func() bool { return tail.stdout.String() == "before1\nbefore2\nafter1\n" })
	appendLines(t, path, "after2", "after3")
	waitFor(t, 10*time.Second, "two more lines", func() bool {
		return tail.stdout.String() == "before1\nbefore2\nafter1\nafter2\nafter3\n"
	})
	tail.signal(t, syscall.SIGINT)
	if code := tail.wait(t, 10*time.Second); code != 0 || tail.stderr.String() != "" {
		t.Fatalf("tail -f after SIGINT: exit %d stderr %q", code, tail.stderr.String())
	}

	// -f with -n: stops after N frames, waiting for them if needed.
	tail = startShmio(t, []string{"tail", "-f", "--from", "end", "-n", "2", path})
	waitFor(t, 10*time.Second, "the reader to wait", func() bool { return statJSON(t, path).ReadersWaiting == 1 })
	appendLines(t, path, "x", "y", "z")
	if code := tail.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("tail -f -n 2: exit %d stderr %q", code, tail.stderr.String())
	}
	wantLines(t, tail.stdout.String(), "x", "y")
}

// cursorFile reads a saved cursor file.
func cursorFile(t testing.TB, name string) cursorFileData {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var d cursorFileData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("cursor file %q: %v", b, err)
	}
	return d
}

// TestTailCursorFile: successive runs with one cursor file see every frame exactly once, also
// when the run is a tail -f ended by SIGTERM or SIGINT.
func TestTailCursorFile(t *testing.T) {
	path := createLog(t, "1MiB")
	cf := filepath.Join(t.TempDir(), "cursor")
	appendLines(t, path, "a1", "a2") // 6-byte frames

	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf}), "a1", "a2")
	d := cursorFile(t, cf)
	if d.Cursor != 12 || d.ID != statJSON(t, path).ID || !filepath.IsAbs(d.Log) {
		t.Fatalf("saved %+v", d)
	}
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf})) // nothing new

	appendLines(t, path, "b1", "b2", "b3")
	// -n limits a run; the next run continues after the last printed frame.
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf, "-n", "1"}), "b1")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf}), "b2", "b3")

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		tail := startShmio(t, []string{"tail", "-f", path, "--cursor-file", cf})
		waitFor(t, 10*time.Second, "the reader to wait", func() bool { return statJSON(t, path).ReadersWaiting == 1 })
		appendLines(t, path, "c1-"+sig.String(), "c2-"+sig.String())
		waitFor(t, 10*time.Second, "followed lines", func() bool {
			return tail.stdout.String() == "c1-"+sig.String()+"\nc2-"+sig.String()+"\n"
		})
		tail.signal(t, sig)
		if code := tail.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("tail -f exit %d after %v, stderr %q", code, sig, tail.stderr.String())
		}
		if d := cursorFile(t, cf); d.Cursor != statJSON(t, path).Committed {
			t.Fatalf("after %v the saved cursor is %d, want the committed end %d", sig, d.Cursor, statJSON(t, path).Committed)
		}
	}
	appendLines(t, path, "d1")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf}), "d1")

	// A first run with --from end skips the history; later runs resume.
	cf2 := filepath.Join(t.TempDir(), "cursor2")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf2, "--from", "end"}))
	appendLines(t, path, "e1")
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf2, "--from", "end"}), "e1")

	// A hand-written bare number works too.
	if err := os.WriteFile(cf2, []byte("6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantLines(t, mustRun(t, []string{"tail", path, "--cursor-file", cf2, "-n", "1"}), "a2")
}

func TestTailErrors(t *testing.T) {
	path := createLog(t, "1MiB")
	appendLines(t, path, "aaaa", "bbbb") // 8-byte frames: cursors 0 and 8, end 16
	other := createLog(t, "64KiB")
	cf := filepath.Join(t.TempDir(), "cursor")
	mustRun(t, []string{"tail", other, "--cursor-file", cf})
	otherID := statJSON(t, other).ID
	garbageCF := filepath.Join(t.TempDir(), "garbage-cursor")
	if err := os.WriteFile(garbageCF, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	farCF := filepath.Join(t.TempDir(), "far-cursor")
	if err := os.WriteFile(farCF, []byte("1000"), 0o644); err != nil {
		t.Fatal(err)
	}
	notLog := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notLog, []byte(strings.Repeat("just some text\n", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	private := createLog(t, "64KiB")
	makeReachable(t, filepath.Dir(private))

	tests := []struct {
		name   string
		args   []string
		opts   []runOpt
		stderr string
	}{
		{"bad format", []string{"tail", path, "--format", "xml"}, nil, `shmio: invalid --format "xml": want text, hex, json or base64`},
		{"bad from", []string{"tail", path, "--from", "middle"}, nil, `shmio: invalid --from "middle": want start, end or a cursor`},
		{"negative n", []string{"tail", path, "-n", "-1"}, nil, `shmio: invalid -n -1: want a number of frames, 0 or more`},
		{"mid-frame cursor", []string{"tail", path, "--from", "3"}, nil,
			"shmio: " + path + ": cursor 3 is not the start of a frame (use a cursor printed by tail, dump or stat)"},
		{"cursor past end", []string{"tail", path, "--from", "17"}, nil, "shmio: " + path + ": cursor 17 is past the committed end (16)"},
		{"cursor file of another log", []string{"tail", path, "--cursor-file", cf}, nil,
			"shmio: --cursor-file " + cf + ": saved for log id " + otherID + ", but this log has id " + statJSON(t, path).ID + " (recreated?); delete the file to start over"},
		{"garbage cursor file", []string{"tail", path, "--cursor-file", garbageCF}, nil,
			"shmio: --cursor-file " + garbageCF + ": not a saved cursor (want JSON written by shmio tail, or a number)"},
		{"cursor file past end", []string{"tail", path, "--cursor-file", farCF}, nil,
			"shmio: " + path + ": cursor 1000 is past the committed end (16) (saved in " + farCF + "; delete it to start over)"},
		{"not a log", []string{"tail", notLog}, nil, "not a log"},
		{"missing", []string{"tail", "-f", path + ".missing"}, nil,
			"shmio: " + path + ".missing: no such file (create one with: shmio create " + path + ".missing --capacity 64MiB)"},
		{"no permission", []string{"tail", private}, []runOpt{asNobody()}, "shmio: " + private + ": permission denied (need read access)"},
		{"cursor file in a missing directory", []string{"tail", path, "--cursor-file", "/nonexistent/dir/cursor"}, nil,
			"shmio: --cursor-file /nonexistent/dir/cursor: directory /nonexistent/dir does not exist"},
		{"two paths", []string{"tail", path, path}, nil, "shmio: tail: want PATH, got 2 arguments (see shmio tail --help)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runShmio(t, tc.args, tc.opts...)
			if tc.stderr == "not a log" && isNotALog(r.stderr, tc.args[1]) {
				tc.stderr = strings.TrimSuffix(r.stderr, "\n")
			}
			if r.code != 2 || r.stderr != tc.stderr+"\n" || r.stdout != "" {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit 2, stderr %q", r.code, r.stdout, r.stderr, tc.stderr)
			}
		})
	}
	if d := cursorFile(t, cf); d.ID != otherID || d.Cursor != 0 {
		t.Fatalf("a failed run changed the cursor file: %+v", d)
	}
}

func init() {
	// sealLog appends its arguments as frames to the log at os.Args[1] and seals it.
	testHelpers["sealLog"] = func() int {
		l, err := shmio.Open(shmio.Options{Path: os.Args[1], Writable: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer l.Close()
		w, err := l.Writer()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, a := range os.Args[2:] {
			if err := w.Append([]byte(a)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := w.Seal(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
}

// TestTailFollowSealed: following a sealed log prints what it holds and ends.
func TestTailFollowSealed(t *testing.T) {
	path := createLog(t, "64KiB")
	h := startHelper(t, "sealLog", []string{path, "one", "two"})
	if code := h.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("sealLog helper: exit %d: %s", code, h.stderr.String())
	}
	r := runShmio(t, []string{"tail", "-f", "--from", "start", path})
	if r.code != 0 {
		t.Fatalf("tail -f of a sealed log: %+v", r)
	}
	wantLines(t, r.stdout, "one", "two")
	if out := mustRun(t, []string{"stat", path}); !strings.Contains(out, "sealed:           yes (no frame will follow)\n") {
		t.Fatalf("stat of a sealed log:\n%s", out)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and backslash \`, "tab\there\nnew line\r", "\x00\x01\x1f\x7f", "héllo ✓ 日本", "</script>&"} {
		b := appendJSONString(nil, []byte(s))
		var got string
		if err := json.Unmarshal(b, &got); err != nil || got != s {
			t.Errorf("appendJSONString(%q) = %s: decodes to %q, %v", s, b, got, err)
		}
	}
}
