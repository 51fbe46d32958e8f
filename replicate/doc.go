// Package replicate ships a shmio log or queue to other hosts through NATS JetStream.
//
// Push tails a local log and publishes its frames, in order, in runs: one JetStream message
// carries a run of consecutive frames (bounded by PushConfig.RunFrames, RunBytes and the server's
// max_payload), sent when full, or when the source is caught up and nothing awaits an ack, or
// after PushConfig.Linger. Pull consumes that stream with a durable consumer and appends the
// frames to a local log elsewhere. JetStream stores, replicates and fails over; this package only
// keeps the two ends exact. The message encoding is described in FORMAT.md, "Replication message".
//
// # Guarantees
//
// One stream carries one source log. A message's id is the log's identity and the cursor its run
// starts at, and it carries Nats-Expected-Last-Sequence, the stream sequence it must follow. The
// server refuses a message whose predecessor is not the stream's last (the leader checks it
// before replicating, with publishes in flight accounted for), so a lost or timed-out publish
// never leaves a gap or a reordering behind it: the pusher drains its window, asks the stream
// where it ends (the last message's Shmio-End), checks that the source holds that run, seeks
// there and carries on. A duplicate ack (a run starting at the same cursor is already stored,
// perhaps a different one) also resynchronises. Nothing is buffered while disconnected
// (nats.ReconnectBufSize(-1)), so a publish made then cannot land after a resync. A run sent by
// a pusher that died could still be stored after its successor read the stream's end only if
// the server held it longer than a new process takes to start and resynchronise; the puller's
// continuity check below turns even that into an error, never a wrong copy. (Nats-Expected-Last-Msg-Id
// would name the predecessor by content, but nats-server 2.15 checks it only when a replica
// applies the message, and a replica that fails the check there stops serving the stream.)
//
// The pusher persists the acknowledged cursor (atomically: temporary file, fsync, rename) and on
// start also reads the stream's last message, so a pusher killed at any point resumes exactly
// after the last run the stream holds. A lock file beside the cursor file refuses a second pusher.
//
// The puller appends the runs of a batch of messages, commits them with one
// FrameWriter.CommitTagged(last stream sequence) and only then acknowledges (AckAll). The tag is
// stored with the committed end atomically, so after a kill -9 the log's CommitTag names the last
// stream message it holds, and the puller restarts its durable consumer at tag+1. Redeliveries at
// or below the tag are skipped; a missing delivery, or a consumer whose delivered count went back
// (a server killed before it saved it), restarts the consumer at tag+1. Each run must start where
// the previous one ended; a message that does not, or in an encoding this version does not know,
// stops the puller with an error rather than a wrong copy.
//
// # Logs
//
// Push reads a shmio.FrameIterator (NextFrames gives every frame's cursors) and Pull appends to a
// shmio.FrameWriter: logs and queues alike. Status takes the source as a shmio.Store, whose
// Distance counts frames and bytes right for queues too. Pull starts after PullConfig.Tag, the
// destination's CommitTag. Push copies each frame into the run before its next read, so a source
// may unmap what it has moved past.
package replicate
