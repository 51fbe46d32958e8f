package shmio

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestFitPayload: a wide log's FitPayload is what fits in its file, and a frame of that size fits.
func TestFitPayload(t *testing.T) {
	l, err := Open(Options{Path: filepath.Join(t.TempDir(), "wide"), Capacity: 1 << 16, Writable: true, WideFrames: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fit := l.FitPayload()
	if want := int(1<<16 - l.Header().DataOffset - 8); fit != want || l.MaxPayload() <= fit {
		t.Fatalf("FitPayload %d, want %d (MaxPayload %d)", fit, want, l.MaxPayload())
	}
	w, err := l.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Allocate(fit + 1); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Allocate(FitPayload+1): %v, want ErrFrameTooLarge", err)
	}
	if _, err := w.Allocate(fit); err != nil {
		t.Fatalf("Allocate(FitPayload): %v", err)
	}
}
