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
// and, except for the first message after a (re)start on an empty stream,
// Nats-Expected-Last-Msg-Id naming the previous frame. The server rejects a message whose
// predecessor is not the stream's last message, so a lost or timed-out publish can never leave a
// gap or a reordering behind it: the pusher drains its window, asks the stream where it ends, seeks
// the source log there and carries on. The stream therefore holds the source frames in source
// order, each once.
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
// Both sides take logs through small interfaces (Source, Sink, TagReader) that *shmio.Iterator,
// *shmio.Writer and *shmio.Log satisfy, so other frame stores (a segmented queue) plug in
// unchanged. Frames handed to Push must stay valid and unchanged until the pusher is done with
// them (shmio frames are, while the log is open).
package replicate
