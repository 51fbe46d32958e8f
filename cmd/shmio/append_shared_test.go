package main

import (
	"strings"
	"testing"
	"time"
)

// TestAppendShared: two --shared appenders write one log at once, each line once; a plain
// append beside them is refused, naming --shared.
func TestAppendShared(t *testing.T) {
	path := createLog(t, "1MiB")
	a, ina := startAppend(t, path, "--shared", "-q")
	b, inb := startAppend(t, path, "--shared", "-q")
	writeInput(t, ina, "a1\na2\n")
	writeInput(t, inb, "b1\n")
	waitFor(t, 10*time.Second, "both writers to commit", func() bool { return len(strings.Fields(tailAll(t, path, "text"))) == 3 })

	r := runShmio(t, []string{"append", path}, withStdin("exclusive\n"))
	want := "shmio: " + path + ": shared writers hold the log; append with --shared to write beside them\n"
	if r.code != 2 || r.stderr != want {
		t.Fatalf("exclusive writer: exit %d stderr %q, want %q", r.code, r.stderr, want)
	}
	writeInput(t, inb, "b2\n")
	ina.Close()
	inb.Close()
	for _, p := range []*proc{a, b} {
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("writer exit %d: %s", code, p.stderr.String())
		}
	}
	got := strings.Fields(tailAll(t, path, "text"))
	var as, bs []string
	for _, s := range got {
		if s[0] == 'a' {
			as = append(as, s)
		} else {
			bs = append(bs, s)
		}
	}
	if strings.Join(as, " ") != "a1 a2" || strings.Join(bs, " ") != "b1 b2" {
		t.Fatalf("log holds %q", got)
	}
}
