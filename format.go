package shmio

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Header layout. Offsets 0, 8 and 16 are Node shmio's; the rest exists only in files this package
// creates (marked by the magic) and is ignored by Node shmio, which honours headerSize/dataOffset.
const (
	offHeaderSize = 0  // u64 header size
	offDataOffset = 8  // u64 offset of the first frame
	offSize       = 16 // u64 committed end, absolute; the commit point

	offMagic     = 24  // [8]byte "SHMIOGO\x00"
	offVersion   = 32  // u32 format version
	offFlags     = 36  // u32 flags
	offID        = 40  // u64 random log identity, set at creation
	offCreated   = 48  // u64 creation time, Unix nanoseconds
	offWriterPID = 56  // u32 pid of the last writer (informational)
	offConflicts = 60  // u32 commits refused because the committed end moved under the writer (ErrConflict)
	offTag0End   = 64  // u64 commit-tag slot 0: committed end it belongs to
	offTag0Tag   = 72  // u64 commit-tag slot 0: tag
	offTag1End   = 80  // u64 commit-tag slot 1: committed end
	offTag1Tag   = 88  // u64 commit-tag slot 1: tag
	offFenceEnd  = 120 // u64 committed end of a fenced wide file (flagNodeFence): its commit point
	offWake      = 128 // u32 wake word, futex; on its own cache line, away from the commit point
	offWaiters   = 132 // u32 readers asleep on the wake word (informational: a reader killed asleep stays counted)
	offSleepers  = 136 // u32 1 when a reader may sleep on the wake word: set by readers, cleared by the writer as it wakes them

	nodeHeaderSize = 24  // header size of files Node shmio creates
	goHeaderSize   = 192 // header size (and data offset) of files this package creates
	formatVersion  = 1
)

// Flags in the header's flags word.
const (
	flagWide   = 1 << 0 // frames have u32 lengths
	flagSealed = 1 << 1 // the writer finished this file; no frame will follow
	// flagNodeFence: Node shmio's dataOffset and size words both hold the file size, so that Node
	// shmio sees a full, empty log and neither reads u32 frames as u16 ones nor appends; frames
	// start at headerSize and the committed end lives at offFenceEnd. Set on wide files.
	flagNodeFence = 1 << 2

	// flagsKnown are the bits this version understands. A file with other bits set was made by a
	// newer, incompatible version and is refused rather than misread.
	flagsKnown = flagWide | flagSealed | flagNodeFence
)

var magic = [8]byte{'S', 'H', 'M', 'I', 'O', 'G', 'O', 0}

// Frame limits.
const (
	// MaxPayload is the largest payload of a Node-compatible frame: the u16 length counts the
	// payload plus its two 2-byte length fields.
	MaxPayload = 1<<16 - 1 - 4
	// MaxWidePayload is the largest payload of a wide (u32-length) frame.
	MaxWidePayload = 1<<32 - 1 - 8
)

var le = binary.LittleEndian

// u64at and u32at view 8- and 4-byte header words as atomics. The mapping is page aligned and
// every offset used is a multiple of the word size.
func u64at(mem []byte, off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&mem[off])) }
func u32at(mem []byte, off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&mem[off])) }

// Header describes a log file's header.
type Header struct {
	HeaderSize int64  // bytes of header; 24 in Node-made files, 192 in files made here
	DataOffset int64  // file offset of the first frame
	Size       int64  // committed end, an absolute file offset (header included), as in Node shmio
	Capacity   int64  // file size: the most Size can reach
	WideFrames bool   // frames carry u32 lengths: Node shmio cannot read this file
	NodeFormat bool   // no shmio-go header extension (a Node-made file): readers poll instead of sleeping
	Sealed     bool   // the writer sealed the file: no frame will follow
	ID         uint64 // random identity given at creation; 0 for Node-made files
	Version    uint32 // format version; 0 for Node-made files
	WriterPID  int    // pid recorded by the last writer, 0 when none (informational: see Log.WriterStatus)
	Waiters    uint32 // readers asleep in Wait right now
	Conflicts  uint32 // commits refused because another writer, ignoring the lock, moved the committed end (ErrConflict)
}

// newHeader returns the bytes of a fresh header for a file made by this package.
func newHeader(wide bool, id uint64, created int64) []byte {
	h := make([]byte, goHeaderSize)
	le.PutUint64(h[offHeaderSize:], goHeaderSize)
	le.PutUint64(h[offDataOffset:], goHeaderSize)
	le.PutUint64(h[offSize:], goHeaderSize)
	copy(h[offMagic:], magic[:])
	le.PutUint32(h[offVersion:], formatVersion)
	var flags uint32
	if wide {
		flags |= flagWide
	}
	le.PutUint32(h[offFlags:], flags)
	le.PutUint64(h[offID:], id)
	le.PutUint64(h[offCreated:], uint64(created))
	return h
}

// fenceNode makes a fresh wide header h (for a file of capacity bytes) unreadable to Node shmio:
// see flagNodeFence and FORMAT.md.
func fenceNode(h []byte, capacity int64) {
	le.PutUint64(h[offDataOffset:], uint64(capacity))
	le.PutUint64(h[offSize:], uint64(capacity))
	le.PutUint64(h[offFenceEnd:], goHeaderSize)
	le.PutUint32(h[offFlags:], le.Uint32(h[offFlags:])|flagNodeFence)
}

// layout is what Open learned from a header; it does not change while the file is open.
type layout struct {
	sizeOff    int // header offset of the committed end: offSize, or offFenceEnd in fenced files
	headerSize int64
	dataOffset int64
	nodeFormat bool
	wide       bool
	lenSize    int // bytes in each of a frame's two length fields: 2, or 4 for wide frames
}

// overhead is the bytes a frame adds to its payload.
func (l *layout) overhead() int { return 2 * l.lenSize }

// parseHeader validates the header of a mapped file of the given size.
func parseHeader(mem []byte, fileSize int64, path string) (layout, error) {
	bad := func(format string, args ...any) (layout, error) {
		return layout{}, errorf("open", path, -1, ErrBadHeader, format, args...)
	}
	if fileSize < nodeHeaderSize {
		return bad("file is %d bytes, smaller than the %d-byte header", fileSize, nodeHeaderSize)
	}
	var lo layout
	lo.headerSize = int64(le.Uint64(mem[offHeaderSize:]))
	lo.dataOffset = int64(le.Uint64(mem[offDataOffset:]))
	lo.sizeOff = offSize
	if lo.headerSize < nodeHeaderSize || lo.headerSize > fileSize {
		return bad("header size %d outside [%d, %d] (zero-filled or not a log?)", lo.headerSize, nodeHeaderSize, fileSize)
	}
	lo.nodeFormat = lo.headerSize < goHeaderSize || [8]byte(mem[offMagic:offMagic+8]) != magic
	fenced := !lo.nodeFormat && u32at(mem, offFlags).Load()&flagNodeFence != 0
	if fenced {
		lo.dataOffset, lo.sizeOff = lo.headerSize, offFenceEnd
	}
	size := int64(u64at(mem, lo.sizeOff).Load())
	if lo.dataOffset < lo.headerSize || lo.dataOffset > fileSize {
		return bad("data offset %d outside [%d, %d]", lo.dataOffset, lo.headerSize, fileSize)
	}
	if size < lo.dataOffset || size > fileSize {
		return bad("committed end %d outside [%d, %d]", size, lo.dataOffset, fileSize)
	}
	lo.lenSize = 2
	if lo.nodeFormat {
		return lo, nil
	}
	if v := le.Uint32(mem[offVersion:]); v != formatVersion {
		return bad("format version %d, this library reads version %d", v, formatVersion)
	}
	flags := u32at(mem, offFlags).Load()
	if flags&^flagsKnown != 0 {
		return bad("unknown flags %#x (made by a newer shmio?)", flags&^flagsKnown)
	}
	if flags&flagWide != 0 {
		lo.wide = true
		lo.lenSize = 4
	}
	if fenced && !lo.wide {
		return bad("flags %#x: a Node fence on a file without wide frames", flags)
	}
	return lo, nil
}
