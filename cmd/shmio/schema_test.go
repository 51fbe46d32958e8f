package main

// tail, dump and append with --schema FILE --type NAME, on the bendec package's fixtures: the
// schema, the values, and the frames Node bendec 0.51.0 encoded for them (node_frames.json, kept
// in step with Node by bendec's TestNodeBendec).

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/bendec"
)

const schemaFile = "../../bendec/testdata/schema.json"

// fixture is one value of bendec/testdata/values.json with the frame Node encoded for it.
type fixture struct {
	Type  string
	Value json.RawMessage // one line of JSON
	Frame []byte
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	var values []struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	}
	var frames []string
	for name, v := range map[string]any{"values.json": &values, "node_frames.json": &frames} {
		b, err := os.ReadFile(filepath.Join("../../bendec/testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(values) != len(frames) || len(values) == 0 {
		t.Fatalf("%d values, %d frames", len(values), len(frames))
	}
	fx := make([]fixture, len(values))
	for i, v := range values {
		var line bytes.Buffer
		if err := json.Compact(&line, v.Value); err != nil {
			t.Fatal(err)
		}
		frame, err := hex.DecodeString(frames[i])
		if err != nil {
			t.Fatal(err)
		}
		fx[i] = fixture{v.Type, line.Bytes(), frame}
	}
	return fx
}

// byType groups the fixtures by type, in file order.
func byType(fx []fixture) (types []string, of map[string][]fixture) {
	of = map[string][]fixture{}
	for _, f := range fx {
		if of[f.Type] == nil {
			types = append(types, f.Type)
		}
		of[f.Type] = append(of[f.Type], f)
	}
	return types, of
}

// appendRaw appends frames to the log or queue at path as they are (append --raw).
func appendRaw(t testing.TB, path string, frames ...[]byte) {
	t.Helper()
	mustRun(t, []string{"append", "-q", "--raw", path}, withStdinReader(bytes.NewReader(rawRecords(frames...))))
}

// parseJSON parses one JSON value keeping numbers as text.
func parseJSON(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// sameJSON compares parsed JSON values; numbers are equal when they are the same integer
// (exactly, 64-bit ones too) or the same float, however they are written: an f32 prints in
// float32's shortest form, where the fixtures hold the float64 Node reads.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, okx := new(big.Int).SetString(string(a), 10)
		y, oky := new(big.Int).SetString(string(b), 10)
		if okx && oky {
			return x.Cmp(y) == 0
		}
		fa, erra := a.Float64()
		fb, errb := b.Float64()
		return erra == nil && errb == nil && (fa == fb || float32(fa) == float32(fb))
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// outLines splits output into its lines, failing unless it ends with a newline.
func outLines(t testing.TB, out string) []string {
	t.Helper()
	if out == "" {
		return nil
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end with a newline: %q", out)
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// TestTailSchemaNodeFrames: the frames Node bendec wrote, of every kind (the seed README's
// LogEvent, 64-bit extremes, arrays, enums, bitflags, and the union Message whose enum
// discriminator picks Order, Cancel or Heartbeat), print as the values Node encoded.
func TestTailSchemaNodeFrames(t *testing.T) {
	types, of := byType(loadFixtures(t))
	for _, typ := range types {
		path := createLog(t, "1MiB")
		var frames [][]byte
		for _, f := range of[typ] {
			frames = append(frames, f.Frame)
		}
		appendRaw(t, path, frames...)
		got := outLines(t, mustRun(t, []string{"tail", path, "--from", "start", "--schema", schemaFile, "--type", typ}))
		if len(got) != len(frames) {
			t.Fatalf("%s: %d lines for %d frames:\n%s", typ, len(got), len(frames), strings.Join(got, "\n"))
		}
		for i, line := range got {
			if want := of[typ][i].Value; !sameJSON(parseJSON(t, []byte(line)), parseJSON(t, want)) {
				t.Errorf("%s frame %d:\n got %s\nwant %s", typ, i, line, want)
			}
		}
	}
	// 64-bit integers are written exactly, not as float64 (which would print 18446744073709552000).
	path := createLog(t, "1MiB")
	fx := loadFixtures(t)
	appendRaw(t, path, fx[1].Frame)
	wantLines(t, mustRun(t, []string{"tail", path, "--schema", schemaFile, "--type", "LogEvent"}),
		`{"timestamp":18446744073709551615,"level":"Error","message":"exactly twenty-three b."}`)
}

// TestTailSchemaJSONQueue: with --format json the event is "value" beside the cursor, here of a
// queue whose frames span segments; the cursors are those of the plain json format.
func TestTailSchemaJSONQueue(t *testing.T) {
	_, of := byType(loadFixtures(t))
	dir := createQueue(t, "4KiB")
	var frames [][]byte
	for range 60 { // 60 x 4 union frames of 29 bytes: several segments
		for _, f := range of["Message"] {
			frames = append(frames, f.Frame)
		}
	}
	appendRaw(t, dir, frames...)
	plain := outLines(t, mustRun(t, []string{"tail", dir, "--from", "start", "--format", "json"}))
	typed := outLines(t, mustRun(t, []string{"tail", dir, "--from", "start", "--format", "json", "--schema", schemaFile, "--type", "Message"}))
	if len(typed) != len(frames) || len(plain) != len(frames) {
		t.Fatalf("%d typed and %d plain lines for %d frames", len(typed), len(plain), len(frames))
	}
	segments := map[int64]bool{}
	for i := range typed {
		var p, e struct {
			Cursor, Segment, Offset, Next *int64
			Length                        int
			Value                         json.RawMessage
		}
		if err := json.Unmarshal([]byte(plain[i]), &p); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(typed[i]), &e); err != nil {
			t.Fatalf("%s: %v", typed[i], err)
		}
		if e.Cursor == nil || e.Next == nil || e.Segment == nil || e.Offset == nil ||
			*e.Cursor != *p.Cursor || *e.Next != *p.Next || *e.Segment != *p.Segment || *e.Offset != *p.Offset || e.Length != 25 {
			t.Fatalf("line %d: %s, plain json: %s", i, typed[i], plain[i])
		}
		segments[*e.Segment] = true
		if want := of["Message"][i%4].Value; !sameJSON(parseJSON(t, e.Value), parseJSON(t, want)) {
			t.Fatalf("line %d value %s, want %s", i, e.Value, want)
		}
	}
	if len(segments) < 2 {
		t.Fatalf("frames in %d segments; the test wants several", len(segments))
	}
}

// badFrames returns a log holding, in order: a LogEvent, a 5-byte frame, a LogEvent whose level
// is 9 (no variant), a LogEvent; and the cursors of the two bad ones.
func badFrames(t testing.TB) (path string, good []fixture, short, badEnum int64) {
	t.Helper()
	fx := loadFixtures(t)
	good = fx[:2]
	bad := bytes.Clone(good[0].Frame)
	bad[8] = 9 // level
	path = createLog(t, "1MiB")
	appendRaw(t, path, good[0].Frame, []byte("hello"), bad, good[1].Frame)
	return path, good, 36, 36 + 9
}

// TestTailSchemaBadFrame: a frame that does not decode is reported on stderr with its cursor and
// the reason; tail prints the frames after it and exits 1.
func TestTailSchemaBadFrame(t *testing.T) {
	path, good, short, badEnum := badFrames(t)
	r := runShmio(t, []string{"tail", path, "--from", "start", "--schema", schemaFile, "--type", "LogEvent"})
	wantLines(t, r.stdout, string(good[0].Value), string(good[1].Value))
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", r.code, r.stderr)
	}
	wantLines(t, r.stderr,
		fmt.Sprintf("shmio: %s: frame at cursor %d (5 bytes) does not decode as LogEvent: bendec: frame too short for type: LogEvent needs 32 bytes, got 5", path, short),
		fmt.Sprintf("shmio: %s: frame at cursor %d (32 bytes) does not decode as LogEvent: bendec: value matches no enum variant: LogEvent.level: Level has no variant 9", path, badEnum),
		fmt.Sprintf("shmio: %s: 2 frames did not decode as LogEvent (reported above)", path))

	// The json format leaves the bad frames out of stdout too; the next cursors still chain.
	r = runShmio(t, []string{"tail", path, "--from", "start", "--format", "json", "--schema", schemaFile, "--type", "LogEvent"})
	wantLines(t, r.stdout,
		`{"cursor":0,"length":32,"next":36,"value":`+string(good[0].Value)+`}`,
		`{"cursor":81,"length":32,"next":117,"value":`+string(good[1].Value)+`}`)
	if r.code != 1 || strings.Count(r.stderr, "does not decode") != 2 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
}

// TestTailSchemaFollowGoesOn: tail -f reports a frame of a union whose discriminator names no
// member, and goes on with the frames after it.
func TestTailSchemaFollowGoesOn(t *testing.T) {
	_, of := byType(loadFixtures(t))
	msgs := of["Message"]
	path := createLog(t, "1MiB")
	appendRaw(t, path, msgs[0].Frame)
	tail := startShmio(t, []string{"tail", "-f", path, "--from", "start", "--schema", schemaFile, "--type", "Message"})
	first := string(msgs[0].Value) + "\n"
	waitFor(t, 10*time.Second, "the first event", func() bool { return tail.stdout.String() == first })

	bad := bytes.Clone(msgs[2].Frame)
	bad[0], bad[1] = 9, 0 // header.msgType 9: no variant, so no member
	appendRaw(t, path, bad, msgs[2].Frame, msgs[3].Frame)
	all := first + string(msgs[2].Value) + "\n" + string(msgs[3].Value) + "\n"
	waitFor(t, 10*time.Second, "the events after the bad frame", func() bool { return tail.stdout.String() == all })
	tail.signal(t, syscall.SIGINT)
	if code := tail.wait(t, 10*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (a frame did not decode); stderr: %s", code, tail.stderr.String())
	}
	if want := "frame at cursor 29 (25 bytes) does not decode as Message: bendec: value matches no enum variant: "; !strings.Contains(tail.stderr.String(), want) {
		t.Fatalf("stderr %q, want it to contain %q", tail.stderr.String(), want)
	}
	if out := tail.stdout.String(); out != all {
		t.Fatalf("stdout after the interrupt: %q", out)
	}
}

// TestDumpSchema: dump --schema shows every field with its path, type, offset, size and value,
// a union as its member's fields, and a frame that does not decode with the reason and its bytes.
func TestDumpSchema(t *testing.T) {
	fx := loadFixtures(t)
	_, of := byType(fx)
	path := createLog(t, "1MiB")
	appendRaw(t, path, fx[0].Frame)
	want := `cursor 0  file offset 192  length 32 (frame 36 bytes)
  timestamp  u64       offset 0  size 8   1764547200123456789
  level      Level     offset 8  size 1   "Info"
  message    char[23]  offset 9  size 23  "Application started"
-- 1 frame shown (forward from cursor 0); committed end at cursor 36 (file offset 228)
`
	if out := mustRun(t, []string{"dump", path, "--schema", schemaFile, "--type", "LogEvent"}); out != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", out, want)
	}

	// A union: the discriminator picks Cancel, then Order (arrays and bitflags flattened).
	path = createLog(t, "1MiB")
	appendRaw(t, path, of["Message"][2].Frame, of["Message"][0].Frame)
	want = `cursor 0  file offset 192  length 25 (frame 29 bytes)
  header.msgType  MsgType  offset 0  size 2  "Cancel"
  header.seq      u32      offset 2  size 4  3
  orderId         u64      offset 6  size 8  18446744073709551615
cursor 29  file offset 221  length 25 (frame 29 bytes)
  header.msgType  MsgType  offset 0   size 2  "Order"
  header.seq      u32      offset 2   size 4  1
  side            Side     offset 6   size 1  "Buy"
  perm            Perm     offset 7   size 2  ["Read","Write","Exec","Admin"]
  price           u64      offset 9   size 8  1
  symbol          char[8]  offset 17  size 8  "MSFT"
-- 2 frames shown (forward from cursor 0); committed end at cursor 58 (file offset 250)
`
	if out := mustRun(t, []string{"dump", path, "--schema", schemaFile, "--type", "Message"}); out != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", out, want)
	}

	// Bad frames: the fields before the bad one, the reason, the bytes; the dump goes on, exit 1.
	path, _, _, _ = badFrames(t)
	appendRaw(t, path, append(bytes.Clone(fx[0].Frame), 0xee, 0xff)) // 2 bytes after the type
	r := runShmio(t, []string{"dump", path, "--from", "36", "--schema", schemaFile, "--type", "LogEvent"})
	want = `cursor 36  file offset 228  length 5 (frame 9 bytes)
  !! does not decode as LogEvent: bendec: frame too short for type: LogEvent needs 32 bytes, got 5
  00000000  68 65 6c 6c 6f                                    |hello|
cursor 45  file offset 237  length 32 (frame 36 bytes)
  timestamp  u64  offset 0  size 8  1764547200123456789
  !! does not decode as LogEvent: bendec: value matches no enum variant: LogEvent.level: Level has no variant 9
  00000000  15 cd c4 5c 54 ee 7c 18  09 41 70 70 6c 69 63 61  |...\T.|..Applica|
  00000010  74 69 6f 6e 20 73 74 61  72 74 65 64 00 00 00 00  |tion started....|
cursor 81  file offset 273  length 32 (frame 36 bytes)
  timestamp  u64       offset 0  size 8   18446744073709551615
  level      Level     offset 8  size 1   "Error"
  message    char[23]  offset 9  size 23  "exactly twenty-three b."
cursor 117  file offset 309  length 34 (frame 38 bytes)
  timestamp  u64       offset 0  size 8   1764547200123456789
  level      Level     offset 8  size 1   "Info"
  message    char[23]  offset 9  size 23  "Application started"
  (2 bytes after the 32 of LogEvent, ignored)
-- 4 frames shown (forward from cursor 36); committed end at cursor 155 (file offset 347)
`
	if r.stdout != want || r.code != 1 {
		t.Fatalf("exit %d, dump:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	if want := fmt.Sprintf("shmio: %s: 2 of the 4 frames shown did not decode as LogEvent\n", path); r.stderr != want {
		t.Fatalf("stderr %q, want %q", r.stderr, want)
	}
}

// TestAppendSchema: JSON lines become the bytes Node bendec encodes for the same values, for
// every kind of type (the union Message included, as large as the union); enums take numbers.
func TestAppendSchema(t *testing.T) {
	types, of := byType(loadFixtures(t))
	for _, typ := range types {
		path := createLog(t, "1MiB")
		var in strings.Builder
		var want []string
		for _, f := range of[typ] {
			in.Write(f.Value)
			in.WriteString("\n")
			want = append(want, hex.EncodeToString(f.Frame))
		}
		mustRun(t, []string{"append", "-q", path, "--schema", schemaFile, "--type", typ}, withStdin(in.String()))
		wantLines(t, tailAll(t, path, "hex"), want...)
	}

	path := createLog(t, "1MiB")
	mustRun(t, []string{"append", "-q", path, "--schema", schemaFile, "--type", "LogEvent"},
		withStdin(`{"level":1,"timestamp":"1764547200123456789","message":"Application started"}`+"\n"))
	wantLines(t, tailAll(t, path, "hex"), hex.EncodeToString(loadFixtures(t)[0].Frame))
}

// TestAppendSchemaBadLine: a line that does not match the type is refused with its line number;
// the lines before it are committed, none after it, whatever the batching.
func TestAppendSchemaBadLine(t *testing.T) {
	good := func(i int) string {
		return fmt.Sprintf(`{"timestamp":%d,"level":"Warn","message":"line %d"}`, i, i)
	}
	cases := []struct {
		bad, why string
	}{
		{`{"timestamp":1,"level":"Loud"}`, `value matches no enum variant: LogEvent.level: Level has no variant "Loud"`},
		{`{"timestamp":-1}`, `value does not fit the type: LogEvent.timestamp`},
		{`{"timestamp":18446744073709551616}`, `value does not fit the type: LogEvent.timestamp`},
		{`{"timestamp":1,"colour":"red"}`, `unknown field: LogEvent`},
		{`{"message":"twenty-four bytes, one more"}`, `value does not fit the type: LogEvent.message`},
		{`{"timestamp":1,`, ``},
		{`hello`, ``},
	}
	for _, c := range cases {
		for _, batch := range []string{"1", "256"} {
			path := createLog(t, "1MiB")
			in := good(1) + "\n" + good(2) + "\n" + c.bad + "\n" + good(4) + "\n"
			r := runShmio(t, []string{"append", path, "--batch", batch, "--schema", schemaFile, "--type", "LogEvent"}, withStdin(in))
			prefix := fmt.Sprintf("shmio: %s: line 3 of standard input does not match LogEvent: bendec: %s", path, c.why)
			if r.code == 0 || !strings.HasPrefix(r.stderr, prefix) || !strings.HasSuffix(r.stderr, "; the 2 frames before it were committed\n") {
				t.Fatalf("line %s, --batch %s: exit %d, stderr %q; want it to start with %q", c.bad, batch, r.code, r.stderr, prefix)
			}
			wantLines(t, mustRun(t, []string{"tail", path, "--schema", schemaFile, "--type", "LogEvent"}), good(1), good(2))
		}
	}

	// A bad first line commits nothing; the writer is free for the next append.
	path := createLog(t, "1MiB")
	r := runShmio(t, []string{"append", path, "--schema", schemaFile, "--type", "LogEvent"}, withStdin("[1]\n"+good(2)+"\n"))
	if r.code == 0 || !strings.Contains(r.stderr, "line 1 of standard input does not match LogEvent") || !strings.HasSuffix(r.stderr, "; nothing was committed\n") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	appendRaw(t, path, loadFixtures(t)[0].Frame)
	if got := outLines(t, tailAll(t, path, "hex")); len(got) != 1 {
		t.Fatalf("frames after a refused first line and one append: %q", got)
	}
}

// TestSchemaFlags: the errors of --schema and --type, shared by the three verbs.
func TestSchemaFlags(t *testing.T) {
	path := createLog(t, "1MiB")
	dir := t.TempDir()
	cyclic := filepath.Join(dir, "cyclic.json")
	if err := os.WriteFile(cyclic, []byte(`[{"name":"u8","size":1},{"name":"A","fields":[{"name":"b","type":"B"}]},{"name":"B","fields":[{"name":"a","type":"A"}]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")
	for _, verb := range []string{"tail", "dump", "append"} {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--type", "LogEvent"}, "shmio: --type needs --schema FILE (a bendec schema)\n"},
			{[]string{"--schema", schemaFile}, "shmio: --schema needs --type NAME, one of the types in " + schemaFile + ": bool, u8, "},
			{[]string{"--schema", schemaFile, "--type", "Nope"}, "shmio: --type Nope: no such type in " + schemaFile + " (it has: bool, "},
			{[]string{"--schema", missing, "--type", "A"}, "shmio: --schema " + missing + ": no such file or directory\n"},
			{[]string{"--schema", cyclic, "--type", "A"}, "shmio: --schema " + cyclic + ": bendec: type refers to itself: "},
		} {
			r := runShmio(t, append([]string{verb, path}, c.args...), withStdin(""))
			if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, c.want) {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want it to start with %q", verb, strings.Join(c.args, " "), r.code, r.stdout, r.stderr, c.want)
			}
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", path, "--format", "hex"}, `shmio: --schema prints events as JSON: want --format text (the object) or json (the object as "value" beside the cursor), not "hex"`},
		{[]string{"tail", path, "--raw"}, "shmio: --raw prints payload bytes; with --schema frames print as JSON"},
		{[]string{"append", path, "--raw"}, "shmio: --raw takes binary records; with --schema the input is one JSON object per line"},
	} {
		r := runShmio(t, append(c.args, "--schema", schemaFile, "--type", "LogEvent"), withStdin(""))
		if r.code != 2 || r.stderr != c.want+"\n" {
			t.Errorf("%s: exit %d, stderr %q; want %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// BenchmarkTailSchema runs the built binary: shmio tail --schema over a log of 2 M 32-byte
// LogEvents to /dev/null, and reports events/s (the goal is at least 1 M/s). With -race the
// binary is race-instrumented and much slower.
func BenchmarkTailSchema(b *testing.B) {
	const events = 2_000_000
	path := fmt.Sprintf("/dev/shm/shmio-bench-tail-schema-%d", os.Getpid())
	if _, err := os.Stat("/dev/shm"); err != nil {
		path = filepath.Join(b.TempDir(), "events")
	}
	defer os.Remove(path)
	s, err := bendec.Load(mustReadFile(b, schemaFile))
	if err != nil {
		b.Fatal(err)
	}
	typ, err := s.Type("LogEvent")
	if err != nil {
		b.Fatal(err)
	}
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 96 << 20, Writable: true})
	if err != nil {
		b.Fatal(err)
	}
	w, err := l.Writer()
	if err != nil {
		b.Fatal(err)
	}
	for i := range events {
		frame, err := w.Allocate(typ.Size())
		if err != nil {
			b.Fatal(err)
		}
		ev := map[string]any{"timestamp": uint64(1764547200000000000 + i), "level": "Info", "message": "Application started"}
		if _, err := typ.Encode(ev, frame); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	w.Close()
	l.Close()
	args := []string{"tail", path, "--from", "start", "--schema", schemaFile, "--type", "LogEvent"}
	last := fmt.Sprintf(`{"timestamp":%d,"level":"Info","message":"Application started"}`, 1764547200000000000+events-1)
	wantLines(b, mustRun(b, []string{"tail", path, "-n", "1", "--schema", schemaFile, "--type", "LogEvent"}), last)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	b.ResetTimer()
	for b.Loop() {
		r := runShmio(b, args, func(c *exec.Cmd) { c.Stdout = devNull })
		if r.code != 0 || r.stderr != "" {
			b.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func mustReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
