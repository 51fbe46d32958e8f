package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/shmio/shmio/internal/bench"
	"golang.org/x/term"
)

// statusLine is a single refreshing line on a terminal (progress, live rates); on anything else it
// writes nothing, so logs and pipes stay clean.
type statusLine struct {
	w     io.Writer
	tty   bool
	width int
	shown bool
}

func newStatusLine(f *os.File) *statusLine {
	s := &statusLine{w: f, width: 80}
	if term.IsTerminal(int(f.Fd())) {
		s.tty = true
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 10 {
			s.width = w
		}
	}
	return s
}

// update replaces the line's text, cut to the terminal width so it never wraps (a wrapped line
// cannot be redrawn with a carriage return).
func (s *statusLine) update(format string, args ...any) {
	if !s.tty {
		return
	}
	line := fmt.Sprintf(format, args...)
	if utf8.RuneCountInString(line) > s.width-1 {
		line = string([]rune(line)[:s.width-1])
	}
	fmt.Fprintf(s.w, "\r%s\x1b[K", line)
	s.shown = true
}

// clear erases the line so normal output continues on a clean line.
func (s *statusLine) clear() {
	if s.tty && s.shown {
		fmt.Fprint(s.w, "\r\x1b[K")
		s.shown = false
	}
}

// benchPad is for aligned plain-text columns with multi-byte characters (µ).
func benchPad(s string, n int) string {
	if k := utf8.RuneCountInString(s); k < n {
		return s + strings.Repeat(" ", n-k)
	}
	return s
}

// Units of the command's rates, counts and latencies: the ones internal/bench uses in its
// descriptions of failures and goals.
var (
	fmtNanos     = bench.FormatNanos
	fmtRate      = bench.FormatRate
	fmtBytesRate = bench.FormatBytesRate
	fmtCount     = bench.FormatCount
	fmtSize      = bench.FormatSize
)

// progressLine prints one line per step on w when the status line cannot (not a terminal), so
// logs of long runs show where they are.
func progressLine(w io.Writer, tty bool, s bench.Step) {
	if !tty {
		fmt.Fprintf(w, "bench [%d/%d] %s\n", s.N, s.Of, s.What)
	}
}

// loadNote is the line printed above the results when the machine was loaded at the start: more
// runnable work than CPUs, so every row, the ceiling included, is lower than on a quiet machine
// and only the ratios within the run compare.
func loadNote(load float64, cpus int) string {
	if load <= float64(cpus) {
		return ""
	}
	return fmt.Sprintf("note: the machine is loaded (load average %.1f > %d CPUs): every row, the ceiling included, runs slower than on a quiet machine; compare the ratios\n", load, cpus)
}

// fmtRatio prints a ratio column: "0.93x", or "-" when unknown.
func fmtRatio(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}
