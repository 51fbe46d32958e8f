package shmio

import (
	"sync/atomic"

	"github.com/shmio/shmio/internal/format"
)

// The layout is defined in internal/format and documented in FORMAT.md; these short names keep
// the code that uses it readable.
const (
	offHeaderSize = format.OffHeaderSize
	offDataOffset = format.OffDataOffset
	offSize       = format.OffSize

	offMagic     = format.OffMagic
	offVersion   = format.OffVersion
	offFlags     = format.OffFlags
	offID        = format.OffID
	offCreated   = format.OffCreated
	offWriterPID = format.OffWriterPID
	offConflicts = format.OffConflicts
	offTag0End   = format.OffTag0End
	offTag0Tag   = format.OffTag0Tag
	offTag1End   = format.OffTag1End
	offTag1Tag   = format.OffTag1Tag
	offFenceEnd  = format.OffFenceEnd
	offWake      = format.OffWake
	offWaiters   = format.OffWaiters
	offSleepers  = format.OffSleepers

	nodeHeaderSize = format.NodeHeaderSize
	goHeaderSize   = format.GoHeaderSize
	formatVersion  = format.Version

	flagWide      = format.FlagWide
	flagSealed    = format.FlagSealed
	flagNodeFence = format.FlagNodeFence
	flagsKnown    = format.FlagsKnown
)

var magic = format.Magic

// Frame limits.
const (
	// MaxPayload is the largest payload of a Node-compatible frame: the u16 length counts the
	// payload plus its two 2-byte length fields.
	MaxPayload = format.MaxPayload
	// MaxWidePayload is the largest payload of a wide (u32-length) frame.
	MaxWidePayload = format.MaxWidePayload
)

var le = format.LE

func u64at(mem []byte, off int) *atomic.Uint64 { return format.Word64(mem, off) }
func u32at(mem []byte, off int) *atomic.Uint32 { return format.Word32(mem, off) }

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
	lo.lenSize = format.LenSize
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
		lo.lenSize = format.WideLenSize
	}
	if fenced && !lo.wide {
		return bad("flags %#x: a Node fence on a file without wide frames", flags)
	}
	return lo, nil
}

// lenAt decodes the length field of lsize bytes at mem[off:] (see format.FrameLen): the one place
// the package decodes frame lengths.
func lenAt(mem []byte, off, lsize int) int { return format.FrameLen(mem, off, lsize) }
