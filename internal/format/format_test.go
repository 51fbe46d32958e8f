package format

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestFormatMDAgrees: every offset FORMAT.md's tables give is the one defined here, and every
// offset defined here is in a table: the document and the code cannot drift apart.
func TestFormatMDAgrees(t *testing.T) {
	f, err := os.Open("../../FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type key struct {
		reader bool
		field  string
	}
	got := map[key]int{}
	reader := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			reader = strings.Contains(line, "Named-reader file")
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		off, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		if err != nil {
			continue
		}
		field := strings.TrimSpace(cells[3])
		if field == "reserved" {
			continue
		}
		k := key{reader, field}
		if prev, ok := got[k]; ok && prev != off {
			t.Errorf("FORMAT.md gives %s at %d and at %d", field, prev, off)
		}
		got[k] = off
	}
	want := map[key]int{
		{false, "headerSize"}: OffHeaderSize, {false, "dataOffset"}: OffDataOffset, {false, "size"}: OffSize,
		{false, "magic"}: OffMagic, {false, "version"}: OffVersion, {false, "flags"}: OffFlags,
		{false, "id"}: OffID, {false, "created"}: OffCreated, {false, "writerPID"}: OffWriterPID, {false, "conflicts"}: OffConflicts, {false, "fenceEnd"}: OffFenceEnd,
		{false, "tag0.end"}: OffTag0End, {false, "tag0.tag"}: OffTag0Tag,
		{false, "tag1.end"}: OffTag1End, {false, "tag1.tag"}: OffTag1Tag,
		{false, "segment"}: OffSegNum, {false, "prevID"}: OffSegPrevID, {false, "sealedAt"}: OffSealedAt, {false, "prevEnd"}: OffSegPrevEnd,
		{false, "wake"}: OffWake, {false, "waiters"}: OffWaiters, {false, "sleepers"}: OffSleepers,
		{false, "shareLock"}: OffShareLock, {false, "shareSleepers"}: OffShareSleepers, {false, "shareSteals"}: OffShareSteals,
		{true, "magic"}: OffReaderMagic, {true, "version"}: OffReaderVersion, {true, "pid"}: OffReaderPID,
		{true, "cursor"}: OffReaderCursor, {true, "caughtUp"}: OffReaderCaughtUp, {true, "created"}: OffReaderCreated,
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("FORMAT.md has no row for %+v (offset %d)", k, w)
		} else if g != w {
			t.Errorf("FORMAT.md puts %+v at %d, the code at %d", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("FORMAT.md row %+v at %d has no constant here", k, g)
		}
	}
}

func TestSegName(t *testing.T) {
	if n := SegName(42); n != "0000000042.seg" {
		t.Fatalf("SegName(42) = %q", n)
	}
	for _, bad := range []string{"42.seg", "000000004x.seg", "0000000000.seg", "0000000042.log", "9999999999.seg"} {
		if n, ok := ParseSegName(bad); ok {
			t.Errorf("ParseSegName(%q) = %d, want refusal", bad, n)
		}
	}
	if n, ok := ParseSegName(SegName(MaxSegNum)); !ok || n != MaxSegNum {
		t.Fatalf("round trip of MaxSegNum: %d, %v", n, ok)
	}
}

func TestFrameLen(t *testing.T) {
	b := []byte{0, 0x34, 0x12, 0x78, 0x56, 0}
	if n := FrameLen(b, 1, LenSize); n != 0x1234 {
		t.Fatalf("u16 length %#x", n)
	}
	if n := FrameLen(b, 1, WideLenSize); n != 0x56781234 {
		t.Fatalf("u32 length %#x", n)
	}
	if QueueID(FormatQueueID(0xc15ab6b9d8acbe35)) != 0xc15ab6b9d8acbe35 || QueueID("zz") != 0 {
		t.Fatal("queue id round trip")
	}
}
