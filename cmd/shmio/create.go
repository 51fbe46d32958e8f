package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
)

func init() { register(newCreateCmd()) }

// modeValue is a pflag.Value for octal permission bits such as 0640.
type modeValue os.FileMode

func (m *modeValue) String() string { return fmt.Sprintf("%#o", uint32(*m)) }
func (m *modeValue) Type() string   { return "octal" }
func (m *modeValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return fmt.Errorf("invalid mode %q: want octal permission bits such as 0640", s)
	}
	*m = modeValue(n)
	return nil
}

type createOptions struct {
	capacity, segmentSize sizeValue
	mode                  modeValue
	wide, force           bool
	queue                 string
	keepSegs, hardSegs    int
	keepBytes, hardBytes  sizeValue
	keepAge, hardAge      time.Duration
}

func newCreateCmd() *cobra.Command {
	o := createOptions{mode: 0o600}
	cmd := &cobra.Command{
		Use:   "create PATH --capacity SIZE | create --queue DIR --segment-size SIZE",
		Short: "Create an empty log file of a fixed capacity, or a queue of rolling segments",
		Long: `Create an empty log file of a fixed capacity. The whole capacity is reserved up front,
so a full disk or /dev/shm shows up now rather than in the middle of a write.

Sizes take a unit: K, M, G, T, P and E (or KiB, MiB ... EiB) are powers of 1024; KB, MB, GB, TB,
PB and EB are powers of 1000. 64M and 64MiB are 67108864 bytes, 64MB is 64000000.

Frames carry u16 lengths by default (payloads up to 65531 bytes), readable by Node shmio.
--wide uses u32 lengths for larger payloads; Node shmio cannot read such a file.
An existing file is never overwritten unless --force is given, and --force replaces only a
shmio log that no writer holds: anything else (another file, a device, a symlink) is refused.

--queue DIR creates a queue instead: a directory of segment files of --segment-size each (a log
that never fills up: the writer rolls to a new segment when one is full). Retention removes old
segments: --keep-segments, --keep-bytes and --keep-age never remove a segment that a named reader
has not finished; the --hard-* limits remove it anyway. An existing queue is never replaced.`,
		Example: `  shmio create /dev/shm/events --capacity 64MiB
  shmio create /dev/shm/events --capacity 1GiB --mode 0640 --wide --force
  shmio create --queue /dev/shm/events.q --segment-size 64MiB --keep-segments 8 --hard-keep-bytes 4GiB`,
		Args: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("queue") {
				return requireArgs(1, "PATH")(cmd, args)
			}
			if len(args) != 0 {
				return fmt.Errorf("create: --queue DIR takes no PATH argument, got %d (see shmio create --help)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("queue") {
				if cmd.Flags().Changed("capacity") || o.wide || o.force {
					return errors.New("--capacity, --wide and --force are for log files; a queue takes --segment-size")
				}
				return runCreateQueue(cmd, &o)
			}
			for _, n := range []string{"segment-size", "keep-segments", "keep-bytes", "keep-age", "hard-keep-segments", "hard-keep-bytes", "hard-keep-age"} {
				if cmd.Flags().Changed(n) {
					return errors.New("--segment-size and the --keep/--hard-keep flags need --queue DIR")
				}
			}
			if !cmd.Flags().Changed("capacity") {
				return errors.New(`required flag(s) "capacity" not set`)
			}
			return runCreateLog(cmd, args[0], &o)
		},
	}
	f := cmd.Flags()
	f.Var(&o.capacity, "capacity", "file size, with a unit such as 64MiB or 1GiB (required for a log file)")
	f.Var(&o.mode, "mode", "permission bits of the new file, octal")
	f.BoolVar(&o.wide, "wide", false, "u32 frame lengths for payloads over 65531 bytes (not Node shmio compatible)")
	f.BoolVar(&o.force, "force", false, "replace an existing log (not while a writer holds it)")
	f.StringVar(&o.queue, "queue", "", "create a queue (a directory of rolling segments) instead of a log file")
	f.Var(&o.segmentSize, "segment-size", "with --queue: size of each segment file, such as 4MiB (default 64MiB)")
	f.IntVar(&o.keepSegs, "keep-segments", 0, "with --queue: keep at most this many segments (0: no limit)")
	f.Var(&o.keepBytes, "keep-bytes", "with --queue: keep at most this many bytes of segments, such as 1GiB (0: no limit)")
	f.DurationVar(&o.keepAge, "keep-age", 0, "with --queue: remove segments sealed longer ago than this, such as 24h (0: no limit)")
	f.IntVar(&o.hardSegs, "hard-keep-segments", 0, "with --queue: like --keep-segments, even if a named reader still needs them")
	f.Var(&o.hardBytes, "hard-keep-bytes", "with --queue: like --keep-bytes, even if a named reader still needs them")
	f.DurationVar(&o.hardAge, "hard-keep-age", 0, "with --queue: like --keep-age, even if a named reader still needs them")
	return cmd
}

func runCreateLog(cmd *cobra.Command, path string, o *createOptions) error {
	if o.capacity <= 0 {
		return errors.New("--capacity must be greater than zero (for example --capacity 64MiB)")
	}
	if fi, err := os.Lstat(path); err == nil {
		if !o.force {
			return fmt.Errorf("%s: already exists (use --force to replace it)", path)
		}
		if err := removeLog(path, fi); err != nil {
			return err
		}
	}
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: int64(o.capacity), Writable: true, Mode: os.FileMode(o.mode), WideFrames: o.wide})
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("%s: permission denied (cannot create a file in %s)", path, filepath.Dir(path))
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s: cannot create: directory %s does not exist", path, filepath.Dir(path))
		}
		return fmt.Errorf("%s: cannot create a log of %s: %s", path, formatSize(int64(o.capacity)), rootCause(err))
	}
	h, fit := l.Header(), l.FitPayload()
	if err := l.Close(); err != nil {
		return fmt.Errorf("%s: %s", path, rootCause(err))
	}
	frames := "u16 frame lengths (Node shmio compatible)"
	if h.WideFrames {
		frames = "u32 frame lengths (wide; not readable by Node shmio)"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "created %s: capacity %s (%d bytes for frames), %s, max payload %d bytes, mode %#o\n",
		path, formatSize(h.Capacity), h.Capacity-h.DataOffset, frames, fit, uint32(o.mode))
	return nil
}

// removeLog removes the log at path for create --force: only a regular file holding a shmio log
// whose writer lock is free (shmio.Remove, which holds that lock while it unlinks), and says how
// to proceed otherwise.
func removeLog(path string, fi fs.FileInfo) error {
	const how = "; remove it yourself if you mean to replace it"
	switch {
	case fi.IsDir():
		return fmt.Errorf("%s: is a directory; --force only replaces files", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: is a %s, not a shmio log; --force only replaces a log%s", path, fileKind(fi.Mode()), how)
	}
	// shmio.Remove holds the writer lock while it unlinks: no writer can slip in between.
	switch err := shmio.Remove(path); {
	case err == nil:
		return nil
	case errors.Is(err, shmio.ErrBadHeader):
		why := strings.TrimSuffix(strings.TrimPrefix(rootCause(err), shmio.ErrBadHeader.Error()+": "), ": not removed")
		return fmt.Errorf("%s: not a shmio log (%s); --force only replaces a log%s", path, why, how)
	case errors.Is(err, shmio.ErrLocked):
		if l, oerr := shmio.Open(shmio.Options{Path: path}); oerr == nil {
			_, pid, _ := l.WriterStatus()
			l.Close()
			if pid != 0 {
				return fmt.Errorf("%s: a writer (pid %d) holds the log; stop it before replacing the log", path, pid)
			}
		}
		return fmt.Errorf("%s: a writer holds the log; stop it before replacing the log", path)
	default:
		return fmt.Errorf("%s: cannot remove the old log: %s", path, rootCause(err))
	}
}

func runCreateQueue(cmd *cobra.Command, o *createOptions) error {
	dir := o.queue
	if dir == "" {
		return errors.New("--queue needs a directory")
	}
	seg := int64(o.segmentSize)
	if !cmd.Flags().Changed("segment-size") {
		seg = shmio.DefaultSegmentSize
	}
	if seg < shmio.MinSegmentSize || seg > shmio.MaxSegmentSize {
		return fmt.Errorf("--segment-size %s: want %s to %s", formatSize(seg), formatSize(shmio.MinSegmentSize), formatSize(shmio.MaxSegmentSize))
	}
	p := shmio.RetentionPolicy{
		MaxSegments: o.keepSegs, MaxBytes: int64(o.keepBytes), MaxAge: o.keepAge,
		HardMaxSegments: o.hardSegs, HardMaxBytes: int64(o.hardBytes), HardMaxAge: o.hardAge,
	}
	if p.MaxSegments < 0 || p.HardMaxSegments < 0 || p.MaxAge < 0 || p.HardMaxAge < 0 {
		return errors.New("retention limits must not be negative")
	}
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: already exists and is not a directory", dir)
		}
		if shmio.IsQueue(dir) {
			return fmt.Errorf("%s: already a queue (remove the directory to start over)", dir)
		}
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			return fmt.Errorf("%s: directory is not empty; a queue needs a new or empty directory", dir)
		}
	}
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: dir, SegmentSize: seg, Writable: true, Mode: os.FileMode(o.mode), Retention: p})
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%s: permission denied (cannot create a queue in %s)", dir, filepath.Dir(dir))
		}
		return fmt.Errorf("%s: cannot create a queue of %s segments: %s", dir, formatSize(seg), rootCause(err))
	}
	maxPayload := q.MaxPayload()
	if err := q.Close(); err != nil {
		return fmt.Errorf("%s: %s", dir, rootCause(err))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "created queue %s: segments of %s, max payload %d bytes, retention: %s, mode %#o\n",
		dir, formatSize(seg), maxPayload, p, uint32(o.mode))
	return nil
}

// requireArgs is cobra.ExactArgs with a message naming the missing argument.
func requireArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s: want %s, got %d arguments (see shmio %s --help)", cmd.Name(), names, len(args), cmd.Name())
		}
		return nil
	}
}
