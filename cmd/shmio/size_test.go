package main

import (
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"4096", 4096}, {"64MiB", 64 << 20}, {"1GiB", 1 << 30}, {"2TiB", 2 << 40},
		{"16M", 16 << 20}, {"16m", 16 << 20}, {"4k", 4 << 10}, {"1KB", 1000}, {"1.5GB", 1_500_000_000},
		{"1.5KiB", 1536}, {" 8 MiB ", 8 << 20}, {"100B", 100}, {"1e3", 1000},
		{"1PiB", 1 << 50}, {"1EiB", 1 << 60}, {"2P", 2 << 50}, {"1PB", 1e15}, {"1EB", 1e18}, {"7E", 7 << 60},
		{"8EiB", -1}, {"9223372036854775807", math.MaxInt64}, {"8589934592GiB", -1},
		{"", -1}, {"MiB", -1}, {"12XB", -1}, {"-1", -1}, {"-1.5MiB", -1}, {"NaN", -1}, {"Inf", -1}, {"1..5M", -1},
	} {
		got, err := parseSize(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0B"}, {100, "100B"}, {1024, "1KiB"}, {1536, "1536B"}, {64 << 20, "64MiB"}, {3 << 30, "3GiB"}, {1 << 40, "1TiB"},
	} {
		if got := formatSize(tc.n); got != tc.want {
			t.Errorf("formatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	var v sizeValue
	if v.String() != "0" || v.Type() != "size" {
		t.Errorf("zero sizeValue prints %q (%s)", v.String(), v.Type())
	}
	if err := v.Set("32MiB"); err != nil || v != 32<<20 || v.String() != "32MiB" {
		t.Errorf("Set(32MiB): %v, %d, %q", err, v, v.String())
	}
	if err := v.Set("lots"); err == nil {
		t.Error("Set(lots) succeeded")
	}
}
