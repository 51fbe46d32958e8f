package eventstest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/shmio/shmio/bendec"
)

type codec interface {
	Encode(b []byte) error
	Decode(b []byte) error
}

var makers = map[string]func() codec{
	"LogEvent":   func() codec { return new(LogEvent) },
	"Primitives": func() codec { return new(Primitives) },
	"Signed":     func() codec { return new(Signed) },
	"Arrays":     func() codec { return new(Arrays) },
	"Point":      func() codec { return new(Point) },
	"Order":      func() codec { return new(Order) },
	"Cancel":     func() codec { return new(Cancel) },
	"Heartbeat":  func() codec { return new(Heartbeat) },
	"Misc":       func() codec { return new(Misc) },
}

type fixture struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

func load(t *testing.T) (*bendec.Schema, []fixture, [][]byte) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := bendec.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	var hexes []string
	for name, dst := range map[string]any{"values.json": &fs, "node_frames.json": &hexes} {
		data, err := os.ReadFile("../../testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, dst); err != nil {
			t.Fatal(err)
		}
	}
	frames := make([][]byte, len(hexes))
	for i, h := range hexes {
		frames[i], _ = hex.DecodeString(h)
	}
	return s, fs, frames
}

// memberOf picks the generated type for a fixture, through the union view for Message.
func memberOf(t *testing.T, typ string, frame []byte) (string, codec) {
	if typ == "Message" {
		v, err := NewMessageView(frame)
		if err != nil {
			t.Fatal(err)
		}
		typ = v.Kind().String()
	}
	mk, ok := makers[typ]
	if !ok {
		t.Fatalf("no generated type for %s", typ)
	}
	return typ, mk()
}

// TestGeneratedMatchesNode: generated Encode writes exactly the bytes Node bendec wrote for each
// fixture (testdata/node_frames.json, checked against Node by bendec's TestNodeBendec) and the
// dynamic codec writes; Decode then Encode gives the same bytes back, on a dirty frame.
func TestGeneratedMatchesNode(t *testing.T) {
	s, fs, frames := load(t)
	for i, f := range fs {
		node := frames[i]
		name, fromNode := memberOf(t, f.Type, node)
		if err := fromNode.Decode(node); err != nil {
			t.Fatal(err)
		}
		// The dynamic codec fills a generated struct from the fixture's JSON...
		dyn := make([]byte, len(node))
		if _, err := s.EncodeJSON(f.Type, f.Value, dyn); err != nil {
			t.Fatal(err)
		}
		_, fromDyn := memberOf(t, f.Type, dyn)
		if err := s.DecodeInto(name, dyn, fromDyn); err != nil {
			t.Fatalf("%d %s: %v", i, name, err)
		}
		// ... and generated Encode of it writes Node's bytes.
		for _, c := range []codec{fromNode, fromDyn} {
			got := bytes.Repeat([]byte{0xA5}, len(node))
			if err := c.Encode(got); err != nil {
				t.Fatal(err)
			}
			size, _ := s.Size(name)
			if !bytes.Equal(got[:size], node[:size]) || !bytes.Equal(dyn, node) {
				t.Errorf("fixture %d %s:\ngenerated %x\n     node %x\n  dynamic %x", i, name, got[:size], node[:size], dyn)
			}
		}
	}
}

func TestViews(t *testing.T) {
	_, fs, frames := load(t)
	if fs[0].Type != "LogEvent" || fs[11].Type != "Order" || fs[14].Type != "Message" {
		t.Fatal("fixture order changed")
	}
	v, err := NewLogEventView(frames[0])
	if err != nil {
		t.Fatal(err)
	}
	if v.Timestamp() != 1764547200123456789 || v.Level() != LevelInfo || string(v.Message()) != "Application started" {
		t.Errorf("LogEvent view: %d %v %q", v.Timestamp(), v.Level(), v.Message())
	}
	if _, err := NewLogEventView(frames[0][:31]); !errors.Is(err, bendec.ErrShortFrame) {
		t.Errorf("short view: %v", err)
	}
	o, _ := NewOrderView(frames[11])
	if o.Header().MsgType() != MsgTypeOrder || o.Header().Seq() != 7 || o.Side() != SideSell || o.Perm() != PermRead|PermExec ||
		o.Price() != 12345678901234 || string(o.Symbol()) != "AAPL" {
		t.Errorf("Order view: %v %d %v %v %d %q", o.Header().MsgType(), o.Header().Seq(), o.Side(), o.Perm(), o.Price(), o.Symbol())
	}
	if o.Perm().String() != "Read|Exec" || Perm(0x30).String() != "48" || (PermRead|0x10).String() != "Read|16" {
		t.Errorf("Perm strings: %q %q %q", o.Perm(), Perm(0x30), PermRead|0x10)
	}
	m, err := NewMessageView(frames[14])
	if err != nil || m.Kind() != MsgTypeCancel || m.AsCancel().OrderId() != 18446744073709551615 {
		t.Errorf("Message view: %v %v", m.Kind(), err)
	}
	if _, err := NewMessageView([]byte{9, 0, 0, 0, 0, 0}); !errors.Is(err, bendec.ErrUnknownVariant) {
		t.Errorf("unknown member: %v", err)
	}
	if _, err := NewMessageView(frames[14][:13]); !errors.Is(err, bendec.ErrShortFrame) {
		t.Errorf("short member: %v", err)
	}
	a, _ := NewArraysView(frames[9])
	if a.Prices(2) != 4294967295 || string(a.Names(1)) != "12345678" || a.Points(1).X() != 9223372036854775807 || a.Bytes(2) != 128 {
		t.Errorf("Arrays view: %d %q %d %d", a.Prices(2), a.Names(1), a.Points(1).X(), a.Bytes(2))
	}
	mi, _ := NewMiscView(frames[16])
	if fs[16].Type != "Misc" || mi.Temp() != TempCold || mi.Temp().String() != "Cold" || Temp(-1).String() != "Temp(-1)" ||
		mi.Origin().X() != -1 || mi.Origin().Y() != 2.5 || !mi.Flags(2) || mi.Flags(1) || mi.Ratios(1) != -0.25 ||
		mi.SnakeCaseField() != 7 || binary.LittleEndian.Uint32(mi.Grid(1)[8:]) != 4294967295 {
		t.Errorf("Misc view: %v %d %v %v %d", mi.Temp(), mi.Origin().X(), mi.Flags(2), mi.Ratios(1), mi.SnakeCaseField())
	}
	if Level(9).String() != "Level(9)" {
		t.Error(Level(9).String())
	}
}

// TestNoAllocations: Encode, Decode and view getters allocate nothing.
func TestNoAllocations(t *testing.T) {
	_, _, frames := load(t)
	var e LogEvent
	buf := make([]byte, LogEventSize)
	var sink uint64
	allocs := testing.AllocsPerRun(100, func() {
		_ = e.Decode(frames[0])
		_ = e.Encode(buf)
		v := LogEventView(frames[0])
		sink += v.Timestamp() + uint64(v.Level()) + uint64(len(v.Message()))
		m := MessageView(frames[12])
		sink += m.AsOrder().Price()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
	if e.Encode(buf[:31]) == nil || e.Decode(buf[:1]) == nil {
		t.Error("short frames accepted")
	}
}
