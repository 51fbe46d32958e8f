package main

// The "ceiling" row of shmio bench: the same producer/consumer work as the shmio row, done by a
// bare loop over a raw shared mapping of a /dev/shm file, without the library. The producer
// writes [u16 len][payload][u16 len] frames back to back (payload filled as for every other row:
// template, sequence number, complemented tail) and publishes the end with an atomic store every
// --commit-every frames; each consumer polls the end with atomic loads and checks every frame's
// lengths and sequence number with the same seqCheck as the other rows. A consumer with nothing
// to read waits as the shmio consumers do (spin 20µs, or not at all when the run has more
// processes than CPUs, then sleep on a futex word the producer bumps after a publish when the
// sleepers flag is up): a consumer that spun or napped on a loaded machine would take the CPU
// from the producer and measure the scheduler, not the loop. Only syscall glue is shared with
// the library (internal/mmap, internal/futex, internal/fallocate). What shmio does beyond this (header, bounds,
// errors) is what the VS CEILING column prices.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmio/shmio/internal/fallocate"
	"github.com/shmio/shmio/internal/futex"
	"github.com/shmio/shmio/internal/mmap"
)

func init() {
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
	// Sleep: a consumer that finds nothing new sleeps briefly instead of spinning (when the run has
	// more processes than CPUs, as the shmio consumers then sleep on the futex).
	Sleep bool `json:"sleep"`
}

// ceilingSetup creates the raw file for one ceiling run; the caller removes it.
func (b *bencher) ceilingSetup(n int64, size, readers int) (string, ceilingConfig, error) {
	b.nlogs++
	path := tempLogPath(b.dir, "ceiling", b.nlogs)
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		// Reserve the pages, as creating a log does: readers mapping a sparse file would
		// fault on every page of it during the run instead of before.
		size := ceilingData + n*int64(size+4) + 4096
		if err = f.Truncate(size); err == nil {
			err = fallocate.Reserve(int(f.Fd()), size)
		}
		f.Close()
	}
	if err != nil {
		os.Remove(path)
		return "", ceilingConfig{}, fmt.Errorf("creating the ceiling run's file: %w", err)
	}
	cfg := ceilingConfig{Path: path, Frames: n, Size: size, CommitEvery: b.o.commitEvery, Batch: 256,
		Sleep: b.consumerSpin(readers) < 0}
	return path, cfg, nil
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

// ceilingSpin is how long a consumer polls before it sleeps (the library's default Wait spin).
const ceilingSpin = 20 * time.Microsecond

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

	cpu0, start := cpuNanos(), nowNanos()
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
	out.emit("result", producerResult{Frames: cfg.Frames, StartNs: start, EndNs: nowNanos(), CPUNs: cpuNanos() - cpu0})
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
	chk := seqCheck{size: cfg.Size}
	dst := make([][]byte, 0, cfg.Batch)
	last := uint64(cfg.Frames - 1)
	out.ready()

	cpu0 := cpuNanos()
	var start int64
	pos, polls, idleSince := ceilingData, 0, int64(0)
	for done := cfg.Frames == 0; !done; {
		e := int(end.Load())
		if e <= pos { // nothing new (the end is 0 until the first publish)
			// Spin, reading the clock every 64 polls as the library's Wait does.
			if polls++; !cfg.Sleep && polls&63 != 0 {
				continue
			}
			now := nowNanos()
			if idleSince == 0 {
				idleSince = now
			}
			if cfg.Sleep || now-idleSince > int64(ceilingSpin) {
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
	out.emit("result", chk.result(start, nowNanos(), cpuNanos()-cpu0))
	return nil
}

// fillCeilingRatios sets VsCeiling on every throughput row from the ceiling row of the same size
// and readers.
func fillCeilingRatios(rs []benchResult) {
	for i := range rs {
		r := &rs[i]
		for _, c := range rs {
			if r.Kind == "throughput" && c.Kind == r.Kind && c.Transport == "ceiling" && c.Size == r.Size &&
				c.Readers == r.Readers && c.Verified && c.FramesPerSec > 0 {
				r.VsCeiling = r.FramesPerSec / c.FramesPerSec
			}
		}
	}
}

// ceilingGoals reports shmio against the ceiling (goal: at least 0.8 of it) for the rows the
// project names, as ratios measured in this same run.
func ceilingGoals(rs []benchResult, fanout int) []string {
	var out []string
	for _, g := range []struct{ size, readers int }{{32, 1}, {32, fanout}, {1024, 1}} {
		if g.readers != 1 && g.readers != 3 {
			continue
		}
		for _, r := range rs {
			if r.Kind == "throughput" && r.Transport == "shmio" && r.Size == g.size && r.Readers == g.readers && r.VsCeiling > 0 {
				verdict := "at goal"
				if r.VsCeiling < 0.8 {
					verdict = "below goal"
				}
				out = append(out, fmt.Sprintf("%s, %d reader(s): %.2fx the bare-loop ceiling (goal >= 0.8x): %s", benchSize(g.size), g.readers, r.VsCeiling, verdict))
			}
		}
	}
	return out
}

// machineLoad reads the 1-minute load average; ok is false where /proc/loadavg is missing.
func machineLoad() (load float64, ok bool) {
	f, err := os.Open("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString(' ')
	load, err = strconv.ParseFloat(strings.TrimSpace(line), 64)
	return load, err == nil
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

// progressLine prints one line per step on w when the status line cannot (not a terminal), so
// logs of long runs show where they are.
func progressLine(w io.Writer, tty bool, step, steps int, what string) {
	if !tty {
		fmt.Fprintf(w, "bench [%d/%d] %s\n", step, steps, what)
	}
}

// fmtRatio prints a ratio column: "0.93x", or "-" when unknown.
func fmtRatio(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// socketGoal judges shmio's ratio to the socket against goal. When the bare-loop ceiling of the
// same run does not reach the goal either, the machine is the limit, and it says so.
func socketGoal(rs []benchResult, r *benchResult, goal float64) string {
	if r.VsSocket >= goal {
		return "met"
	}
	for _, c := range rs {
		if c.Kind == r.Kind && c.Transport == "ceiling" && c.Size == r.Size && c.Readers == r.Readers && c.Verified && c.VsSocket > 0 && c.VsSocket < goal {
			return fmt.Sprintf("out of reach here: the bare-loop ceiling itself does %.2fx", c.VsSocket)
		}
	}
	return "below goal"
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
