package shmio

import (
	"path/filepath"
	"sync"
	"testing"
)

// TestCommitTagNeverMissingUnderTaggedCommits: with every commit tagged, Log.CommitTag always
// finds a tag, and tags never go backwards, even while commits pass it mid-read.
func TestCommitTagNeverMissingUnderTaggedCommits(t *testing.T) {
	const commits = 300_000
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: goHeaderSize + commits*5 + 64})
	w := utWriter(t, l)
	if err := w.Append([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := w.CommitTagged(1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := uint64(2); i <= commits; i++ {
			if err := w.Append([]byte{byte(i)}); err != nil {
				t.Error(err)
				return
			}
			if err := w.CommitTagged(i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	r := utReopen(t, path, false, false)
	var calls, missing int
	var last uint64
	for running := true; running; calls++ {
		select {
		case <-done:
			running = false
		default:
		}
		tag, ok, err := r.CommitTag()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			missing++
			continue
		}
		if tag < last {
			t.Fatalf("tag went back from %d to %d", last, tag)
		}
		last = tag
	}
	wg.Wait()
	if missing != 0 {
		t.Fatalf("CommitTag reported no tag %d times in %d calls, with every commit tagged", missing, calls)
	}
	if tag, ok, _ := r.CommitTag(); !ok || tag != commits {
		t.Fatalf("final tag %d, %v; want %d", tag, ok, commits)
	}
}
