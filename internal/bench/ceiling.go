package bench

// The "ceiling" row of shmio bench: the same producer/consumer work as the shmio row, done by a
// bare loop over a raw shared mapping of a /dev/shm file, without the library. The producer
// writes [u16 len][payload][u16 len] frames back to back (payload filled as for every other row:
// template, sequence number, complemented tail) and publishes the end with an atomic store every
// Config.CommitEvery frames; each consumer polls the end with atomic loads and checks every frame's
// lengths and sequence number with the same seqCheck as the other rows. A consumer with nothing
// to read waits as the shmio consumers do (spin for their Spin, 20µs by default and not at all
// when the run has more processes than CPUs, then sleep on a futex word the producer bumps after
// a publish when the sleepers flag is up): a consumer that spun or napped on a loaded machine
// would take the CPU from the producer and measure the scheduler, not the loop. Only syscall glue is shared with
// the library (internal/mmap, internal/futex, internal/fallocate). What shmio does beyond this (header, bounds,
// errors) is what the VS CEILING column prices.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/internal/fallocate"
	"github.com/shmio/shmio/internal/futex"
	"github.com/shmio/shmio/internal/mmap"
)

func init() {
	transports["ceiling"] = ceilingPlan
	childRoles["ceiling-producer"] = runCeilingProducer
	childRoles["ceiling-consumer"] = runCeilingConsumer
}

// The raw file: the end (absolute offset, u64) at 0, the futex word at 64 and the sleepers flag
// at 68 on their own cache line, frames from 128.
const (
	ceilingEndOff      = 0
	ceilingWakeOff     = 64
	ceilingSleepersOff = 68
	ceilingData        = 128
)

type ceilingConfig struct {
	Path        string `json:"path"`
	Frames      int64  `json:"frames"`
	Size        int    `json:"size"`
	CommitEvery int    `json:"commit_every"`
	Batch       int    `json:"batch"` // frames a consumer checks per call, as the shmio consumer's batches
	// Spin is how long a consumer that finds nothing new polls before it sleeps on the futex: the
	// shmio consumers' Spin (0: the library's DefaultSpin; negative: sleep at once).
	Spin time.Duration `json:"spin"`
}

// ceilingPlan creates the raw file for one ceiling run, removed by the plan's cleanup.
func ceilingPlan(r *runner, n int64, size, readers int) (plan, error) {
	r.nlogs++
	path := tempLogPath(r.dir, "ceiling", r.nlogs)
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		// Reserve the pages, as creating a log does: readers mapping a sparse file would
		// fault on every page of it during the run instead of before.
		// The size of the shmio row's log (more than the frames need), so both map alike.
		size := logCapacity(n, size)
		if err = f.Truncate(size); err == nil {
			err = fallocate.Reserve(int(f.Fd()), size)
		}
		f.Close()
	}
	if err != nil {
		os.Remove(path)
		return plan{}, fmt.Errorf("creating the ceiling run's file: %w", err)
	}
	spin := r.consumerSpin(readers)
	cfg := ceilingConfig{Path: path, Frames: n, Size: size, CommitEvery: r.cfg.CommitEvery, Batch: shmBatch, Spin: spin}
	return plan{prodRole: "ceiling-producer", consRole: "ceiling-consumer", prodCfg: cfg, consCfg: cfg, spin: spin,
		cleanup: func() { os.Remove(path) }}, nil
}

// mapCeiling maps the whole raw file shared and populated, as the shmio children prefault: the
// producer writable, a consumer read-only plus a writable page for the header words (it sets the
// sleepers flag), as a shmio reader maps a log.
func mapCeiling(path string, producer bool) (mem, hdr []byte, unmap func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, nil, err
	}
	if mem, err = mmap.Map(int(f.Fd()), int(fi.Size()), producer, true); err != nil {
		return nil, nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	if producer {
		return mem, mem, func() { mmap.Unmap(mem) }, nil
	}
	if hdr, err = mmap.Map(int(f.Fd()), ceilingData, true, false); err != nil {
		mmap.Unmap(mem)
		return nil, nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return mem, hdr, func() { mmap.Unmap(mem); mmap.Unmap(hdr) }, nil
}

func ceilingWords(mem []byte) (end *atomic.Uint64, wake, sleepers *atomic.Uint32) {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[ceilingEndOff])),
		(*atomic.Uint32)(unsafe.Pointer(&mem[ceilingWakeOff])),
		(*atomic.Uint32)(unsafe.Pointer(&mem[ceilingSleepersOff]))
}

// ceilingPublish stores the new end and wakes sleeping consumers, if any said they sleep.
func ceilingPublish(end *atomic.Uint64, wake, sleepers *atomic.Uint32, pos int) {
	end.Store(uint64(pos))
	if sleepers.Load() != 0 && sleepers.CompareAndSwap(1, 0) {
		wake.Add(1)
		futex.Wake(wake)
	}
}

func runCeilingProducer(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg ceilingConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	mem, _, unmap, err := mapCeiling(cfg.Path, true)
	if err != nil {
		return err
	}
	defer unmap()
	end, wake, sleepers := ceilingWords(mem)
	tmpl := benchTemplate(cfg.Size)
	flen := cfg.Size + 4
	if int64(len(mem)) < ceilingData+cfg.Frames*int64(flen) {
		return fmt.Errorf("%s is too small for %d frames", cfg.Path, cfg.Frames)
	}
	out.ready()

	u0, start := selfUsage(), nowNanos()
	// The size check above proves every store in bounds: no check per frame, as in C.
	base := unsafe.Pointer(unsafe.SliceData(mem))
	pos, batch := ceilingData, 0
	for seq := range uint64(cfg.Frames) {
		f := unsafe.Add(base, pos)
		*(*uint16)(f) = uint16(flen)
		p := unsafe.Slice((*byte)(unsafe.Add(f, 2)), cfg.Size)
		copy(p, tmpl)
		benchFill(p, seq)
		*(*uint16)(unsafe.Add(f, 2+cfg.Size)) = uint16(flen)
		pos += flen
		if batch++; batch == cfg.CommitEvery {
			batch = 0
			ceilingPublish(end, wake, sleepers, pos)
		}
	}
	ceilingPublish(end, wake, sleepers, pos)
	out.emit("result", producerResult{Frames: cfg.Frames, StartNs: start, EndNs: nowNanos(), usage: selfUsage().since(u0)})
	return nil
}

func runCeilingConsumer(ctx context.Context, raw json.RawMessage, out *childOut) error {
	var cfg ceilingConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	mem, hdr, unmap, err := mapCeiling(cfg.Path, false)
	if err != nil {
		return err
	}
	defer unmap()
	end, wake, sleepers := ceilingWords(hdr)
	spin := cfg.Spin
	if spin == 0 {
		spin = shmio.DefaultSpin
	}
	chk := seqCheck{size: cfg.Size}
	dst := make([][]byte, 0, cfg.Batch)
	last := uint64(cfg.Frames - 1)
	out.ready()

	u0 := selfUsage()
	var start int64
	pos, polls, idleSince := ceilingData, 0, int64(0)
	for done := cfg.Frames == 0; !done; {
		e := int(end.Load())
		if e <= pos { // nothing new (the end is 0 until the first publish)
			// Spin, reading the clock every 64 polls as the library's Wait does.
			if polls++; spin > 0 && polls&63 != 0 {
				continue
			}
			now := nowNanos()
			if idleSince == 0 {
				idleSince = now
			}
			if spin < 0 || now-idleSince > int64(spin) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// Say we sleep, then look once more: either the producer sees the flag after
				// its store of the end, or we see the new end (all accesses are sequentially
				// consistent).
				w := wake.Load()
				sleepers.Store(1)
				if int(end.Load()) <= pos {
					futex.Wait(wake, w, 100*time.Millisecond)
				}
			}
			continue
		}
		polls, idleSince = 0, 0
		if start == 0 {
			start = nowNanos()
		}
		for pos < e && !done {
			var err error
			if dst, pos, err = ceilingScan(mem, pos, e, dst[:0]); err != nil {
				return fmt.Errorf("%w after %d frames", err, chk.frames)
			}
			done = chk.checkBatch(dst, last)
		}
	}
	out.emit("result", chk.result(start, nowNanos(), selfUsage().since(u0)))
	return nil
}

// fillCeilingRatios sets VsCeiling, where Run has not set it from runs measured back to back, on
// every throughput row from the ceiling row of the same size and readers.
func fillCeilingRatios(rs []Result) {
	for i := range rs {
		r := &rs[i]
		for _, c := range rs {
			if r.VsCeiling != 0 {
				break
			}
			if r.Kind == "throughput" && c.Kind == r.Kind && c.Transport == "ceiling" && c.Size == r.Size &&
				c.Readers == r.Readers && c.Verified && c.FramesPerSec > 0 {
				r.VsCeiling = r.FramesPerSec / c.FramesPerSec
			}
		}
	}
}

// loadAverage reads the 1-minute load average; 0 where /proc/loadavg is missing.
func loadAverage() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	first, _, _ := strings.Cut(string(b), " ")
	load, _ := strconv.ParseFloat(first, 64)
	return load
}

// ceilingScan cuts the frames of mem[pos:e] into dst, up to its capacity, and returns where it
// stopped. Like a C loop (and the library's batch reader) it reads the leading length only, with
// no bounds check per frame: e <= len(mem) is checked once and every frame must end by e.
func ceilingScan(mem []byte, pos, e int, dst [][]byte) ([][]byte, int, error) {
	if e > len(mem) || pos < 0 {
		return dst, pos, fmt.Errorf("end %d outside the mapping", e)
	}
	base := unsafe.Pointer(unsafe.SliceData(mem))
	for e-pos >= 5 && len(dst) < cap(dst) {
		n := int(*(*uint16)(unsafe.Add(base, pos)))
		if n < 5 || n > e-pos {
			return dst, pos, fmt.Errorf("damaged frame at offset %d (length %d)", pos, n)
		}
		dst = append(dst, unsafe.Slice((*byte)(unsafe.Add(base, pos+2)), n-4))
		pos += n
	}
	if pos < e && len(dst) < cap(dst) {
		return dst, pos, fmt.Errorf("damaged frame at offset %d: %d bytes left", pos, e-pos)
	}
	return dst, pos, nil
}
