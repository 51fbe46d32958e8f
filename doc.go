// Package shmio is a shared-memory, append-only log for event sourcing and inter-process
// communication on one machine.
//
// A log is one memory-mapped file, usually under /dev/shm. One writer process allocates frames
// in place (zero-copy), fills them and publishes them with an atomic commit; any number of reader
// processes iterate with their own cursors, in batches, forward and backward, and can block until
// new frames arrive. The format is byte-compatible with the Node.js shmio addon (v1.0.4), so Go
// and Node processes can share a log.
//
// # File format
//
// All integers are little-endian. The first 24 bytes are Node shmio's header:
//
//	off size field
//	  0    8 headerSize   bytes of header (24 in Node-made files, 192 in files made here)
//	  8    8 dataOffset   file offset of the first frame (equal to headerSize here)
//	 16    8 size         committed end: the absolute file offset just past the last committed
//	                      frame. The commit point: written with one atomic 64-bit store.
//
// Files created by this package extend the header to 192 bytes. Node shmio honours a larger
// headerSize/dataOffset and ignores these fields:
//
//	 24    8 magic        "SHMIOGO\x00"; a file without it is read in Node-compatible mode
//	 32    4 version      1
//	 36    4 flags        bit 0: wide frames (u32 lengths); bit 1: sealed; bit 2: Node fence
//	                      (wide files: see below). Unknown bits: refused
//	 40    8 id           random identity given at creation (never 0)
//	 48    8 created      creation time, Unix nanoseconds
//	 56    4 writerPID    pid of the current or last writer (informational)
//	 60    4 conflicts    commits refused because another writer moved size (ErrConflict)
//	 64   16 tag slot 0   committed end (8) and commit tag (8), see Writer.CommitTagged
//	 80   16 tag slot 1   committed end (8) and commit tag (8)
//	 96    8 segment      queue segments only: segment number (0 in plain logs)
//	104    8 prevID       queue segments only: id of the previous segment
//	112    8 sealedAt     queue segments only: when the segment was sealed, Unix nanoseconds
//	120    8 fenceEnd     committed end of a fenced wide file, in place of size
//	128    4 wake         futex word: bumped by the writer to wake sleeping readers
//	132    4 waiters      number of readers asleep on wake (informational)
//	136    4 sleepers     1 when a reader may be asleep on wake; the writer clears it as it wakes
//	140   52 (reserved, zero)
//
// Frames follow at dataOffset, packed back to back with no alignment or padding:
//
//	[u16 len][payload][u16 len]    len = len(payload) + 4, payload 1..65531 bytes
//
// The length is repeated after the payload so the log can be walked backward. Wide files
// (Options.WideFrames) use u32 lengths, len = len(payload) + 8, for payloads beyond 64 KiB;
// Node shmio cannot read them, so their dataOffset and size words hold the file size (Node shmio
// sees a full, empty log): frames start at headerSize and the committed end is fenceEnd. Zero-length payloads are not allowed. Bytes between size and the
// end of the file are unspecified: they may hold frames a writer allocated but never committed.
//
// Cursors, as in Node shmio, are byte offsets relative to dataOffset: 0 is the first frame, and
// the cursor after a frame is the cursor before it plus len.
//
// # Concurrency
//
// One writer per log, across processes: Log.Writer takes an exclusive flock on the file, which the
// kernel drops when the holder dies however it dies. The writer writes frames beyond the committed
// end, where no reader looks, and Commit publishes them all with one atomic store of size.
// Readers load size atomically and read only below it, so they never see a frame before its
// commit, nor an uncommitted frame after a writer crashed; a new writer resumes at size.
// Iterators take no locks and never write to the log, except that a reader going to sleep in
// Wait sets the header's sleepers word (and counts itself in waiters, for Header): Commit reads
// sleepers and only when it is set clears it, bumps the wake word and calls futex wake, so a
// commit with no sleepers costs one store and one load. Clearing is what keeps a reader killed
// in its sleep from costing every later commit a system call: it costs one. A Node shmio writer
// takes no lock and wakes no one, so sleepers re-check the committed end every 10ms, except while
// the header's writerPID names a live process (a writer of this package holds the log and wakes
// them): then every 500ms, also how soon Wait notices a truncated file (ErrMappingGone).
//
// A Node shmio writer appending while a writer of this package holds the log is detected at the
// next Commit, which finds the committed end moved and refuses with ErrConflict instead of moving
// it back (Header.Conflicts counts these). Writer refuses a sealed log (ErrSealed) and a committed
// end that is not the end of a frame (ErrCorrupt). Writer.Close does not commit: frames allocated
// since the last Commit are discarded, and Close says how many with ErrUncommitted.
//
// A Log may be shared by goroutines; a Writer or an Iterator belongs to one goroutine at a time.
// Open one iterator per reading goroutine.
//
// # Slice validity
//
// Allocate returns a slice of the mapping to fill in place; it is the caller's to write until
// Commit. Next, NextBatch and Prev return slices of the mapping, not copies: they stay valid and
// unchanged until the Log is closed (committed frames are never rewritten), and must not be
// modified. Reader mappings are read-only, so a write through such a slice faults. Copy a frame
// to keep it past Close.
//
// # Robustness
//
// Open validates the header and refuses files that are too small, zero-filled or garbage
// (ErrBadHeader), symbolic links and non-regular files. Readers bound every frame by the
// committed end and the mapping, so a damaged file gives ErrCorrupt, never a read outside the
// mapping; an iterator stops on a corrupt frame without moving past it. If another process
// truncates the file while it is mapped, the iterator methods return ErrMappingGone instead of
// letting the fault kill the process (runtime/debug.SetPanicOnFault). A file truncated inside
// its last mapped page reads as zeros from the cut on: readers check the trailing length of a
// frame followed by the committed end or by bytes that are no frame (one load per batch), so
// the frame cut in two gives ErrCorrupt rather than zero bytes. DebugChecks (or SHMIO_DEBUG=1)
// check both lengths of every frame on every read (a cost per frame, see README.md), the
// previous frame at each Allocate (a write past a payload), and the frame chain at each Seek.
//
// The writer's own stores into the mapping (Allocate, and the caller filling the slice) are not
// guarded that way: they are the hot path, and a writer holds the lock, so only a process that
// ignores the protocol can truncate the file under it.
//
// Creating a log is atomic (built unnamed with O_TMPFILE, or under an unpredictable temporary
// name where the file system cannot, then linked into place; a creator killed midway leaves
// nothing, or a temporary file the next create in that directory removes), reserves the
// whole capacity with fallocate so a full /dev/shm fails at Open rather than with SIGBUS later,
// and gives mode 0600 unless Options.Mode says otherwise. The format assumes a little-endian
// machine, as the Node addon does.
package shmio
