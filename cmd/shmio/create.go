package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

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

func newCreateCmd() *cobra.Command {
	var (
		capacity sizeValue
		mode     = modeValue(0o600)
		wide     bool
		force    bool
		qo       createQueueOptions
	)
	cmd := &cobra.Command{
		Use:   "create PATH --capacity SIZE | create --queue DIR --segment-size SIZE",
		Short: "Create an empty log file of a fixed capacity, or a queue of rolling segments",
		Long: `Create an empty log file of a fixed capacity. The whole capacity is reserved up front,
so a full disk or /dev/shm shows up now rather than in the middle of a write.

Frames carry u16 lengths by default (payloads up to 65531 bytes), readable by Node shmio.
--wide uses u32 lengths for larger payloads; Node shmio cannot read such a file.
An existing file is never overwritten unless --force is given.

--queue DIR creates a queue instead: a directory of segment files of --segment-size each (a log
that never fills up: the writer rolls to a new segment when one is full). Retention removes old
segments: --keep-segments, --keep-bytes and --keep-age never remove a segment that a named reader
has not finished; the --hard-* limits remove it anyway. An existing queue is never replaced.`,
		Example: `  shmio create /dev/shm/events --capacity 64MiB
  shmio create /dev/shm/events --capacity 1GiB --mode 0640 --wide --force
  shmio create --queue /dev/shm/events.q --segment-size 64MiB --keep-segments 8 --hard-keep-bytes 4GiB`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("queue") {
				if len(args) != 0 {
					return fmt.Errorf("create: --queue DIR takes no PATH argument, got %d (see shmio create --help)", len(args))
				}
				return nil
			}
			return requireArgs(1, "PATH")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("queue") {
				if cmd.Flags().Changed("capacity") || wide || force {
					return errors.New("--capacity, --wide and --force are for log files; a queue takes --segment-size")
				}
				qo.mode = os.FileMode(mode)
				return runCreateQueue(cmd, qo)
			}
			if qo.anySet(cmd) {
				return errors.New("--segment-size and the --keep/--hard-keep flags need --queue DIR")
			}
			if !cmd.Flags().Changed("capacity") {
				return errors.New(`required flag(s) "capacity" not set`)
			}
			path := args[0]
			if capacity <= 0 {
				return errors.New("--capacity must be greater than zero (for example --capacity 64MiB)")
			}
			if fi, err := os.Lstat(path); err == nil {
				if !force {
					return fmt.Errorf("%s: already exists (use --force to replace it)", path)
				}
				if fi.IsDir() {
					return fmt.Errorf("%s: is a directory; --force only replaces files", path)
				}
				if err := os.Remove(path); err != nil {
					return fmt.Errorf("%s: cannot remove the old file: %w", path, unwrapPathError(err))
				}
			}
			l, err := shmio.Open(shmio.Options{
				Path: path, Capacity: int64(capacity), Writable: true,
				Mode: os.FileMode(mode), WideFrames: wide,
			})
			if err != nil {
				switch {
				case errors.Is(err, fs.ErrPermission):
					return fmt.Errorf("%s: permission denied (cannot create a file in %s)", path, filepath.Dir(path))
				case errors.Is(err, fs.ErrNotExist):
					return fmt.Errorf("%s: cannot create: directory %s does not exist", path, filepath.Dir(path))
				}
				return fmt.Errorf("%s: cannot create a log of %s: %s", path, formatSize(int64(capacity)), rootCause(err))
			}
			h := l.Header()
			maxPayload := l.MaxPayload()
			if err := l.Close(); err != nil {
				return fmt.Errorf("%s: %s", path, rootCause(err))
			}
			frames := "u16 frame lengths (Node shmio compatible)"
			if h.WideFrames {
				frames = "u32 frame lengths (wide; not readable by Node shmio)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s: capacity %s (%d bytes for frames), %s, max payload %d bytes, mode %#o\n",
				path, formatSize(h.Capacity), h.Capacity-h.DataOffset, frames, maxPayload, uint32(mode))
			return nil
		},
	}
	f := cmd.Flags()
	f.Var(&capacity, "capacity", "file size, with a unit such as 64MiB or 1GiB (required for a log file)")
	f.Var(&mode, "mode", "permission bits of the new file, octal")
	f.BoolVar(&wide, "wide", false, "u32 frame lengths for payloads over 65531 bytes (not Node shmio compatible)")
	f.BoolVar(&force, "force", false, "replace an existing file")
	qo.addFlags(f)
	return cmd
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
