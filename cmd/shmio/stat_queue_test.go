package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestQueueStat(t *testing.T) {
	dir := createQueue(t, "4KiB", "--keep-segments", "50", "--hard-keep-bytes", "1MiB")
	appendLines(t, dir, queueLines(1, 1000)...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "billing", "-n", "100"}), queueLines(1, 100)...)
	wantLines(t, mustRun(t, []string{"tail", dir, "--name", "audit", "-n", "1000"}), queueLines(1, 1000)...)

	s := queueStatJSON(t, dir)
	if s.Kind != "queue" || s.SegmentSize != 4096 || s.Retention.MaxSegments != 50 || s.Retention.HardMaxBytes != 1<<20 ||
		s.RetentionText != "max segments 50, hard max bytes 1048576" || s.Committed != 1000*15 || s.WriterLockHeld {
		t.Fatalf("stat: %+v", s)
	}
	// 1000 frames of 15 bytes, 260 per segment: segments 1-3 sealed, 4 the head, then prepared ones.
	for i, want := range []struct {
		committed int64
		state     string
	}{{260 * 15, "sealed"}, {260 * 15, "sealed"}, {260 * 15, "sealed"}, {220 * 15, "head"}} {
		g := s.Segments[i]
		if g.Number != int64(i+1) || g.FileSize != 4096 || g.Committed != want.committed || g.State != want.state || g.Sealed != (want.state == "sealed") {
			t.Fatalf("segment %d: %+v, want %+v", i+1, g, want)
		}
	}
	for _, g := range s.Segments[4:] {
		if g.State != "prepared" || g.Committed != 0 {
			t.Fatalf("segment after the head: %+v", g)
		}
	}
	if len(s.Readers) != 2 {
		t.Fatalf("readers: %+v", s.Readers)
	}
	audit, billing := s.Readers[0], s.Readers[1]
	if audit.Name != "audit" || audit.LagFrames != 0 || audit.LagBytes != 0 || audit.LagSecs != 0 || audit.Segment != 4 || audit.Offset != 220*15 {
		t.Fatalf("audit reader: %+v", audit)
	}
	if billing.Name != "billing" || billing.LagFrames != 900 || billing.LagBytes != 900*15 || billing.LagSecs <= 0 ||
		billing.Segment != 1 || billing.Offset != 100*15 || billing.Cursor != 1<<32|100*15 || billing.Active {
		t.Fatalf("billing reader: %+v", billing)
	}

	out := mustRun(t, []string{"stat", dir})
	for _, re := range []string{
		`(?m)^retention: +max segments 50, hard max bytes 1048576$`,
		`(?m)^segments: +\d+, \d+KiB of files, 15000 bytes committed$`,
		`(?m)^writer: +none$`,
		`(?m)^ +2 +4KiB +3900 +sealed$`,
		`(?m)^ +4 +4KiB +3300 +head$`,
		`(?m)^  billing +4294968796 \(segment 1 offset 1500\) +900 +13500 +\d+ms +idle$`,
		`(?m)^  audit +17179872484 \(segment 4 offset 3300\) +0 +0 +0s +idle$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stat output lacks %s:\n%s", re, out)
		}
	}

	// A writer holding the queue: stat names its pid.
	pr, pw := io.Pipe()
	app := startShmio(t, []string{"append", dir, "-q"}, withStdinReader(pr))
	fmt.Fprintln(pw, "line-101001")
	waitFor(t, 10*time.Second, "the writer's line", func() bool { return queueStatJSON(t, dir).Committed == 1001*15 })
	s = queueStatJSON(t, dir)
	if !s.WriterLockHeld || s.WriterPID != app.cmd.Process.Pid {
		t.Fatalf("stat with a writer (pid %d): held %v pid %d", app.cmd.Process.Pid, s.WriterLockHeld, s.WriterPID)
	}
	if out := mustRun(t, []string{"stat", dir}); !strings.Contains(out, fmt.Sprintf("writer:        lock held by pid %d\n", app.cmd.Process.Pid)) {
		t.Errorf("stat with a writer:\n%s", out)
	}
	r := runShmio(t, []string{"append", dir}, withStdin("x\n"))
	if r.code != 2 || r.stderr != fmt.Sprintf("shmio: %s: another writer (pid %d) holds the queue; only one writer may append at a time\n", dir, app.cmd.Process.Pid) {
		t.Errorf("second writer: %+v", r)
	}
	pw.Close()
	if code := app.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("append: exit %d: %s", code, app.stderr.String())
	}
	if s := queueStatJSON(t, dir); s.WriterLockHeld || s.Readers[1].LagFrames != 901 {
		t.Fatalf("after the writer exited: %+v", s)
	}
}
