package shmio

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmio/shmio/internal/testproc"
)

// TestSharedNodeLayout: a log written by shared writers (two Logs, interleaved commits) has
// exactly the layout Node shmio 1.0.4 reads: the golden checks' reference decoder walks the
// frames from Node's three header words, the shared-writer words leave bytes 0 to 23 alone, and
// the lock word is free after the writers close. Where node is installed, a JavaScript decoder
// of Node shmio's layout (header words, u16 frames) reads the file too, and with
// SHMIO_NODE_MODULE set (README, "Testing") so does the real Node shmio's iterator.
func TestSharedNodeLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 1 << 20})
	a := shWriter(t, l)
	b := shWriter(t, utReopen(t, path, true, false))
	var want [][]byte
	for i := range 50 {
		w, id := a, uint32(1)
		if i%3 == 0 {
			w, id = b, 2
		}
		p := make([]byte, shSize(id, uint64(i)))
		shFill(p, id, uint64(i))
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	a.Close()
	b.Close()
	raw := utFileBytes(t, path)
	if le.Uint64(raw[0:]) != 192 || le.Uint64(raw[8:]) != 192 {
		t.Fatalf("header %d/%d", le.Uint64(raw[0:]), le.Uint64(raw[8:]))
	}
	if w := le.Uint64(raw[144:]); w != 0 {
		t.Fatalf("lock word %#x after every writer closed", w)
	}
	got := utNodeDecode(t, raw)
	if len(got) != len(want) {
		t.Fatalf("reference decoder: %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("reference decoder: frame %d differs", i)
		}
	}
	nodeDecodeJS(t, path, want)
	// The real Node shmio's iterator reads the same frames, in order.
	node, module := nodeReal(t)
	if module == "" {
		return
	}
	nodeDumpEqual(t, node, module, path, want)
}

// nodeDecodeJS reads the log at path with a JavaScript decoder of Node shmio's layout, where
// node is installed, and checks the frame count and a checksum of want.
func nodeDecodeJS(t *testing.T, path string, want [][]byte) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Log("node not found: the JavaScript decoder is skipped")
		return
	}
	// Node shmio's reading rule: frames from dataOffset up to size, u16 length on both sides.
	const js = `const b = require('fs').readFileSync(process.argv[1]);
const dataOffset = Number(b.readBigUInt64LE(8)), size = Number(b.readBigUInt64LE(16));
let off = dataOffset, n = 0, sum = 0;
while (off < size) {
  const len = b.readUInt16LE(off);
  if (len < 5 || off + len > size || b.readUInt16LE(off + len - 2) !== len) throw new Error('bad frame at ' + off);
  for (let i = off + 2; i < off + len - 2; i++) sum = (sum * 31 + b[i]) >>> 0;
  n++; off += len;
}
console.log(n + ' ' + sum);`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "-e", js, path).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var sum uint32
	for _, p := range want {
		sum = nodeSum(sum, p)
	}
	if f := strings.Fields(string(out)); len(f) != 2 || f[0] != strconv.Itoa(len(want)) || f[1] != strconv.FormatUint(uint64(sum), 10) {
		t.Fatalf("node read %q, want %d frames, checksum %d", out, len(want), sum)
	}
}

// nodeDumpEqual reads the log at path with the real Node shmio's iterator and checks that it
// returns exactly want, in order, and a committed size that ends just past the last of them.
func nodeDumpEqual(t *testing.T, node, module, path string, want [][]byte) {
	t.Helper()
	c := testproc.StartCmd(t, "node dump", nodeCmd(node, module, "dump", path))
	code, lines := c.Exit(time.Minute)
	if code != 0 || len(lines) == 0 {
		t.Fatalf("node dump: exit %d after %d lines; stderr:\n%s", code, len(lines), c.Stderr())
	}
	var size int
	for _, p := range want {
		size += len(p) + 4
	}
	if end := fmt.Sprintf("end %d %d", len(want), size); lines[len(lines)-1] != end {
		t.Fatalf("node dump ends with %q, want %q", lines[len(lines)-1], end)
	}
	for i, p := range want {
		if lines[i] != hex.EncodeToString(p) {
			t.Fatalf("real Node shmio: frame %d is %s, want %x", i, lines[i], p)
		}
	}
}

// nodeModuleEnv names the variable that points the tests at a built Node shmio (the package
// directory, whose index exports createSharedLog, or the addon's mmap.node, which exports
// openSharedLog). Unset, the checks with the real module are skipped, saying so.
const nodeModuleEnv = "SHMIO_NODE_MODULE"

// nodeNeeded is nodeReal for tests that are only about the real module: they skip without it.
func nodeNeeded(t *testing.T) (node, module string) {
	t.Helper()
	if os.Getenv(nodeModuleEnv) == "" {
		t.Skip(nodeModuleEnv + " is unset: this check needs a real Node shmio")
	}
	return nodeReal(t)
}

// nodeReal returns node and the module's absolute path, or "" after logging why the checks
// with the real module are skipped.
func nodeReal(t *testing.T) (node, module string) {
	t.Helper()
	module = os.Getenv(nodeModuleEnv)
	if module == "" {
		t.Log(nodeModuleEnv + " is unset: the checks with a real Node shmio are skipped")
		return "", ""
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("%s is set but node is not found: %v", nodeModuleEnv, err)
	}
	if module, err = filepath.Abs(module); err != nil {
		t.Fatal(err)
	}
	return node, module
}

// nodeCmd runs nodeJS in mode with args, loading the module at the absolute path module.
func nodeCmd(node, module, mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(node, append([]string{"-e", nodeJS, mode}, args...)...)
	cmd.Env = testproc.ChildEnv(nodeModuleEnv + "=" + module)
	return cmd
}

// nodeJS drives the real Node shmio through its public API (createSharedLog, or the addon's
// openSharedLog): its iterator, its writer and its mapping's open. Modes:
//
//	dump PATH...: for each log, print every committed frame as hex, one a line, then
//	  "end FRAMES COMMITTEDSIZE".
//	follow PATH WRITERS N: print "ready", then follow the log (polling, 4 minutes at most)
//	  until each of WRITERS writers delivered N shared-writer test frames (writer u32, seq u64,
//	  ..., crc32), checking each whole (CRC) and in its writer's order; print
//	  {"frames","sum","batches","empty"}: sum is nodeSum over every payload in the order read,
//	  batches the reads that found frames (each up to the committed end it saw), empty the
//	  reads that found none.
//	fence PATH: read the file, then open it writable and try to append and commit one frame;
//	  print {"frames","committed","allocErr"}.
//	append PATH HEX...: open the log writable and append the frames given in hex, in one commit.
//	write PATH CAPACITY N BATCH: create a log, print "created", wait for a line on stdin, then
//	  write nodeFrame(0..N-1) in commits of BATCH, pausing now and then; print {"frames"}.
const nodeJS = `
const m = require(process.env.SHMIO_NODE_MODULE)
const [mode, path, ...args] = process.argv.slice(1)
const open = (o) => {
  if (m.createSharedLog) return m.createSharedLog(o)
  const cap = o.capacityBytes === undefined ? undefined : BigInt(o.capacityBytes)
  const h = m.openSharedLog({ path: o.path, writable: o.writable, capacityBytes: cap })
  return { createIterator: () => h.createIterator(), writer: o.writable ? h.createWriter() : undefined, close: () => h.close() }
}
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
const crcTable = new Int32Array(256).map((_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c
})
const crc32 = (b, end) => {
  let c = -1
  for (let i = 0; i < end; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8)
  return (c ^ -1) >>> 0
}
const out = (v) => process.stdout.write((typeof v === 'string' ? v : JSON.stringify(v)) + '\n')
if (mode === 'dump') {
  for (const p of [path, ...args]) {
    const log = open({ path: p, writable: false })
    const it = log.createIterator()
    let n = 0
    for (let f; (f = it.next()) !== null; n++) out(f.toString('hex'))
    out('end ' + n + ' ' + it.committedSize())
    log.close()
  }
} else if (mode === 'follow') {
  const writers = Number(args[0]), want = Number(args[1])
  const log = open({ path, writable: false })
  const it = log.createIterator()
  const next = new Map()
  let frames = 0, done = 0, sum = 0, batches = 0, empty = 0
  const deadline = Date.now() + 240000
  out('ready')
  while (done < writers) {
    const batch = it.nextBatch({ maxMessages: 1 << 20, maxBytes: 1 << 30 })
    if (batch.length === 0) {
      empty++
      if (Date.now() > deadline) throw new Error('timed out after ' + frames + ' frames')
      nap(1)
      continue
    }
    batches++
    for (const f of batch) {
      const at = it.cursor()
      if (f.length < 16 || crc32(f, f.length - 4) !== f.readUInt32LE(f.length - 4)) throw new Error('torn frame of ' + f.length + ' bytes before cursor ' + at)
      const w = f.readUInt32LE(0), seq = Number(f.readBigUInt64LE(4)), exp = next.get(w) || 0
      if (seq !== exp) throw new Error('writer ' + w + ': frame ' + seq + ', want ' + exp)
      next.set(w, exp + 1)
      if (exp + 1 === want) done++
      for (let i = 0; i < f.length; i++) sum = (Math.imul(sum, 31) + f[i]) >>> 0
      frames++
    }
  }
  out({ frames, sum, batches, empty })
} else if (mode === 'fence') {
  const r = open({ path, writable: false })
  const it = r.createIterator()
  let frames = 0
  while (it.next() !== null) frames++
  const committed = Number(it.committedSize())
  r.close()
  const w = open({ path, writable: true, capacityBytes: 1 << 20 })
  let allocErr = ''
  try { w.writer.allocate(8).fill(0x55) } catch (e) { allocErr = e.message }
  w.writer.commit()
  w.close()
  out({ frames, committed, allocErr })
} else if (mode === 'append') {
  const log = open({ path, writable: true, capacityBytes: require('fs').statSync(path).size })
  for (const h of args) Buffer.from(h, 'hex').copy(log.writer.allocate(h.length / 2))
  log.writer.commit()
  log.close()
  out({ frames: args.length })
} else if (mode === 'write') {
  const [capacity, n, batch] = args.map(Number)
  const log = open({ path, writable: true, capacityBytes: capacity })
  out('created')
  require('fs').readSync(0, Buffer.alloc(1))
  for (let seq = 0; seq < n; seq++) {
    const len = 8 + (seq * 37) % 200
    const p = log.writer.allocate(len)
    p.writeUInt32LE(seq, 0)
    for (let j = 4; j < len - 4; j++) p[j] = (seq * 31 + j * 7) & 0xff
    p.writeUInt32LE(crc32(p, len - 4), len - 4)
    if ((seq + 1) % batch === 0 || seq === n - 1) {
      log.writer.commit()
      if ((seq + 1) % (batch * 16) === 0) nap(1)
    }
  }
  out({ frames: n })
} else {
  throw new Error('unknown mode ' + mode)
}
`

// nodeSum is the follow mode's checksum: over every byte of every frame in order,
// sum = sum*31 + b (mod 2^32).
func nodeSum(sum uint32, p []byte) uint32 {
	for _, c := range p {
		sum = sum*31 + uint32(c)
	}
	return sum
}

// nodeFrame is frame seq of the write mode: [seq u32][(seq*31 + j*7) & 0xff ...][crc32 u32],
// 8 + seq*37%200 bytes, the CRC over all that precedes it.
func nodeFrame(seq int) []byte {
	p := make([]byte, 8+seq*37%200)
	le.PutUint32(p, uint32(seq))
	for j := 4; j < len(p)-4; j++ {
		p[j] = byte(seq*31 + j*7)
	}
	le.PutUint32(p[len(p)-4:], crc32.ChecksumIEEE(p[:len(p)-4]))
	return p
}

// TestNodeWideFence: the real Node shmio sees a fenced wide log (FORMAT.md, "Wide files") as
// empty and full: its iterator finds no frame and a committed size of 0, and its writer, opened
// on the file while a Go writer holds it, fails to allocate and changes no byte of the file; the
// Go log reads and appends on. Needs SHMIO_NODE_MODULE.
func TestNodeWideFence(t *testing.T) {
	node, module := nodeNeeded(t)
	path := filepath.Join(t.TempDir(), "wide")
	l := utOpen(t, Options{Path: path, Capacity: 1 << 20, WideFrames: true})
	w := utWriter(t, l)
	want := [][]byte{utPayload(0, 3), utPayload(1, 200_000), utPayload(2, 70)}
	for _, p := range want {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	before := utFileBytes(t, path)
	if do, size := le.Uint64(before[8:]), le.Uint64(before[16:]); do != 1<<20 || size != 1<<20 {
		t.Fatalf("fenced header: dataOffset %d, size %d, want the file size", do, size)
	}
	c := testproc.StartCmd(t, "node fence", nodeCmd(node, module, "fence", path))
	var res struct {
		Frames    int    `json:"frames"`
		Committed int64  `json:"committed"`
		AllocErr  string `json:"allocErr"`
	}
	c.Finish(time.Minute, &res)
	if res.Frames != 0 || res.Committed != 0 || res.AllocErr != "Shared memory exhausted while allocating frame" {
		t.Fatalf("real Node shmio on a fenced wide log: %+v", res)
	}
	if after := utFileBytes(t, path); !bytes.Equal(after, before) {
		i := 0
		for before[i] == after[i] {
			i++
		}
		t.Fatalf("Node shmio changed the fenced file, first at byte %d", i)
	}
	want = append(want, utPayload(3, 100_000))
	if err := w.Append(want[3]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got := utReadAll(t, utIter(t, l))
	if len(got) != len(want) {
		t.Fatalf("read %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// TestNodeWriterLive: the real Node shmio creates a log and writes 20,000 frames in commits of
// 7, with no lock, while a Go reader follows it (Iterator.Wait polls Node-made files): the reader
// gets every frame once, in order, whole. Needs SHMIO_NODE_MODULE.
func TestNodeWriterLive(t *testing.T) {
	node, module := nodeNeeded(t)
	const n = 20_000
	path := filepath.Join(testproc.ShmDir(t), "node.log")
	c := testproc.StartCmd(t, "node write", nodeCmd(node, module, "write", path, "4194304", strconv.Itoa(n), "7"))
	if l := c.Line(time.Minute); l != "created" {
		t.Fatalf("node write said %q", l)
	}
	l := utReopen(t, path, false, true)
	if !l.Header().NodeFormat {
		t.Fatal("the Node-made log is not read in Node format")
	}
	it := utIter(t, l)
	if _, err := c.Stdin().Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var frames []Frame
	got, waits := 0, 0
	for got < n {
		var err error
		if frames, err = it.NextFrames(frames[:0], BatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 {
			waits++
			if err := it.Wait(ctx); err != nil {
				t.Fatalf("after %d frames: %v", got, err)
			}
			continue
		}
		for _, f := range frames {
			if got >= n || !bytes.Equal(f.Data, nodeFrame(got)) {
				t.Fatalf("frame %d at cursor %d: %d bytes %x..., want frame %d", got, f.Cursor, len(f.Data), f.Data[:min(len(f.Data), 8)], got)
			}
			got++
		}
	}
	c.Finish(time.Minute, nil)
	if p, err := it.Next(); p != nil || err != nil {
		t.Fatalf("after the last frame: %d bytes, %v", len(p), err)
	}
	t.Logf("Go reader followed %d frames from the real Node shmio writer, waiting %d times", got, waits)
}

// TestNodeWriterConflict: a real Node shmio writer (which takes no lock) appends to a log while
// a Go SharedWriter holds the append lock with a frame allocated: Node's frame is committed
// whole, the Go Commit is refused with ErrConflict and counted, and the next Go commit follows
// Node's frame. Go and Node then read the same frames. Needs SHMIO_NODE_MODULE.
func TestNodeWriterConflict(t *testing.T) {
	node, module := nodeNeeded(t)
	path := filepath.Join(t.TempDir(), "log")
	l := utOpen(t, Options{Path: path, Capacity: 1 << 16})
	sw := shWriter(t, l)
	shAppend(t, sw, 1, 0, 5)
	frame := func(seq uint64) []byte {
		p := make([]byte, shSize(1, seq))
		shFill(p, 1, seq)
		return p
	}
	if err := sw.Append(frame(5)); err != nil {
		t.Fatal(err)
	}
	nodeFrames := [][]byte{[]byte("from node"), bytes.Repeat([]byte{0xab}, 300)}
	c := testproc.StartCmd(t, "node append", nodeCmd(node, module, "append", path, hex.EncodeToString(nodeFrames[0]), hex.EncodeToString(nodeFrames[1])))
	c.Finish(time.Minute, nil)
	if err := sw.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("Commit after Node appended: %v, want ErrConflict", err)
	}
	if n := l.Header().Conflicts; n != 1 {
		t.Fatalf("header counts %d conflicts, want 1", n)
	}
	shAppend(t, sw, 1, 5, 1)
	var want [][]byte
	for seq := range uint64(5) {
		want = append(want, frame(seq))
	}
	want = append(append(want, nodeFrames...), frame(5))
	got := utReadAll(t, utIter(t, l))
	if len(got) != len(want) {
		t.Fatalf("Go reads %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("Go reads frame %d as %x, want %x", i, got[i], want[i])
		}
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	nodeDumpEqual(t, node, module, path, want)
}

// TestNodeReadsGoldenAppend: the real Node shmio reads the golden file (written by Node shmio
// 1.0.4) and, after a Go Writer appended to it (frames up to the 65,531-byte maximum, over the
// three frames Node allocated and never committed), the golden frames and the Go frames, in
// order. Needs SHMIO_NODE_MODULE.
func TestNodeReadsGoldenAppend(t *testing.T) {
	node, module := nodeNeeded(t)
	info, _, _, _ := utGolden(t)
	path := utGoldenCopy(t)
	var want [][]byte
	for i, n := range info.Frames {
		want = append(want, utPayload(i, n))
	}
	nodeDumpEqual(t, node, module, path, want)
	l := utReopen(t, path, true, false)
	w := utWriter(t, l)
	more := []int{1, 65531, 7, 300}
	utAppend(t, w, len(want), more...)
	for k, n := range more {
		want = append(want, utPayload(len(info.Frames)+k, n))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	nodeDumpEqual(t, node, module, path, want)
}

// TestNodeReadsQueueSegments: each segment of a queue (4 KiB segments, over 30 rolls, the
// writer still open) is a log the real Node shmio reads: in segment order their frames are the
// queue's, and it sees none beyond them. Needs SHMIO_NODE_MODULE.
func TestNodeReadsQueueSegments(t *testing.T) {
	node, module := nodeNeeded(t)
	q := qtOpen(t, QueueOptions{})
	w := qtWriter(t, q)
	var want [][]byte
	for i := range 1000 {
		p := utPayload(i, 60+i%100)
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, p)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, s := range segs {
		paths = append(paths, s.Path)
	}
	if len(paths) < 30 {
		t.Fatalf("%d segments, want many rolls", len(paths))
	}
	c := testproc.StartCmd(t, "node dump", nodeCmd(node, module, "dump", paths...))
	code, lines := c.Exit(time.Minute)
	if code != 0 {
		t.Fatalf("node dump: exit %d; stderr:\n%s", code, c.Stderr())
	}
	var got []string
	ends := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "end ") {
			ends++
		} else {
			got = append(got, l)
		}
	}
	if ends != len(paths) || len(got) != len(want) {
		t.Fatalf("real Node shmio read %d segments, %d frames; want %d, %d", ends, len(got), len(paths), len(want))
	}
	for i := range want {
		if got[i] != hex.EncodeToString(want[i]) {
			t.Fatalf("real Node shmio: frame %d differs", i)
		}
	}
	t.Logf("real Node shmio read %d frames from %d segments", len(got), len(paths))
}
