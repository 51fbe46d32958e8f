package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/shmio/shmio"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// createQueueOptions are create's --queue flags.
type createQueueOptions struct {
	dir                    string
	segmentSize            sizeValue
	mode                   os.FileMode
	keepSegments, hardSegs int
	keepBytes, hardBytes   sizeValue
	keepAge, hardAge       time.Duration
}

var queueFlagNames = []string{"segment-size", "keep-segments", "keep-bytes", "keep-age", "hard-keep-segments", "hard-keep-bytes", "hard-keep-age"}

func (o *createQueueOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.dir, "queue", "", "create a queue (a directory of rolling segments) instead of a log file")
	f.Var(&o.segmentSize, "segment-size", "with --queue: size of each segment file, such as 4MiB (default 64MiB)")
	f.IntVar(&o.keepSegments, "keep-segments", 0, "with --queue: keep at most this many segments (0: no limit)")
	f.Var(&o.keepBytes, "keep-bytes", "with --queue: keep at most this many bytes of segments, such as 1GiB (0: no limit)")
	f.DurationVar(&o.keepAge, "keep-age", 0, "with --queue: remove segments sealed longer ago than this, such as 24h (0: no limit)")
	f.IntVar(&o.hardSegs, "hard-keep-segments", 0, "with --queue: like --keep-segments, even if a named reader still needs them")
	f.Var(&o.hardBytes, "hard-keep-bytes", "with --queue: like --keep-bytes, even if a named reader still needs them")
	f.DurationVar(&o.hardAge, "hard-keep-age", 0, "with --queue: like --keep-age, even if a named reader still needs them")
}

func (o *createQueueOptions) anySet(cmd *cobra.Command) bool {
	for _, n := range queueFlagNames {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

func (o *createQueueOptions) policy() shmio.RetentionPolicy {
	return shmio.RetentionPolicy{
		MaxSegments: o.keepSegments, MaxBytes: int64(o.keepBytes), MaxAge: o.keepAge,
		HardMaxSegments: o.hardSegs, HardMaxBytes: int64(o.hardBytes), HardMaxAge: o.hardAge,
	}
}

func runCreateQueue(cmd *cobra.Command, o createQueueOptions) error {
	dir := o.dir
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
	p := o.policy()
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
	q, err := shmio.OpenQueue(shmio.QueueOptions{Dir: dir, SegmentSize: seg, Writable: true, Mode: o.mode, Retention: p})
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrPermission):
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
