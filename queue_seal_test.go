package shmio

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestQueueSeal: a sealed queue ends. Readers get every frame, then nil from Next and ErrSealed
// from Wait (a reader asleep at the seal is woken); the writer and any later writer are refused.
func TestQueueSeal(t *testing.T) {
	q := qtOpen(t, QueueOptions{SegmentSize: 1 << 10})
	w := qtWriter(t, q)
	sleeper := qtIter(t, q, IteratorOptions{Spin: -1})
	qtAppend(t, w, 0, 60) // several rolls
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	n, _ := qtReadAll(t, sleeper, 0)
	if n != 60 {
		t.Fatalf("read %d frames before the seal, want 60", n)
	}
	woke := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		woke <- sleeper.Wait(ctx)
	}()
	qtAppend(t, w, 60, 5) // allocated, committed by Seal
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("Wait woken by the seal's commit: %v", err) // the 5 frames arrived first
	}
	if n, _ := qtReadAll(t, sleeper, 60); n != 5 {
		t.Fatalf("read %d frames after the seal, want 5", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sleeper.Wait(ctx); !errors.Is(err, ErrSealed) {
		t.Fatalf("Wait at the end of a sealed queue: %v, want ErrSealed", err)
	}
	if f, err := sleeper.Next(); f != nil || err != nil {
		t.Fatalf("Next at the end of a sealed queue: %v, %v", f, err)
	}
	if _, err := w.Allocate(10); !errors.Is(err, ErrSealed) {
		t.Fatalf("Allocate after Seal: %v, want ErrSealed", err)
	}
	fresh := qtIter(t, q, IteratorOptions{})
	if n, _ := qtReadAll(t, fresh, 0); n != 65 {
		t.Fatalf("a new reader read %d frames, want 65", n)
	}
	if err := fresh.Wait(ctx); !errors.Is(err, ErrSealed) {
		t.Fatalf("new reader's Wait: %v, want ErrSealed", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Writer(); !errors.Is(err, ErrSealed) {
		t.Fatalf("Writer on a sealed queue: %v, want ErrSealed", err)
	}
	var fw FrameWriter = w
	_ = fw
	res, err := q.Verify()
	if err != nil || len(res.Problems) != 0 || !res.Sealed || res.Head != -1 || res.Frames != 65 {
		t.Fatalf("Verify of a sealed queue: %+v, %v; want sealed, no head, 65 frames, no problem", res, err)
	}
}
