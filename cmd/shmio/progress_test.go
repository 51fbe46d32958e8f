package main

import (
	"bytes"
	"testing"
	"time"
)

func TestTermProgress(t *testing.T) {
	// Tests do not run on a terminal: the bar stays off.
	if p := newTermProgress("x", 100); p.active {
		t.Fatal("progress bar active without a terminal")
	}

	var buf bytes.Buffer
	p := &termProgress{w: &buf, label: "verifying", total: 4 << 20, active: true, start: time.Now().Add(-time.Second)}
	p.update(1 << 20)
	if want := "\rverifying [=======                       ]  25% 1.0MiB/4.0MiB"; buf.String() != want {
		t.Fatalf("bar %q, want %q", buf.String(), want)
	}
	p.update(2 << 20) // within 100ms of the last draw: skipped
	if buf.Len() != len("\rverifying [=======                       ]  25% 1.0MiB/4.0MiB") {
		t.Fatalf("redrew too soon: %q", buf.String())
	}
	buf.Reset()
	p.finish()
	if buf.String() != "\r\033[K" {
		t.Fatalf("finish wrote %q", buf.String())
	}

	// Nothing is drawn in the first moments, so quick walks never flash a bar.
	buf.Reset()
	p = &termProgress{w: &buf, label: "x", total: 10, active: true, start: time.Now()}
	p.update(5)
	p.finish()
	if buf.Len() != 0 {
		t.Fatalf("drew %q for a quick walk", buf.String())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1536: "1.5KiB", 5 << 30: "5.0GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
