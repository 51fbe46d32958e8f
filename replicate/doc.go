// Package replicate ships a shmio log to other hosts through NATS JetStream.
//
// Push tails a local log and publishes every frame, in order, as one message of a JetStream
// stream; Pull consumes that stream with a durable consumer and appends each message as one frame
// to a local log elsewhere. Nothing here is home-made distribution: JetStream stores, replicates
// and fails over; this package only keeps the two ends exact.
//
// # Guarantees
//
// One stream carries one source log. Every message has the headers
//
//	Nats-Msg-Id   <log id, 16 hex digits>:<source cursor>   JetStream drops duplicates by it
//	Shmio-Cursor  <source cursor>                           where the frame starts in the source log
//
// and Nats-Expected-Last-Sequence, the stream sequence the message must follow. The server
// refuses a message whose predecessor is not the stream's last (the leader checks it before
// replicating, with publishes in flight accounted for), so a lost or timed-out publish can never
// leave a gap or a reordering behind it: the pusher drains its window, asks the stream where it
// ends, seeks the source log there and carries on. The stream therefore holds the source frames
// in source order, each once. (Nats-Expected-Last-Msg-Id would say the same by message id, but
// nats-server 2.15 checks it only when a replica applies the message, and a replica that fails
// the check there stops serving the stream.)
//
// The pusher persists the acknowledged cursor (atomically: temporary file, fsync, rename) and on
// start also reads the stream's last message, so a pusher killed at any point resumes exactly
// after the last frame the stream holds, even when the cursor file lags.
//
// The puller appends a batch of messages, commits it with Writer.CommitTagged(last stream
// sequence) and only then acknowledges (AckAll) the last message. The tag is stored with the
// committed end atomically, so after a kill -9 Log.CommitTag names the last stream message the
// log holds, and the puller restarts its durable consumer at tag+1. Re-deliveries with a sequence
// at or below the tag are skipped; a missing delivery (a gap in the consumer sequence) restarts
// the consumer at tag+1 instead of committing around it. The local log holds each stream message
// once, in stream order.
//
// # Logs
//
// Both sides take logs through small interfaces: Source (what Push reads; *shmio.Iterator and
// *shmio.QueueIterator satisfy it) and Sink (what Pull appends to; *shmio.Writer and
// *shmio.QueueWriter). Pull starts after PullConfig.Tag, the destination's commit tag (Log.CommitTag
// or Queue.CommitTag). Push reads a frame only until its next call to NextBatch (publishing copies
// it), so a source may unmap what it has moved past.
package replicate
