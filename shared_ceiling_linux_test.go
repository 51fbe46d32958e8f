package shmio

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmio/shmio/internal/futex"
	"github.com/shmio/shmio/internal/testproc"
	"golang.org/x/sys/unix"
)

func init() { xpRoles["shceiling"] = shCeilingChild }

// The ceiling of BenchmarkSharedWrite's procs=P rows (ceiling/procs=P/commit=C): P processes
// take turns over a raw mapping of the same file with nothing of shmio, doing the exclusive
// writer's work (32-byte frames with both lengths, a commit every C frames: one store of the
// end), on a bare lock word and the shared writers' handoff (FORMAT.md, "Shared writers"): a
// holder keeps the word for a quantum of commits (it does not even release it in between), then
// invites one sleeper with a futex wake and goes on until that one asks; a waiter polls
// briefly, then sleeps. What is left between it and the exclusive writer is what taking turns costs on this
// machine (wake-ups, the tail's cache lines moving, four processes on the cores); what is left
// between the shared writers and it is shmio's.
const (
	ceilLock     = 4096 // u32 0 free, 1 held: the futex
	ceilSleepers = ceilLock + 64
	ceilTail     = ceilLock + 128 // u64 the committed end
	ceilData     = 2 * 4096
)

func shCeilingChild() error {
	f, err := os.OpenFile(testproc.Param("PATH"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(mem)
	lock := (*atomic.Uint32)(unsafe.Pointer(&mem[ceilLock]))
	sleepers := (*atomic.Uint32)(unsafe.Pointer(&mem[ceilSleepers]))
	tail := (*atomic.Uint64)(unsafe.Pointer(&mem[ceilTail]))
	tail.CompareAndSwap(0, ceilData)
	n, commit, err := benchChildReady(nil)
	if err != nil {
		return err
	}
	start := time.Now()
	var payload [benchPayload]byte
	const flen = benchPayload + 4
	handedOff := false
	for done := 0; done < n; {
		wanting := false
		for polls := 0; lock.Load() != 0 || !lock.CompareAndSwap(0, 1); polls++ {
			if wanting && polls&255 == 255 {
				futex.Yield() // the holder may share this core
			}
			if !wanting && (handedOff || polls >= 256) {
				sleepers.Or(shareSleeping)
				futex.Wait(lock, 1, shareCheck)
				if f := sleepers.Load(); f&shareInvite != 0 && sleepers.CompareAndSwap(f, f&^shareInvite|shareWant) {
					wanting = true
				}
			}
		}
		if wanting {
			sleepers.And(^uint32(shareWant))
		}
		t0, invited := time.Now(), false
		end := int(tail.Load())
		for k := 0; done < n; k++ {
			for i := 0; i < commit && done < n; i++ {
				if end+flen > len(mem) {
					return fmt.Errorf("ceiling: file full")
				}
				binary.LittleEndian.PutUint16(mem[end:], flen)
				copy(mem[end+2:end+2+benchPayload], payload[:])
				binary.LittleEndian.PutUint16(mem[end+2+benchPayload:], flen)
				end += flen
				done++
			}
			tail.Store(uint64(end))
			switch {
			case invited:
				if sleepers.Load()&shareWant != 0 {
					k = -1 // hand over
				}
			case k&15 == 15 && time.Since(t0) >= shareQuantum:
				t0 = time.Now()
				if sleepers.Load()&shareSleeping != 0 {
					sleepers.Or(shareInvite)
					if invited = futex.WakeOne(lock); !invited {
						sleepers.And(^uint32(shareSleeping | shareInvite))
					}
				}
			}
			if k < 0 {
				break
			}
		}
		lock.Store(0)
		handedOff = invited && done < n
		for i, t := 0, time.Now(); handedOff && lock.Load() == 0; i++ { // leave it to the woken one
			if i&15 == 15 && time.Since(t) > shareHandoff {
				break
			}
		}
	}
	testproc.Report(map[string]int64{"Start": start.UnixNano(), "End": time.Now().UnixNano()})
	return nil
}
