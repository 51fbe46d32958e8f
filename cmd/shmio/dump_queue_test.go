package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

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
