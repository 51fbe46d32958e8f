package main

import (
	"strings"
	"testing"
	"time"
)

// TestAppendShared: two --shared appenders write one log at once, each line once; a plain
// append beside them is refused, naming --shared. The same for a queue (of 1 KiB segments, so
// that the appenders roll it).
func TestAppendShared(t *testing.T) {
	t.Run("log", func(t *testing.T) { testAppendShared(t, createLog(t, "1MiB"), "log") })
	t.Run("queue", func(t *testing.T) { testAppendShared(t, createQueue(t, "1KiB"), "queue") })
}

func testAppendShared(t *testing.T, path, what string) {
	long := strings.Repeat("x", 300)
	a, ina := startAppend(t, path, "--shared", "-q")
	b, inb := startAppend(t, path, "--shared", "-q")
	writeInput(t, ina, "a1"+long+"\na2"+long+"\n")
	writeInput(t, inb, "b1"+long+"\n")
	waitFor(t, 10*time.Second, "both writers to commit", func() bool { return len(strings.Fields(tailAll(t, path, "text"))) == 3 })

	r := runShmio(t, []string{"append", path}, withStdin("exclusive\n"))
	want := "shmio: " + path + ": shared writers hold the " + what + "; append with --shared to write beside them\n"
	if r.code != 2 || r.stderr != want {
		t.Fatalf("exclusive writer: exit %d stderr %q, want %q", r.code, r.stderr, want)
	}
	writeInput(t, inb, "b2"+long+"\n")
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
	if strings.Join(as, " ") != "a1"+long+" a2"+long || strings.Join(bs, " ") != "b1"+long+" b2"+long {
		t.Fatalf("log holds %q", got)
	}
}
