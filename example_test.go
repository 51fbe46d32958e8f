package shmio_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/shmio/shmio"
)

// tempLog returns a path for a new log and a function that removes it. Real programs would use a
// path under /dev/shm.
func tempLog() (string, func()) {
	dir, err := os.MkdirTemp("", "shmio-example-")
	if err != nil {
		log.Fatal(err)
	}
	return filepath.Join(dir, "events"), func() { os.RemoveAll(dir) }
}

func ExampleOpen() {
	path, cleanup := tempLog()
	defer cleanup()

	// The writing process creates the log (atomically, mode 0600) with a fixed capacity.
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	h := l.Header()
	fmt.Println("data offset:", h.DataOffset, "capacity:", h.Capacity, "committed:", h.Size-h.DataOffset)

	// Readers open the same path without Writable.
	r, err := shmio.Open(shmio.Options{Path: path})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	_, err = r.Writer()
	fmt.Println(errors.Is(err, shmio.ErrReadOnly))
	// Output:
	// data offset: 192 capacity: 1048576 committed: 0
	// true
}

func ExampleWriter() {
	path, cleanup := tempLog()
	defer cleanup()
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()

	// Zero-copy: fill the frame in place in the shared mapping.
	p, err := w.Allocate(5)
	if err != nil {
		log.Fatal(err)
	}
	copy(p, "hello")
	// Or copy a payload in.
	if err := w.Append([]byte("world")); err != nil {
		log.Fatal(err)
	}
	// Nothing is visible to readers until Commit publishes both frames at once.
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for frame, err := range it.All() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s ", frame)
	}
	fmt.Println("cursor", it.Cursor())
	// Output: hello world cursor 18
}

func ExampleIterator_NextBatch() {
	path, cleanup := tempLog()
	defer cleanup()
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		log.Fatal(err)
	}
	for i := range 10 {
		if err := w.Append([]byte{byte('a' + i)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	// Reusing the batch slice makes reading allocation-free.
	batch := make([][]byte, 0, 4)
	for {
		batch, err = it.NextBatch(batch[:0], shmio.BatchOptions{MaxFrames: 4})
		if err != nil {
			log.Fatal(err)
		}
		if len(batch) == 0 {
			break // nothing more committed; Wait would block for more
		}
		fmt.Printf("%d frames: %q\n", len(batch), batch)
	}
	// Output:
	// 4 frames: ["a" "b" "c" "d"]
	// 4 frames: ["e" "f" "g" "h"]
	// 2 frames: ["i" "j"]
}

func ExampleIterator_Prev() {
	path, cleanup := tempLog()
	defer cleanup()
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three"} {
		if err := w.Append([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	// Read the log backward from the committed end.
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := it.Seek(0, 2 /* io.SeekEnd */); err != nil {
		log.Fatal(err)
	}
	for {
		frame, err := it.Prev()
		if err != nil {
			log.Fatal(err)
		}
		if frame == nil {
			break
		}
		fmt.Println(it.Cursor(), string(frame))
	}
	// Output:
	// 14 three
	// 7 two
	// 0 one
}

func ExampleIterator_Wait() {
	path, cleanup := tempLog()
	defer cleanup()
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	// A reader blocks until the writer (here a goroutine; usually another process) commits.
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w, err := l.Writer()
		if err != nil {
			log.Fatal(err)
		}
		defer w.Close()
		for _, s := range []string{"tick", "tock"} {
			if err := w.Append([]byte(s)); err != nil {
				log.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				log.Fatal(err)
			}
		}
	}()
	ctx := context.Background()
	for n := 0; n < 2; {
		if err := it.Wait(ctx); err != nil {
			log.Fatal(err)
		}
		for frame, err := range it.All() {
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(string(frame))
			n++
		}
	}
	<-done // the log must not close under the writer
	// Output:
	// tick
	// tock
}

func ExampleWriter_CommitTagged() {
	path, cleanup := tempLog()
	defer cleanup()
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		log.Fatal(err)
	}
	// Store, say, an upstream sequence number with the frames it covers, in one atomic commit.
	if err := w.Append([]byte("event 41")); err != nil {
		log.Fatal(err)
	}
	if err := w.CommitTagged(41); err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.CommitTag())
	// A plain commit moves past the tagged end: no tag for the new end.
	if err := w.Append([]byte("event 42")); err != nil {
		log.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.CommitTag())
	// Output:
	// 41 true <nil>
	// 0 false <nil>
}

func ExampleErrorCode() {
	path, cleanup := tempLog()
	defer cleanup()
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 4096, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		log.Fatal(err)
	}
	for {
		if err = w.Append(make([]byte, 1000)); err != nil {
			break
		}
	}
	fmt.Println(errors.Is(err, shmio.ErrFull), shmio.ErrorCode(err))
	_, err = l.NewIterator(shmio.IteratorOptions{StartCursor: 3})
	fmt.Println(errors.Is(err, shmio.ErrCursor), shmio.ErrorCode(err))
	// Output:
	// true ERR_SHM_EXHAUSTED
	// true ERR_SHM_CURSOR
}
