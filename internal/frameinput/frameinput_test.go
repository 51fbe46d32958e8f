package frameinput

import (
	"bufio"
	"encoding/binary"
	"strings"
	"testing"
)

func collect(t *testing.T, split func(*bufio.Reader, string, int, func([]byte, int64) error) error, in string, size, max int) ([]string, error) {
	t.Helper()
	var got []string
	err := split(bufio.NewReaderSize(strings.NewReader(in), size), "in", max, func(p []byte, n int64) error {
		if n != int64(len(got)+1) {
			t.Fatalf("payload %q numbered %d, want %d", p, n, len(got)+1)
		}
		got = append(got, string(p))
		return nil
	})
	return got, err
}

func TestLines(t *testing.T) {
	// A 16-byte buffer makes the 20-byte line arrive in pieces.
	got, err := collect(t, Lines, "a\n\nbbbbbbbbbbbbbbbbbbbb\nlast", 16, 32)
	if err != nil || strings.Join(got, "|") != "a||bbbbbbbbbbbbbbbbbbbb|last" {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := collect(t, Lines, "x\n", 16, 32); err != nil || len(got) != 1 {
		t.Fatalf("no unterminated last line: %q %v", got, err)
	}
	if _, err := collect(t, Lines, "ok\n"+strings.Repeat("z", 80)+"\n", 16, 32); err == nil || !strings.Contains(err.Error(), "line 2 is longer than 32 bytes") {
		t.Fatalf("long line: %v", err)
	}
	if _, err := collect(t, Lines, "ok\n"+strings.Repeat("z", 12)+"\n", 16, 10); err == nil || !strings.Contains(err.Error(), "line 2 is 12 bytes") {
		t.Fatalf("line over max: %v", err)
	}
}

func TestRecords(t *testing.T) {
	rec := func(p string) string {
		return string(binary.LittleEndian.AppendUint32(nil, uint32(len(p)))) + p
	}
	got, err := collect(t, Records, rec("a\nb")+rec("")+rec("ccc"), 16, 8)
	if err != nil || strings.Join(got, "|") != "a\nb||ccc" {
		t.Fatalf("%q %v", got, err)
	}
	for _, tc := range []struct{ in, want string }{
		{rec("a") + "\x01\x00", "record 2 at byte 5: input ends inside its 4-byte length (2 bytes)"},
		{rec("a") + rec("123456789"), "record 2 at byte 5 has length 9, more than 8 bytes"},
		{rec("abc")[:5], "record 1 at byte 0: input ends after 1 of its 3 bytes"},
	} {
		if _, err := collect(t, Records, tc.in, 16, 8); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}
