package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/internal/frameinput"
	"github.com/spf13/cobra"
)

func init() { register(newAppendCmd()) }

type appendOptions struct {
	raw   bool
	file  string
	flush time.Duration
	batch int
	quiet bool
	share bool // --shared

	schema schemaOptions // --schema, --type
}

func newAppendCmd() *cobra.Command {
	var o appendOptions
	cmd := &cobra.Command{
		Use:   "append PATH|DIR",
		Short: "Append one frame per input line (or length-prefixed records with --raw)",
		Long: `Append frames to a log from standard input (or --file): one frame per line, without its
newline. Empty lines are skipped, because shmio frames cannot be empty; the number skipped is
reported on stderr.

With --raw the input is a sequence of records, each a 4-byte little-endian length followed by
that many payload bytes (records of length 0 are skipped like empty lines).

Frames are committed (made visible to readers) in batches of --batch, whenever the input
pauses, and at least every --flush, so "shmio tail -f" sees each line promptly. Ctrl-C commits
what was read before exiting. Only one writer may append to a log at a time, unless every
writer uses --shared: then any number append together, each commit (batch) contiguous; a
batch holds the log's append lock from its first frame to its commit (at most --flush).

Given a queue directory (see create --queue), frames go to the queue, which rolls to a new
segment whenever one is full, so the input may be longer than any one segment.` + schemaHelp + `
With --schema, each line is one JSON object, appended encoded as --type (a union as large as
the union). A line that does not match the type is refused with its line number: the frames
before it are committed, nothing after it is read, and append exits non-zero.`,
		Example: `  seq 1 1000 | shmio append /dev/shm/events
  tail -F /var/log/syslog | shmio append /dev/shm/syslog --flush 50ms
  shmio append /dev/shm/events --raw --file records.bin
  seq 1 1000000 | shmio append /dev/shm/events.q
  echo '{"timestamp":1,"level":"Info","message":"hi"}' | shmio append /dev/shm/events --schema types.json --type LogEvent`,
		Args: requireArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAppend(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.raw, "raw", false, "input is records of a u32 little-endian length and that many bytes")
	f.StringVar(&o.file, "file", "", "read from this file instead of standard input")
	f.DurationVar(&o.flush, "flush", 10*time.Millisecond, "commit pending frames at least this often")
	f.IntVar(&o.batch, "batch", 256, "commit after this many frames")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not print the summary line on stderr")
	f.BoolVar(&o.share, "shared", false, "append beside other shared writers of the log or queue (each commit stays contiguous); not with an exclusive writer")
	addSchemaFlags(cmd, &o.schema)
	return cmd
}

// appender is the writer shared by the input loop and the flush timer: the Writer is for one
// goroutine at a time, so both take mu.
type appender struct {
	mu        sync.Mutex
	w         shmio.FrameWriter // a log's or a queue's writer
	t         *target
	pending   int   // frames appended but not committed
	frames    int64 // frames committed
	bytes     int64 // payload bytes committed
	pendBytes int64
	skipped   int64 // empty inputs
	err       error // first commit error, reported by the input loop
}

// reportLocked prints the skipped-input warning and, unless quiet, the summary line.
func (a *appender) reportLocked(path, unit string, quiet bool) {
	if a.skipped > 0 {
		fmt.Fprintf(os.Stderr, "shmio: skipped %d empty %s (shmio frames cannot be empty)\n", a.skipped, plural(a.skipped, unit))
	}
	if !quiet {
		fmt.Fprintf(os.Stderr, "shmio: appended %d %s (%d payload bytes) to %s\n", a.frames, plural(a.frames, "frame"), a.bytes, path)
	}
}

// append appends p and returns how many frames now wait for a commit.
func (a *appender) append(p []byte) (_ int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer guardFault(debug.SetPanicOnFault(true), &err)
	if a.err != nil {
		return a.pending, a.err
	}
	if err := a.w.Append(p); err != nil {
		return a.pending, err
	}
	a.pending++
	a.pendBytes += int64(len(p))
	return a.pending, nil
}

func (a *appender) commit() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.commitLocked()
}

func (a *appender) commitLocked() (err error) {
	defer guardFault(debug.SetPanicOnFault(true), &err)
	if a.err != nil || a.pending == 0 {
		return a.err
	}
	if err := a.w.Commit(); err != nil {
		a.err = err
		return err
	}
	a.frames += int64(a.pending)
	a.bytes += a.pendBytes
	a.pending, a.pendBytes = 0, 0
	return nil
}

// guardFault, deferred after debug.SetPanicOnFault(true), turns a fault on the log's mapping into
// an error: the writer's copy into the mapping is unguarded in the library (it is the hot path),
// and a log truncated under append must end it with one line, not a goroutine dump.
func guardFault(old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		if re, ok := r.(runtime.Error); ok {
			if _, fault := re.(interface{ Addr() uintptr }); fault {
				*err = fmt.Errorf("%w: %v", shmio.ErrMappingGone, re)
				return
			}
		}
		panic(r)
	}
}

func (a *appender) close() (err error) {
	defer guardFault(debug.SetPanicOnFault(true), &err)
	return a.w.Close()
}

func runAppend(cmd *cobra.Command, path string, o appendOptions) (err error) {
	// Closing the writer and the log after a truncation touches the mapping too.
	defer guardFault(debug.SetPanicOnFault(true), &err)
	if o.flush <= 0 {
		return errors.New("--flush must be positive (for example 10ms)")
	}
	if o.batch <= 0 {
		return errors.New("--batch must be positive")
	}
	typ, err := o.schema.load()
	if err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	inName := "standard input"
	if o.file != "" {
		f, err := os.Open(o.file)
		if err != nil {
			return fmt.Errorf("--file %s: %w", o.file, unwrapPathError(err))
		}
		defer f.Close()
		in, inName = f, o.file
	}
	t, err := openTarget(path, true)
	if err != nil {
		return err
	}
	defer t.Close()
	maxPayload := t.s.MaxPayload()
	var events *eventEncoder // with --schema
	if typ != nil {
		if events, err = newEventEncoder(typ, o.raw, maxPayload); err != nil {
			return err
		}
	}
	var w shmio.FrameWriter
	if o.share {
		w, err = openSharedWriter(t.s)
	} else {
		w, err = t.s.OpenWriter()
	}
	if err != nil {
		return t.lockedWriterError(err)
	}
	a := &appender{w: w, t: t}
	unit := "line"
	if o.raw {
		unit = "record"
	}

	// The flush timer bounds how long a frame waits for its commit while the input loop is
	// blocked inside a read of a long line or a slow --raw record.
	stopFlush := make(chan struct{})
	var flushDone sync.WaitGroup
	flushDone.Add(1)
	go func() {
		defer flushDone.Done()
		t := time.NewTicker(o.flush)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = a.commit()
			case <-stopFlush:
				return
			}
		}
	}()

	// Ctrl-C or SIGTERM while blocked reading: commit what was read, close the writer, and
	// exit as a killed process would (130/143), since a blocked read of standard input cannot
	// be interrupted. The lock stays held: the input loop must not append after this.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig := <-sigs
		a.mu.Lock()
		err := a.commitLocked()
		if err == nil {
			err = a.close()
		}
		a.reportLocked(path, unit, o.quiet)
		if err != nil {
			fmt.Fprintf(os.Stderr, "shmio: %s: %s\n", path, rootCause(err))
		}
		code := 130
		if sig == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}()

	br := bufio.NewReaderSize(in, 256<<10)
	var readErr error
	onFrame := func(p []byte, n int64) error {
		if len(p) == 0 {
			a.mu.Lock()
			a.skipped++
			a.mu.Unlock()
			return nil
		}
		if events != nil {
			var err error
			if p, err = events.encode(path, inName, p, n); err != nil {
				return err
			}
		}
		pending, err := a.append(p)
		if err != nil {
			return frameError(a.t, inName, o.raw, n, len(p), err)
		}
		// Commit in batches, and whenever the next read may block, so nothing read sits
		// uncommitted while input is idle.
		if pending >= o.batch || br.Buffered() == 0 {
			return a.commit()
		}
		return nil
	}
	if o.raw {
		readErr = frameinput.Records(br, inName, maxPayload, onFrame)
	} else {
		readErr = frameinput.Lines(br, inName, maxPayload, onFrame)
	}
	close(stopFlush)
	flushDone.Wait()
	commitErr := a.commit()
	failed := readErr != nil || commitErr != nil
	a.mu.Lock()
	a.reportLocked(path, unit, o.quiet || failed) // an error is one line; it says what was committed
	a.mu.Unlock()
	if readErr != nil {
		committed := "nothing was committed"
		if a.frames > 0 {
			committed = fmt.Sprintf("the %d %s before it were committed", a.frames, plural(a.frames, "frame"))
			if a.frames == 1 {
				committed = "the frame before it was committed"
			}
		}
		return fmt.Errorf("%w; %s", readErr, committed)
	}
	if commitErr != nil {
		return fmt.Errorf("%s: commit: %s", path, rootCause(commitErr))
	}
	if err := a.close(); err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	return nil
}

// frameError explains why the n-th input line or record could not be appended.
func frameError(t *target, inName string, raw bool, n int64, size int, err error) error {
	path := t.path
	what := fmt.Sprintf("line %d", n)
	if raw {
		what = fmt.Sprintf("record %d", n)
	}
	switch {
	case errors.Is(err, shmio.ErrMappingGone):
		return fmt.Errorf("%s: %s of %s: %s", path, what, inName, rootCause(err))
	case errors.Is(err, shmio.ErrFull) && t.q != nil:
		// A queue is full only when it cannot roll to a new segment: say why (a full disk, say).
		return fmt.Errorf("%s: %s of %s could not be appended: %s", path, what, inName, strings.TrimPrefix(rootCause(err), shmio.ErrFull.Error()+": "))
	case errors.Is(err, shmio.ErrFull):
		return fmt.Errorf("%s: log is full: %s (%d bytes) of %s does not fit", path, what, size, inName)
	case errors.Is(err, shmio.ErrFrameTooLarge):
		return fmt.Errorf("%s: %s of %s is %d bytes, too large for a frame of this log (%s)", path, what, inName, size, rootCause(err))
	}
	return fmt.Errorf("%s: %s of %s: %s", path, what, inName, rootCause(err))
}

// openSharedWriter opens a shared writer on a log (Log.SharedWriter) or a queue
// (Queue.SharedWriter).
func openSharedWriter(s shmio.Store) (shmio.FrameWriter, error) {
	switch s := s.(type) {
	case *shmio.Log:
		return s.SharedWriter()
	case *shmio.Queue:
		return s.SharedWriter()
	}
	return s.OpenWriter()
}
