package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnectOptions are the ways to reach and authenticate to a NATS server or cluster. Secrets are
// values here; the command reads them from files or the environment, never from its arguments.
type ConnectOptions struct {
	URL      string // one or more comma-separated URLs, e.g. nats://a:4222,nats://b:4222
	Creds    string // a .creds file (JWT + nkey seed), as made by nsc or the NATS operator tooling
	NKeySeed string // a file holding an nkey seed (user nkey authentication)
	User     string // user name, with Password
	Password string
	Token    string
	TLSCA    string // PEM file of CAs to verify the server with (tls:// URLs, or servers requiring TLS)
	TLSCert  string // client certificate for mutual TLS (with TLSKey)
	TLSKey   string
	Name     string // connection name shown by the server's monitoring
	// ConnectTimeout is how long Connect keeps retrying a server that cannot be reached at
	// start; 0 retries until ctx is done. Once connected, the connection reconnects forever.
	ConnectTimeout time.Duration
	// Logf hears about each failed attempt (with the URL redacted); nil discards.
	Logf func(format string, args ...any)
}

// ErrPermanent marks errors that retrying cannot fix (bad credentials, invalid stream name, a
// full stream, a missing stream with Once): Run and Connect return them wrapped.
var ErrPermanent = errors.New("permanent")

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Connect dials NATS with reconnection forever: the pusher and puller outlive server restarts.
// A server that cannot be reached at start is retried with backoff (see ConnectTimeout).
func Connect(o ConnectOptions) (*nats.Conn, error) { return ConnectContext(context.Background(), o) }

// ConnectContext is Connect, giving up when ctx is done.
func ConnectContext(ctx context.Context, o ConnectOptions) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Nothing is buffered while disconnected: a publish made then fails at once instead of
		// landing after the pusher has resynchronised (see doc.go, "Guarantees").
		nats.ReconnectBufSize(-1),
		nats.Name(o.Name),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.NKeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeed)
		if err != nil {
			return nil, &permanentError{fmt.Errorf("replicate: nkey seed: %w", err)}
		}
		opts = append(opts, opt)
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	shown := RedactURL(o.URL)
	var deadline time.Time
	if o.ConnectTimeout > 0 {
		deadline = time.Now().Add(o.ConnectTimeout)
	}
	backoff := 250 * time.Millisecond
	for {
		nc, err := nats.Connect(o.URL, opts...)
		if err == nil {
			return nc, nil
		}
		err = fmt.Errorf("replicate: connect to %s: %w", shown, err)
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
			strings.Contains(err.Error(), "invalid URL") || strings.Contains(err.Error(), "tls:") {
			return nil, &permanentError{err}
		}
		if !deadline.IsZero() && time.Now().Add(backoff).After(deadline) {
			return nil, fmt.Errorf("%w (gave up after %v)", err, o.ConnectTimeout)
		}
		logf(o.Logf).printf("%v; retrying in %v", err, backoff)
		if !sleepCtx(ctx, backoff) {
			return nil, err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// RedactURL hides any user, password or token in a comma-separated list of NATS URLs, for printing.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if at := strings.LastIndex(p, "@"); at >= 0 {
			scheme := ""
			if k := strings.Index(p, "://"); k >= 0 && k < at {
				scheme = p[:k+3]
			}
			p = scheme + "REDACTED" + p[at:]
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// StreamOptions describe the stream Push creates when it is missing.
type StreamOptions struct {
	Name     string
	Subject  string                // default DefaultSubject(Name)
	Replicas int                   // default 1
	Storage  jetstream.StorageType // default file
	// Duplicates is the server's de-duplication window; default 2 minutes (JetStream's default).
	Duplicates time.Duration
	// Limits of a new stream; 0 is unlimited. A full stream refuses new messages (the pusher
	// waits, or with Once fails); MaxAge drops old messages, which a lagging puller then reports.
	MaxBytes int64
	MaxMsgs  int64
	MaxAge   time.Duration
}

// CheckStreamName reports whether JetStream accepts name as a stream name.
func CheckStreamName(name string) error {
	if name == "" {
		return &permanentError{errors.New("replicate: empty stream name")}
	}
	if len(name) > 255 || strings.ContainsAny(name, " \t\r\n.*>/\\") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &permanentError{fmt.Errorf("replicate: invalid stream name %q: JetStream names have no spaces, '.', '*', '>', '/' or '\\'", name)}
	}
	return nil
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
	if errors.Is(err, jetstream.ErrInvalidStreamName) {
		return nil, &permanentError{fmt.Errorf("replicate: stream %s: %w", o.Name, err)}
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("replicate: look up stream %s: %w", o.Name, err)
	}
	cfg := jetstream.StreamConfig{
		MaxBytes:   limit(o.MaxBytes),
		MaxMsgs:    limit(o.MaxMsgs),
		MaxAge:     o.MaxAge,
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

func limit(v int64) int64 {
	if v <= 0 {
		return -1
	}
	return v
}

// isStreamFull reports whether a publish was refused because the stream reached its limits.
func isStreamFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == 10077 && strings.Contains(ae.Description, "maximum")
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
