package shmio

import (
	"errors"
	"testing"
)

func TestParseCursor(t *testing.T) {
	for _, tc := range []struct {
		s     string
		queue bool
		want  int64
		ok    bool
	}{
		{"42", false, 42, true},
		{" 7 ", true, 7, true},
		{"3:16", true, QueueCursor(3, 16), true},
		{"3:16", false, 0, false},
		{"-1", false, 0, false},
		{"1:4294967296", true, 0, false},
		{"2147483648:0", true, 0, false},
		{"x", true, 0, false},
	} {
		got, err := ParseCursor(tc.s, tc.queue)
		if tc.ok != (err == nil) || tc.ok && got != tc.want || !tc.ok && !errors.Is(err, ErrCursor) {
			t.Errorf("ParseCursor(%q, %v) = %d, %v; want %d ok %v", tc.s, tc.queue, got, err, tc.want, tc.ok)
		}
	}
}
