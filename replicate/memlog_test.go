package replicate

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

func equalFrames(t *testing.T, want, got [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(want[i], got[i]) {
			t.Fatalf("frame %d differs: got %d bytes, want %d", i, len(got[i]), len(want[i]))
		}
	}
}

func TestPushPullMemLog(t *testing.T) {
	s := startServer(t, t.TempDir(), 0)
	src, dst := newMemLog(), newMemLog()
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	add := func(n int) {
		for i := 0; i < n; i++ {
			f := mixedFrame(rng, len(want))
			want = append(want, f)
			src.append(f)
		}
		src.Commit()
	}
	add(3000)

	push, err := NewPusher(src.iter(), PushConfig{Conn: connect(t, s.ClientURL()), Stream: StreamOptions{Name: "MEM"},
		LogID: 0xabc, CursorFile: t.TempDir() + "/cursor", Window: 64, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	pull, err := NewPuller(dst, PullConfig{Conn: connect(t, s.ClientURL()), Stream: "MEM", Durable: "d", Batch: 100, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	stopPush := runBG(push.Run)
	stopPull := runBG(pull.Run)
	eventually(t, 30*time.Second, "first 3000 frames", func() bool { return pull.Stats().Frames == 3000 })
	add(2000) // the pusher is waiting on the source now
	eventually(t, 30*time.Second, "5000 frames", func() bool { return pull.Stats().Frames == 5000 })
	if err := stopPush(); err != nil {
		t.Fatal(err)
	}
	if err := stopPull(); err != nil {
		t.Fatal(err)
	}
	equalFrames(t, want, dst.snapshot())
	if tag, ok, _ := dst.CommitTag(); !ok || tag != 5000 {
		t.Fatalf("tag %d %v, want 5000", tag, ok)
	}
	ps := push.Stats()
	if ps.Seq != 5000 || ps.Cursor != src.iter().End() {
		t.Fatalf("push stats %+v, committed %d", ps, src.iter().End())
	}
	st, ok, err := ReadCursorFile(t.TempDir() + "/none")
	if err != nil || ok {
		t.Fatal(st, ok, err)
	}
	_ = context.Background
}
