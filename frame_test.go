package shmio

import (
	"fmt"
	"io"
	"testing"
)

// TestFrameCursors checks that every read path hands out each frame with its own cursor and the
// cursor after it, equal to what Cursor reports around the same frame, for u16 and wide logs.
func TestFrameCursors(t *testing.T) {
	for _, wide := range []bool{false, true} {
		t.Run(fmt.Sprintf("wide=%v", wide), func(t *testing.T) {
			l := utOpen(t, Options{Capacity: 1 << 20, Writable: true, WideFrames: wide})
			w, err := l.Writer()
			if err != nil {
				t.Fatal(err)
			}
			var want []Frame
			c := int64(0)
			lsize := int64(2)
			if wide {
				lsize = 4
			}
			for i := 1; i <= 300; i++ {
				p := make([]byte, i%37+1)
				p[0] = byte(i)
				if err := w.Append(p); err != nil {
					t.Fatal(err)
				}
				end := c + int64(len(p)) + 2*lsize
				want = append(want, Frame{Data: p, Cursor: c, End: end})
				c = end
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			it, err := l.NewIterator(IteratorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkFrames(t, "NextFrames", collectFrames(t, it, 7), want)
			it.Seek(0, io.SeekStart)
			var got []Frame
			for {
				before := it.Cursor()
				f, err := it.NextFrame()
				if err != nil {
					t.Fatal(err)
				}
				if f.Data == nil {
					break
				}
				if f.Cursor != before || f.End != it.Cursor() {
					t.Fatalf("NextFrame %+v, cursor before %d after %d", f, before, it.Cursor())
				}
				got = append(got, f)
			}
			checkFrames(t, "NextFrame", got, want)
			got = got[:0]
			for {
				f, err := it.PrevFrame()
				if err != nil {
					t.Fatal(err)
				}
				if f.Data == nil {
					break
				}
				if f.Cursor != it.Cursor() {
					t.Fatalf("PrevFrame %+v, cursor after %d", f, it.Cursor())
				}
				got = append([]Frame{f}, got...)
			}
			checkFrames(t, "PrevFrame", got, want)
			frames, bytes, err := l.Distance(want[10].Cursor, want[20].Cursor)
			if err != nil || frames != 10 || bytes != want[20].Cursor-want[10].Cursor {
				t.Fatalf("Distance = %d, %d, %v", frames, bytes, err)
			}
			if frames, bytes, err = l.Distance(0, -1); err != nil || frames != 300 || bytes != c {
				t.Fatalf("Distance to the end = %d, %d, %v; want 300, %d", frames, bytes, err, c)
			}
			if _, _, err = l.Distance(0, want[5].Cursor+1); err == nil {
				t.Fatal("Distance to a cursor inside a frame: no error")
			}
		})
	}
}

// TestQueueFrameCursors checks queue frame cursors across rolls: each frame's Cursor seeks to
// it, End is where the next frame starts (or its segment's end, before a roll), and Distance
// counts across segments.
func TestQueueFrameCursors(t *testing.T) {
	q := qtOpen(t, QueueOptions{SegmentSize: 1 << 10, Writable: true})
	w, err := q.Writer()
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := 0; i < n; i++ {
		p := make([]byte, 40+i%9)
		p[0] = byte(i)
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	it, err := q.NewIterator(IteratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	got := collectFrames(t, it, 16)
	if len(got) != n {
		t.Fatalf("%d frames, want %d", len(got), n)
	}
	segs := map[int64]bool{}
	for i, f := range got {
		if f.Data[0] != byte(i) {
			t.Fatalf("frame %d holds %d", i, f.Data[0])
		}
		seg, off := SplitQueueCursor(f.Cursor)
		eseg, eoff := SplitQueueCursor(f.End)
		segs[seg] = true
		if eseg != seg || eoff != off+int64(len(f.Data))+4 {
			t.Fatalf("frame %d: cursor %d/%d, end %d/%d", i, seg, off, eseg, eoff)
		}
		if i+1 < n && got[i+1].Cursor != f.End && got[i+1].Cursor != QueueCursor(seg+1, 0) {
			t.Fatalf("frame %d ends at %d, the next starts at %d", i, f.End, got[i+1].Cursor)
		}
		r, err := q.NewIterator(IteratorOptions{StartCursor: f.Cursor})
		if err != nil {
			t.Fatalf("frame %d: StartCursor %d: %v", i, f.Cursor, err)
		}
		p, err := r.Next()
		ok := err == nil && p != nil && p[0] == byte(i) // before Close unmaps p
		r.Close()
		if !ok {
			t.Fatalf("frame %d: read at its cursor: %v", i, err)
		}
	}
	if len(segs) < 5 {
		t.Fatalf("only %d segments: the test wants rolls", len(segs))
	}
	frames, bytes, err := q.Distance(got[3].Cursor, got[150].Cursor)
	var wantBytes int64
	for _, f := range got[3:150] {
		wantBytes += int64(len(f.Data)) + 4
	}
	if err != nil || frames != 147 || bytes != wantBytes {
		t.Fatalf("Distance = %d, %d, %v; want 147, %d", frames, bytes, err, wantBytes)
	}
	end, err := q.EndCursor()
	if err != nil || end != it.End() {
		t.Fatalf("EndCursor %d, %v; iterator End %d", end, err, it.End())
	}
}

func collectFrames(t *testing.T, it FrameIterator, batch int) []Frame {
	t.Helper()
	var got, buf []Frame
	for {
		var err error
		buf, err = it.NextFrames(buf[:0], BatchOptions{MaxFrames: batch})
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) == 0 {
			return got
		}
		for _, f := range buf {
			f.Data = append([]byte(nil), f.Data...) // a queue unmaps segments it has left
			got = append(got, f)
		}
	}
}

func checkFrames(t *testing.T, how string, got, want []Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", how, len(got), len(want))
	}
	for i := range want {
		if got[i].Cursor != want[i].Cursor || got[i].End != want[i].End || string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("%s: frame %d = {%d %d %x}, want {%d %d %x}", how, i, got[i].Cursor, got[i].End, got[i].Data, want[i].Cursor, want[i].End, want[i].Data)
		}
	}
}
