package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// termProgress is a one-line progress bar on stderr for long walks (stat, verify). It draws
// only when stderr is a terminal, and only once the work has taken a moment, so small logs and
// scripts never see it.
type termProgress struct {
	w      io.Writer
	label  string
	total  int64
	active bool
	start  time.Time
	last   time.Time
	shown  bool
}

func newTermProgress(label string, total int64) *termProgress {
	return &termProgress{
		w: os.Stderr, label: label, total: total,
		active: total > 0 && term.IsTerminal(int(os.Stderr.Fd())),
		start:  time.Now(),
	}
}

// update redraws the bar for done out of total, at most ten times a second. Call it every few
// thousand items, not per item: it reads the clock.
func (p *termProgress) update(done int64) {
	if !p.active {
		return
	}
	now := time.Now()
	if now.Sub(p.start) < 300*time.Millisecond || now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	frac := float64(done) / float64(p.total)
	frac = min(max(frac, 0), 1)
	const width = 30
	fill := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %s/%s", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		100*frac, humanBytes(done), humanBytes(p.total))
}

// finish erases the bar, if one was drawn.
func (p *termProgress) finish() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// humanBytes prints n with one decimal in the largest binary unit below it ("1.5MiB").
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}
