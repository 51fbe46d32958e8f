package shmio

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSharedNodeLayout: a log written by shared writers (two Logs, interleaved commits) has
// exactly the layout Node shmio 1.0.4 reads: the golden checks' reference decoder walks the
// frames from Node's three header words, the shared-writer words leave bytes 0 to 23 alone, and
// the lock word is free after the writers close. Where node is installed, a JavaScript decoder
// of Node shmio's layout (header words, u16 frames) reads the file too. Node shmio 1.0.4 itself
// is not installed: npm's registry here answers 404 for it.
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
		for _, c := range p {
			sum = sum*31 + uint32(c)
		}
	}
	if f := strings.Fields(string(out)); len(f) != 2 || f[0] != strconv.Itoa(len(want)) || f[1] != strconv.FormatUint(uint64(sum), 10) {
		t.Fatalf("node read %q, want %d frames, checksum %d", out, len(want), sum)
	}
}
