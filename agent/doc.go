// Package agent dispatches prompts read from a shmio log to the Anthropic Messages API (or any
// [Client]) and writes one outcome record per prompt into a response log.
//
// A producer appends prompt frames (JSON or plain text, see [DecodePrompt]) to the input log; the
// agent follows it with [Source.Wait] and [Source.NextFrames], sends each prompt under the
// configured policies (concurrency, TTL, evenly spaced rate limits, optional coalescing,
// streaming, or the Message Batches API) and appends an [Outcome] frame to the output log:
// answered, refused, failed, expired or rejected. No prompt is dropped silently: a prompt either
// has an outcome record or lies at or beyond the checkpoint, so a restarted agent sends it again
// (at-least-once; outcome records carry the prompt's input cursor so readers can drop duplicates).
//
// Failures are sorted into classes. Errors of the agent's own configuration (bad key,
// permission, unknown model, a refused setting) are fatal: dispatching stops with the checkpoint
// before the first unanswered prompt and Run returns a [*FatalError]. Overload and rate limits
// put the whole agent into one shared back-off that probes with a single request. Errors caused
// by one prompt fail that prompt only.
//
// The input and output are the small [Source] and [Sink] interfaces, subsets of shmio.FrameIterator
// and shmio.FrameWriter, so logs and queues plug in alike; each prompt is identified by its
// frame's own cursor (shmio.Frame.Cursor).
package agent
