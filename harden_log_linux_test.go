//go:build linux

package shmio

// Linux-only tests of issue 11 (hardening), log side: real processes, O_TMPFILE, device nodes.

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

func init() {
	xpRoles["createPause"] = xpCreatePauseChild
}

// xpCreatePauseChild creates the log at PATH (CAPACITY bytes) and pauses, forever, once the
// temporary file is full-size: the parent kills it there. NOTMPFILE=1 forces a named temporary.
func xpCreatePauseChild() error {
	noTmpfile = xpEnv("NOTMPFILE") == "1"
	createTestHook = func() {
		xpReport(map[string]any{"made": true})
		select {}
	}
	_, err := Open(Options{Path: xpEnv("PATH"), Capacity: xpEnvInt("CAPACITY", 1<<20), Writable: true})
	return err
}

// TestCreateKilledLeavesNoTempFile: a process killed with kill -9 in the middle of creating a log
// (temporary file full-size, not yet linked) leaves no full-size file behind once the next log is
// created in that directory: with O_TMPFILE none is ever named, without it the next create
// removes the dead process's temporary file.
func TestCreateKilledLeavesNoTempFile(t *testing.T) {
	const capacity = 8 << 20
	for _, named := range []bool{false, true} {
		dir := xpDir(t)
		c := xpStart(t, "createPause", "PATH="+filepath.Join(dir, "victim"), "CAPACITY=8388608", "NOTMPFILE="+map[bool]string{true: "1"}[named])
		c.line(10 * time.Second)
		before := utDirNames(t, dir)
		c.kill9()
		if named && len(before) != 1 {
			t.Fatalf("named temporary: directory holds %q while the child pauses, want its temporary file", before)
		}
		if !named && len(before) != 0 {
			t.Fatalf("O_TMPFILE: directory holds %q while the child pauses, want nothing named", before)
		}
		l, err := Open(Options{Path: filepath.Join(dir, "next"), Capacity: 4096, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if names := utDirNames(t, dir); !slices.Equal(names, []string{"next"}) {
			t.Errorf("named=%v: after the next create the directory holds %q, want only \"next\"", named, names)
		}
		var total int64
		filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
			if fi != nil && fi.Mode().IsRegular() {
				total += fi.Size()
			}
			return nil
		})
		if total >= capacity {
			t.Errorf("named=%v: %d bytes left in the directory", named, total)
		}
	}
}

// TestStaleTempOfLiveProcessKept: a temporary file whose process is alive (this one, or another)
// is not removed, nor are files that merely look alike.
func TestStaleTempOfLiveProcessKept(t *testing.T) {
	dir := t.TempDir()
	keep := []string{
		".a.tmp-1-0123456789abcdef",                                 // pid 1 is alive
		".b.tmp-" + strconv.Itoa(os.Getpid()) + "-0123456789abcdef", // this process
		"c.tmp-999999999-0123456789abcdef",                          // no leading dot
		".d.tmp-999999999-xyz",                                      // not ours
		".e.tmp-recycle-999999999",                                  // the queue's
	}
	for _, n := range keep {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".f.tmp-999999999-0123456789abcdef"), 0o700); err != nil {
		t.Fatal(err)
	}
	dead := ".g.tmp-999999999-0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, dead), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l := utOpen(t, Options{Path: filepath.Join(dir, "log")})
	l.Close()
	names := utDirNames(t, dir)
	if slices.Contains(names, dead) {
		t.Errorf("%s of a dead process was not removed", dead)
	}
	for _, n := range append(keep, ".f.tmp-999999999-0123456789abcdef") {
		if !slices.Contains(names, n) {
			t.Errorf("%s was removed", n)
		}
	}
}
