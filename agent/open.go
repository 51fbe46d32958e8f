package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shmio/shmio"
)

// Logs are the prompt and response logs (or queues) of an agent, opened from paths: pass their
// fields to Config and Close them after the Agent stops.
type Logs struct {
	Input          shmio.FrameIterator                                 // over the prompt log, from its start
	Output         shmio.FrameWriter                                   // the response log's writer
	Outcomes       shmio.FrameIterator                                 // over the response log
	Lag            func(cursor int64) (frames, bytes int64, err error) // a queue input's lag (nil for a log)
	InputID        string                                              // Config.InputID
	MaxRecordBytes int                                                 // Config.MaxRecordBytes
	closers        []func() error
}

// Close closes what OpenLogs opened, in reverse order.
func (l *Logs) Close() error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i]())
	}
	return errors.Join(errs...)
}

// OpenLogs opens the prompt log in and the response log out, creating them when missing: a
// directory is a queue (an empty one becomes one), a missing file becomes a log of capacity
// bytes. Errors name the path and wrap the library's (shmio.ErrLocked when another process
// writes the response log).
func OpenLogs(in, out string, capacity int64) (_ *Logs, err error) {
	l := &Logs{}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	wrap := func(path string, err error) error { return &PathError{path, err} }
	src, err := openOrCreate(in, capacity, false)
	if err != nil {
		return nil, wrap(in, err)
	}
	l.closers = append(l.closers, src.Close)
	if l.Input, err = src.OpenReader(shmio.IteratorOptions{}); err != nil {
		return nil, wrap(in, err)
	}
	l.closers = append(l.closers, l.Input.Close)
	// Lag is exact for logs and queues alike: Store.Distance walks the frames between.
	l.Lag = func(c int64) (frames, bytes int64, err error) { return src.Distance(c, -1) }
	switch s := src.(type) {
	case *shmio.Queue:
		if abs, err := filepath.Abs(in); err == nil {
			l.InputID = "queue:" + abs
		}
	case *shmio.Log:
		if id := s.Header().ID; id != 0 {
			l.InputID = strconv.FormatUint(id, 16)
		}
	}
	dst, err := openOrCreate(out, capacity, true)
	if err != nil {
		return nil, wrap(out, err)
	}
	l.closers = append(l.closers, dst.Close)
	if l.Output, err = dst.OpenWriter(); err != nil {
		return nil, wrap(out, err)
	}
	l.closers = append(l.closers, l.Output.Close)
	if l.Outcomes, err = dst.OpenReader(shmio.IteratorOptions{}); err != nil {
		return nil, wrap(out, err)
	}
	l.closers = append(l.closers, l.Outcomes.Close)
	l.MaxRecordBytes = dst.MaxPayload()
	return l, nil
}

// PathError is an error of OpenLogs about the log or queue at Path.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// openOrCreate opens the log or queue at path: a directory is a queue (made when empty), a
// missing path becomes a log of capacity bytes.
func openOrCreate(path string, capacity int64, writable bool) (shmio.Store, error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: path, Writable: writable})
		if errors.Is(err, fs.ErrNotExist) && !writable { // an empty directory: make it a queue
			q, err = shmio.OpenQueue(shmio.QueueOptions{Dir: path, Writable: true})
		}
		if err != nil {
			return nil, err
		}
		return q, nil
	case errors.Is(err, fs.ErrNotExist):
		l, err := shmio.Open(shmio.Options{Path: path, Capacity: capacity, Writable: true})
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	return shmio.OpenStore(path, shmio.StoreOptions{Writable: writable})
}
