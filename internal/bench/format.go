package bench

// Units for reports: the command's tables and the descriptions of failures and goals here.

import "fmt"

// FormatNanos prints a latency compactly: 820ns, 3.4µs, 12µs, 1.2ms.
func FormatNanos(ns int64) string {
	switch {
	case ns < 1000:
		return fmt.Sprintf("%dns", ns)
	case ns < 10_000:
		return fmt.Sprintf("%.1fµs", float64(ns)/1e3)
	case ns < 1_000_000:
		return fmt.Sprintf("%.0fµs", float64(ns)/1e3)
	case ns < 10_000_000:
		return fmt.Sprintf("%.1fms", float64(ns)/1e6)
	default:
		return fmt.Sprintf("%.0fms", float64(ns)/1e6)
	}
}

// FormatRate prints a per-second rate with an SI prefix and three significant digits: 950, 12.3k,
// 992k, 1.20M, 95.1M.
func FormatRate(v float64) string {
	unit := ""
	for _, u := range []string{"k", "M", "G"} {
		if v < 999.5 {
			break
		}
		v /= 1000
		unit = u
	}
	switch {
	case unit == "" || v >= 99.95:
		return fmt.Sprintf("%.0f%s", v, unit)
	case v >= 9.995:
		return fmt.Sprintf("%.1f%s", v, unit)
	default:
		return fmt.Sprintf("%.2f%s", v, unit)
	}
}

// FormatBytesRate prints bytes per second in binary units: 512 MiB/s, 3.1 GiB/s.
func FormatBytesRate(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB/s", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.0f MiB/s", v/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB/s", v/(1<<10))
	}
}

// FormatCount prints an integer with thousands separators: 3,000,000.
func FormatCount(n int64) string {
	s := fmt.Sprint(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// FormatSize prints a payload size: 32 B, 1 KiB, 1000 B.
func FormatSize(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
