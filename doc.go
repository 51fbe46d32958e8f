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
// FORMAT.md in the repository describes the format once, byte by byte; internal/format defines
// every offset in code. In short: a file starts with Node shmio's 24-byte header (header size,
// data offset, and the committed end, which is the commit point: one atomic 64-bit store). Files
// created here extend it to 192 bytes (magic, version, flags, identity, commit tags, queue
// segment words, and the wake words readers sleep on), which Node shmio ignores. Frames follow,
// packed back to back:
//
//	[u16 len][payload][u16 len]    len = len(payload) + 4, payload 1..65531 bytes
//
// or with u32 lengths in wide files (Options.WideFrames), which Node shmio cannot read: their
// Node header is fenced so that Node shmio sees a full, empty log. Cursors, as in Node shmio, are
// byte offsets relative to the data offset. A Queue is a directory of such files (segments) plus
// queue.json and one small file per named reader.
//
// # Concurrency
//
// One writer per log, across processes: Log.Writer takes an exclusive flock on the file, which the
// kernel drops when the holder dies however it dies. The writer writes frames beyond the committed
// end, where no reader looks, and Commit publishes them all with one atomic store of size.
// Readers load size atomically and read only below it, so they never see a frame before its
// commit, nor an uncommitted frame after a writer crashed; a new writer resumes at size.
// Iterators take no locks and never write to the log, except that a reader going to sleep in
// Wait announces itself in the header, so that Commit pays for a wake-up (a futex wake) only when
// some reader may sleep: a commit with no sleepers costs one store and one load. FORMAT.md
// ("Waking") describes the protocol. A Node shmio writer takes no lock and wakes no one, so
// sleepers re-check the committed end every 10ms, except while the header's writerPID names a
// live process (a writer of this package holds the log and wakes them): then every 500ms, also
// how soon Wait notices a truncated file (ErrMappingGone).
//
// A Node shmio writer appending while a writer of this package holds the log is detected at the
// next Commit, which finds the committed end moved and refuses with ErrConflict instead of moving
// it back (Header.Conflicts counts these). Writer refuses a sealed log (ErrSealed) and a committed
// end that is not the end of a frame (ErrCorrupt). Writer.Close does not commit: frames allocated
// since the last Commit are discarded, and Close says how many with ErrUncommitted.
//
// Many processes may write one log together instead, each through Log.SharedWriter: a commit
// takes an append lock in the header at its first Allocate, writes in place and publishes as
// the Writer does, and releases the lock; a waiter takes a dead holder's lock over within
// milliseconds (FORMAT.md, "Shared writers"). Shared writers and the exclusive Writer exclude
// each other. Queue.SharedWriter does the same for a queue, the writer holding the head
// segment's lock rolling it.
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
