package replicate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmio/shmio"
)

// Source is the log Push reads: *shmio.Iterator and *shmio.QueueIterator satisfy it.
type Source interface {
	// NextBatch appends committed frames after the cursor to dst; none when caught up.
	NextBatch(dst [][]byte, o shmio.BatchOptions) ([][]byte, error)
	// Wait returns when a frame past the cursor is committed, or ctx.Err().
	Wait(ctx context.Context) error
	// Cursor is the position of the next frame NextBatch returns.
	Cursor() int64
	// Seek moves the cursor (io.Seeker semantics); offsets must be frame starts.
	Seek(offset int64, whence int) (int64, error)
	// End is the cursor of the committed end.
	End() int64
}

// Sink is the log Pull appends to: *shmio.Writer and *shmio.QueueWriter satisfy it.
type Sink interface {
	// Allocate reserves a frame of n payload bytes to be filled before the commit.
	Allocate(n int) ([]byte, error)
	// CommitTagged publishes the allocated frames and stores tag with the committed end atomically.
	CommitTagged(tag uint64) error
}

// The shmio logs and segmented queues plug in as they are.
var (
	_ Source = (*shmio.Iterator)(nil)
	_ Source = (*shmio.QueueIterator)(nil)
	_ Sink   = (*shmio.Writer)(nil)
	_ Sink   = (*shmio.QueueWriter)(nil)
)

// Header names carried by every replicated message.
const (
	// HeaderCursor is the source cursor (decimal) of the frame the message carries.
	HeaderCursor = "Shmio-Cursor"
)

// MsgID is the Nats-Msg-Id of the frame at cursor in the log identified by logID.
func MsgID(logID uint64, cursor int64) string {
	b := make([]byte, 0, 40)
	b = appendHex16(b, logID)
	b = append(b, ':')
	b = strconv.AppendInt(b, cursor, 10)
	return string(b)
}

func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, digits[(v>>uint(i))&0xf])
	}
	return b
}

// ParseMsgID splits a Nats-Msg-Id made by MsgID.
func ParseMsgID(id string) (logID uint64, cursor int64, err error) {
	hexPart, curPart, ok := strings.Cut(id, ":")
	if !ok || len(hexPart) != 16 {
		return 0, 0, fmt.Errorf("replicate: message id %q is not <log id>:<cursor>", id)
	}
	if logID, err = strconv.ParseUint(hexPart, 16, 64); err != nil {
		return 0, 0, fmt.Errorf("replicate: message id %q: %w", id, err)
	}
	if cursor, err = strconv.ParseInt(curPart, 10, 64); err != nil || cursor < 0 {
		return 0, 0, fmt.Errorf("replicate: message id %q: bad cursor", id)
	}
	return logID, cursor, nil
}

// ConnectOptions are the ways to reach and authenticate to a NATS server or cluster.
type ConnectOptions struct {
	URL     string // one or more comma-separated URLs, e.g. nats://a:4222,nats://b:4222
	Creds   string // a .creds file (JWT + nkey seed), as made by nsc or the NATS operator tooling
	TLSCA   string // PEM file of CAs to verify the server with (tls:// URLs, or servers requiring TLS)
	TLSCert string // client certificate for mutual TLS (with TLSKey)
	TLSKey  string
	Name    string // connection name shown by the server's monitoring
}

// Connect dials NATS with reconnection forever: the pusher and puller outlive server restarts.
func Connect(o ConnectOptions) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Name(o.Name),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("replicate: connect to %s: %w", o.URL, err)
	}
	return nc, nil
}

// StreamOptions describe the stream Push creates when it is missing.
type StreamOptions struct {
	Name     string
	Subject  string                // default DefaultSubject(Name)
	Replicas int                   // default 1
	Storage  jetstream.StorageType // default file
	// Duplicates is the server's de-duplication window; default 2 minutes (JetStream's default).
	Duplicates time.Duration
}

// DefaultSubject is the subject used when none is configured: "shmio.<stream>".
func DefaultSubject(stream string) string { return "shmio." + stream }

// EnsureStream returns the stream, creating it when missing. An existing stream is used as it is
// (its replicas and storage are not changed), but it must capture subject.
func EnsureStream(ctx context.Context, js jetstream.JetStream, o StreamOptions) (jetstream.Stream, error) {
	if o.Subject == "" {
		o.Subject = DefaultSubject(o.Name)
	}
	s, err := js.Stream(ctx, o.Name)
	if err == nil {
		info := s.CachedInfo()
		for _, subj := range info.Config.Subjects {
			if subjectMatches(subj, o.Subject) {
				return s, nil
			}
		}
		return nil, fmt.Errorf("replicate: stream %s exists but does not capture subject %s (it has %v)",
			o.Name, o.Subject, info.Config.Subjects)
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("replicate: look up stream %s: %w", o.Name, err)
	}
	cfg := jetstream.StreamConfig{
		Name:       o.Name,
		Subjects:   []string{o.Subject},
		Storage:    o.Storage,
		Replicas:   max(o.Replicas, 1),
		Duplicates: o.Duplicates,
		Discard:    jetstream.DiscardNew, // a full stream refuses frames instead of silently dropping old ones
	}
	s, err = js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.Stream(ctx, o.Name) // created concurrently by another process
	}
	if err != nil {
		return nil, fmt.Errorf("replicate: create stream %s: %w", o.Name, err)
	}
	return s, nil
}

// subjectMatches reports whether the stream subject pattern pat captures the literal subject subj.
func subjectMatches(pat, subj string) bool {
	pt, st := strings.Split(pat, "."), strings.Split(subj, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) || (p != "*" && p != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

// logf is a nil-safe printf hook.
type logf func(format string, args ...any)

func (l logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}

// sleepCtx sleeps d or until ctx is done, reporting whether the full sleep happened.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
