package bendec

import (
	"testing"
)

func benchFrame(b *testing.B) (*Type, []byte) {
	s := loadFixture(b)
	typ, err := s.Type("LogEvent")
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, typ.Size())
	if _, err := typ.EncodeJSON([]byte(`{"timestamp":1764547200123456789,"level":"Info","message":"Application started"}`), frame); err != nil {
		b.Fatal(err)
	}
	return typ, frame
}

// BenchmarkDecodeDynamic decodes the 32-byte LogEvent into a map[string]any (goal: >= 1 M/s).
func BenchmarkDecodeDynamic(b *testing.B) {
	typ, frame := benchFrame(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := typ.Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendJSON decodes the 32-byte LogEvent to a JSON line, as shmio tail --schema does.
func BenchmarkAppendJSON(b *testing.B) {
	typ, frame := benchFrame(b)
	var dst []byte
	var err error
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = typ.AppendJSON(dst[:0], frame); err != nil {
			b.Fatal(err)
		}
		dst = append(dst, '\n')
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEncodeJSON encodes one JSON line into a frame, as shmio append --schema does.
func BenchmarkEncodeJSON(b *testing.B) {
	typ, frame := benchFrame(b)
	line := []byte(`{"timestamp":1764547200123456789,"level":"Info","message":"Application started"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := typ.EncodeJSON(line, frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
