// Package format defines, in one place, every on-disk offset and name of shmio: the log header
// (Node shmio's 24 bytes and this library's extension), the queue words of a segment header, the
// frame length fields, the named-reader file and queue.json. FORMAT.md documents them; this
// package only names them. The root package and the command import it; it imports nothing of
// theirs.
package format

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"
)

// LE is the byte order of every integer in every shmio file.
var LE = binary.LittleEndian

// Log header: Node shmio's part (every log has it). See FORMAT.md, "Header".
const (
	OffHeaderSize = 0  // u64 header size
	OffDataOffset = 8  // u64 file offset of the first frame
	OffSize       = 16 // u64 committed end, absolute; the commit point

	NodeHeaderSize = 24 // header size of files Node shmio creates
)

// Log header: this library's extension, in files marked by Magic. Node shmio ignores it.
const (
	OffMagic     = 24  // [8]byte Magic
	OffVersion   = 32  // u32 Version
	OffFlags     = 36  // u32 Flag* bits
	OffID        = 40  // u64 random identity, set at creation
	OffCreated   = 48  // u64 creation time, Unix nanoseconds
	OffWriterPID = 56  // u32 pid of the last writer (informational)
	OffConflicts = 60  // u32 commits refused because the committed end moved under the writer (ErrConflict)
	OffTag0End   = 64  // u64 commit-tag slot 0: committed end it belongs to
	OffTag0Tag   = 72  // u64 commit-tag slot 0: tag
	OffTag1End   = 80  // u64 commit-tag slot 1: committed end
	OffTag1Tag   = 88  // u64 commit-tag slot 1: tag
	OffSegNum    = 96  // u64 queue segments: segment number (0: not a segment, or not yet stamped)
	OffSegPrevID = 104 // u64 queue segments: ID of the previous segment (0 for the first)
	OffSealedAt  = 112 // u64 queue segments: Unix nanoseconds when sealed
	OffFenceEnd  = 120 // u64 committed end of a fenced wide file (FlagNodeFence): its commit point
	// OffSegPrevEnd: u64 queue segments: the final committed size of the previous segment,
	// written when the writer moves on from it (0: unknown), so that a cursor at the end of a
	// segment retention removed still names a position.
	OffSegPrevEnd = 184
	OffWake       = 128 // u32 wake word (futex); on its own cache line, away from the commit point
	OffWaiters    = 132 // u32 readers asleep on the wake word (informational)
	OffSleepers   = 136 // u32 1 when a reader may sleep on the wake word (see FORMAT.md, "Waking")

	GoHeaderSize = 192 // header size (and data offset) of files this library creates
	Version      = 1   // the extension's format version
)

// Bits of the flags word.
const (
	FlagWide   = 1 << 0 // frames have u32 lengths
	FlagSealed = 1 << 1 // the writer finished the file; no frame will follow
	// FlagNodeFence: Node shmio's dataOffset and size words both hold the file size, so that Node
	// shmio sees a full, empty log and neither reads u32 frames as u16 ones nor appends; frames
	// start at headerSize and the committed end lives at OffFenceEnd. Set on wide files.
	FlagNodeFence = 1 << 2

	// FlagsKnown are the bits this version understands; a file with others is refused.
	FlagsKnown = FlagWide | FlagSealed | FlagNodeFence
)

// Magic marks a header carrying this library's extension.
var Magic = [8]byte{'S', 'H', 'M', 'I', 'O', 'G', 'O', 0}

// Frames: [len][payload][len], len counting the whole frame. See FORMAT.md, "Frames".
const (
	LenSize     = 2 // bytes of each length field
	WideLenSize = 4 // bytes of each length field in wide files

	MaxPayload     = 1<<16 - 1 - 2*LenSize     // largest payload of a Node-compatible frame
	MaxWidePayload = 1<<32 - 1 - 2*WideLenSize // largest payload of a wide frame
)

// FrameLen decodes the length field of lsize bytes (LenSize or WideLenSize) at b[off:]: the
// length of the frame it heads or ends. The caller bounds off.
func FrameLen(b []byte, off, lsize int) int {
	if lsize == LenSize {
		return int(LE.Uint16(b[off:]))
	}
	return int(LE.Uint32(b[off:]))
}

// Word64 and Word32 view 8- and 4-byte header words as atomics. Mappings are page aligned and
// every offset above is a multiple of its word's size.
func Word64(mem []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

func Word32(mem []byte, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off]))
}

// Queue directory. See FORMAT.md, "Queues".
const (
	SegSuffix    = ".seg"        // segment files: SegDigits zero-padded digits, then SegSuffix
	SegDigits    = 10            // digits of a segment number in its file name
	MaxSegNum    = 1<<31 - 1     // largest segment number
	MetaFile     = "queue.json"  // see QueueMeta
	LockFile     = "writer.lock" // flocked by the queue's single writer
	ReadersDir   = "readers"     // named readers' files: ReadersDir/NAME.ReaderSuffix
	ReaderSuffix = ".reader"     // suffix of a named reader's file

	CursorOffBits = 32 // a queue cursor is segment<<CursorOffBits | offset
	CursorOffMask = 1<<CursorOffBits - 1
)

// SegName returns the file name of segment n.
func SegName(n int64) string { return fmt.Sprintf("%0*d%s", SegDigits, n, SegSuffix) }

// ParseSegName returns the number of a segment file name, or false.
func ParseSegName(name string) (int64, bool) {
	s, ok := strings.CutSuffix(name, SegSuffix)
	if !ok || len(s) < SegDigits {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > MaxSegNum {
		return 0, false
	}
	return n, true
}

// Named-reader file, ReadersDir/NAME.reader: ReaderFileSize bytes, mapped shared by its reader.
const (
	OffReaderMagic    = 0  // [8]byte ReaderMagic
	OffReaderVersion  = 8  // u32 ReaderVersion
	OffReaderPID      = 12 // u32 pid of the process using the name last (informational)
	OffReaderCursor   = 16 // u64 queue cursor: everything before it is done
	OffReaderCaughtUp = 24 // u64 Unix nanoseconds when the reader last found nothing more to read
	OffReaderCreated  = 32 // u64 Unix nanoseconds
	ReaderFileSize    = 64
	ReaderVersion     = 1
)

// ReaderMagic marks a named-reader file.
var ReaderMagic = [8]byte{'S', 'H', 'M', 'I', 'O', 'R', 'D', 0}

// queue.json's fixed values.
const (
	QueueFormat  = "shmio-queue"
	QueueVersion = 1
)

// QueueMeta is queue.json. R is the retention policy's type, which the root package exports
// (shmio.RetentionPolicy, whose JSON field names are part of this schema).
type QueueMeta[R any] struct {
	Format      string `json:"format"`  // QueueFormat
	Version     int    `json:"version"` // QueueVersion
	SegmentSize int64  `json:"segment_size"`
	Retention   R      `json:"retention"`
	// ID is the queue's identity, 16 hex digits (a string: JSON numbers lose 64-bit precision in
	// most other languages). Absent in queues made before it existed.
	ID string `json:"id,omitempty"`
	// Mode is the permission bits of the queue's files, in octal ("0640"). Absent in queues made
	// before it existed: their first segment's mode is the queue's.
	Mode string `json:"mode,omitempty"`
}

// QueueID parses QueueMeta.ID; 0 when absent or malformed.
func QueueID(s string) uint64 {
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0
	}
	return id
}

// FormatQueueID formats an identity for QueueMeta.ID.
func FormatQueueID(id uint64) string { return fmt.Sprintf("%016x", id) }

// Log header: the shared-writer words (FORMAT.md, "Shared writers"), after the words above.
const (
	OffShareLock     = 144 // u64 append lock: 0 free, else holder pid<<32 | holder token
	OffShareSleepers = 152 // u32 shared writers' waiting bits: 1 sleeping, 2 want, 4 invite (FORMAT.md, "Shared writers")
	OffShareSteals   = 156 // u32 locks taken over from dead holders (informational)

	// ShareTokenBase is the file offset of the byte each shared writer keeps an exclusive
	// open-file-description lock on while it lives: ShareTokenBase + token. It lies beyond any
	// mapped size, so it never meets the byte-0 locks of queue segments.
	ShareTokenBase = 1 << 40
)
