package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/replicate"
)

func init() { register(newReplicateCmd()) }

// natsFlags are the connection flags every replicate subcommand takes. Secrets come from files
// or the environment, never from the command line (visible in ps) or the output.
type natsFlags struct {
	url, creds, tlsCA, tlsCert, tlsKey string
	user, passwordFile, tokenFile      string
	nkeyFile                           string
	storeDir, listen                   string
	connectTimeout                     time.Duration
}

func (n *natsFlags) add(cmd *cobra.Command, embedded bool, connectTimeout time.Duration) {
	f := cmd.Flags()
	f.StringVar(&n.url, "nats", "", `NATS server URL(s), comma-separated for a cluster (nats://host:4222, tls://host:4222)`)
	if embedded {
		cmd.Flags().Lookup("nats").Usage += `, or "embedded" to run an in-process server`
		f.StringVar(&n.storeDir, "store-dir", "shmio-nats", "JetStream storage directory of the embedded server")
		f.StringVar(&n.listen, "listen", "127.0.0.1:4222", "address the embedded server listens on (other processes connect there)")
	}
	f.StringVar(&n.creds, "creds", "", "NATS credentials file (JWT and nkey seed, as made by nsc)")
	f.StringVar(&n.nkeyFile, "nkey-file", "", "file holding a user nkey seed (or $"+replicate.EnvNKeyFile+")")
	f.StringVar(&n.user, "user", "", "user name for user/password authentication (or $"+replicate.EnvUser+")")
	f.StringVar(&n.passwordFile, "password-file", "", "file holding the password (or $"+replicate.EnvPassword+")")
	f.StringVar(&n.tokenFile, "token-file", "", "file holding an authentication token (or $"+replicate.EnvToken+")")
	f.StringVar(&n.tlsCA, "tls-ca", "", "PEM file of the CA(s) that signed the server certificate")
	f.StringVar(&n.tlsCert, "tls-cert", "", "client certificate (PEM) for servers that require mutual TLS")
	f.StringVar(&n.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	f.DurationVar(&n.connectTimeout, "connect-timeout", connectTimeout, "give up when no server answers for this long at start (0: retry forever); once connected, reconnect forever")
	_ = cmd.MarkFlagRequired("nats")
}

// options turns the flags into replicate.ConnectOptions, reading secrets.
func (n *natsFlags) options(url, name string) (replicate.ConnectOptions, error) {
	o := replicate.ConnectOptions{URL: url, Creds: n.creds, TLSCA: n.tlsCA, TLSCert: n.tlsCert, TLSKey: n.tlsKey, Name: name,
		ConnectTimeout: n.connectTimeout, Logf: func(f string, a ...any) { stderrf(f, a...) }}
	err := o.LoadSecrets(replicate.SecretSources{User: n.user, PasswordFile: n.passwordFile, TokenFile: n.tokenFile, NKeyFile: n.nkeyFile})
	switch {
	case errors.Is(err, replicate.ErrURLCredentials):
		err = fmt.Errorf("--nats: %w: use --user with %s or --password-file, --token-file, --nkey-file or --creds", err, replicate.EnvPassword)
	case err != nil && o.User == "" && o.Password != "":
		err = errors.New("a password needs a user name: --user or $" + replicate.EnvUser)
	}
	return o, err
}

// connect dials NATS, starting the embedded server first when asked; stop undoes both. A server
// that does not answer is retried with backoff (said on stderr) until --connect-timeout.
func (n *natsFlags) connect(ctx context.Context, name string) (nc *nats.Conn, stop func(), err error) {
	url := n.url
	o, err := n.options(url, name)
	if err != nil {
		return nil, nil, err
	}
	var srv *server.Server
	if url == "embedded" {
		if srv, url, err = replicate.StartEmbedded(n.storeDir, n.listen); err != nil {
			return nil, nil, err
		}
		o.URL = url
		fmt.Fprintf(os.Stderr, "shmio: embedded NATS server with JetStream in %s, listening on %s\n", n.storeDir, url)
	}
	nc, err = replicate.ConnectContext(ctx, o)
	if err != nil {
		if srv != nil {
			srv.Shutdown()
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("interrupted while connecting to %s", replicate.RedactURL(url))
		}
		return nil, nil, err
	}
	return nc, func() {
		nc.Close()
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}, nil
}

func newReplicateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replicate",
		Short: "Copy a log to other hosts through NATS JetStream (push, pull, status)",
		Long: `Replicate a log through a NATS JetStream stream, exactly once.

"push" tails a local log and publishes every frame, in order, to a stream (created if missing).
"pull" consumes the stream with a durable consumer and appends each message as one frame to a
local log on another host. Both survive kill -9 at any point: the pusher resumes after the last
frame the stream holds, the puller after the last stream message its log holds (a commit tag
stored with the log's committed end), so the copy holds each frame once, in order.

--log may name a queue directory instead of a log file on either side (pull needs the queue
made first with shmio create --queue).

Try it on one machine with --nats embedded (an in-process NATS server storing in --store-dir);
in production point --nats at your NATS cluster (with --creds and TLS).`,
		Example: `  shmio replicate push --log /dev/shm/events --nats embedded --stream EVENTS
  shmio replicate pull --log /dev/shm/copy --nats nats://127.0.0.1:4222 --stream EVENTS
  shmio replicate status --nats nats://127.0.0.1:4222 --stream EVENTS --log /dev/shm/events --pull-log /dev/shm/copy`,
	}
	cmd.AddCommand(newReplicatePushCmd(), newReplicatePullCmd(), newReplicateStatusCmd())
	return cmd
}

// parseLogIDFlag parses --log-id (0 when not given).
func parseLogIDFlag(flag string) (uint64, error) {
	if flag == "" {
		return 0, nil
	}
	id, err := strconv.ParseUint(strings.TrimPrefix(flag, "0x"), 16, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("--log-id %q: want a non-zero hexadecimal number", flag)
	}
	return id, nil
}

// replSource is what push and status read: a log file or a queue directory.
type replSource struct {
	store shmio.Store
	id    uint64 // identity in message ids: the log's or the queue's (or --log-id)
}

// openReplSource opens the log or queue at path for reading. A queue is named by Queue.ID,
// which stays the same across its segments, so message ids stay unique as it rolls.
func openReplSource(path, idFlag string) (*replSource, error) {
	id, err := parseLogIDFlag(idFlag)
	if err != nil {
		return nil, err
	}
	var s shmio.Store
	if shmio.IsQueue(path) {
		s, err = openQueue(path, false)
	} else {
		s, err = openLog(path, false, false)
	}
	if err != nil {
		return nil, err
	}
	if id == 0 {
		id = replicate.StoreID(s)
	}
	if id == 0 {
		s.Close()
		return nil, fmt.Errorf("%s was made by Node shmio and has no identity: pass --log-id with a random hex "+
			"number (for example --log-id %016x), and the same one on every restart", path, time.Now().UnixNano())
	}
	return &replSource{store: s, id: id}, nil
}

// signalContext is cancelled by SIGINT or SIGTERM: push and pull then stop cleanly.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// every calls f every d until the returned stop is called (d <= 0: never).
func every(d time.Duration, f func()) (stop func()) {
	if d <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { close(done); <-finished }
}

func stderrf(format string, args ...any) { fmt.Fprintf(os.Stderr, "shmio: "+format+"\n", args...) }

func parseStorage(s string) (jetstream.StorageType, error) {
	switch strings.ToLower(s) {
	case "file", "":
		return jetstream.FileStorage, nil
	case "memory", "mem":
		return jetstream.MemoryStorage, nil
	}
	return 0, fmt.Errorf("--storage %q: want file or memory", s)
}

func newReplicatePushCmd() *cobra.Command {
	var (
		nf                                        natsFlags
		logPath, stream, subject, storage, cursor string
		idFlag                                    string
		replicas, window, runFrames               int
		runBytes                                  = sizeValue(256 << 10)
		maxBytes                                  sizeValue
		maxMsgs                                   int64
		maxAge, linger                            time.Duration
		once                                      bool
		progress                                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "push --log PATH --nats URL --stream NAME",
		Short: "Publish a log's (or queue's) frames to a JetStream stream, following new frames",
		Long: `Publish every frame of a log to a JetStream stream, then keep following the log.
--log may also be a queue directory: its frames are published across segment rolls, and the
queue's identity (recorded in its queue.json) names them.

Frames travel in runs: one message carries up to --run-frames consecutive frames (at most
--run-bytes, and within the server's max_payload); a run that is not full goes out at once when
nothing awaits an ack, or after --linger otherwise. Each message's Nats-Msg-Id is made of the
log's identity and the run's first cursor, so JetStream drops duplicates; its encoding is
described in FORMAT.md ("Replication message"). At most --window messages await their ack; the
acknowledged cursor is saved in --cursor-file (atomically), and a lock file beside it
(<cursor-file>.lock) refuses a second pusher. On start the pusher reads the stream's last
message and resumes right after it. Use one stream per log.

The stream is created when missing, with --replicas copies on --storage and the --max-bytes,
--max-msgs and --max-age limits (a full stream refuses new messages: push waits, or with --once
fails); an existing stream is used as it is. A server that does not answer at start is retried
(see --connect-timeout). Credentials: --creds, --nkey-file, --user with $SHMIO_NATS_PASSWORD or
--password-file, --token-file or $SHMIO_NATS_TOKEN. Stop with Ctrl-C or SIGTERM.`,
		Example: `  shmio replicate push --log /dev/shm/events --nats embedded --stream EVENTS
  shmio replicate push --log /dev/shm/events --nats nats://n1:4222,nats://n2:4222,nats://n3:4222 \
      --stream EVENTS --replicas 3 --max-bytes 100GiB --creds ~/.nkeys/shmio.creds --tls-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseStorage(storage)
			if err != nil {
				return err
			}
			if replicas < 1 || replicas > 5 {
				return fmt.Errorf("--replicas %d: JetStream allows 1 to 5", replicas)
			}
			if err := replicate.CheckStreamName(stream); err != nil {
				return err
			}
			rs, err := openReplSource(logPath, idFlag)
			if err != nil {
				return err
			}
			defer rs.store.Close()
			it, err := rs.store.OpenReader(shmio.IteratorOptions{})
			if err != nil {
				return fmt.Errorf("%s: %s", logPath, rootCause(err))
			}
			defer it.Close()
			if cursor == "" {
				cursor = replicate.DefaultCursorFile(logPath, stream)
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			nc, stop, err := nf.connect(ctx, "shmio replicate push "+logPath)
			if err != nil {
				return err
			}
			defer stop()
			p, err := replicate.NewPusher(it, replicate.PushConfig{
				Conn: nc, Stream: replicate.StreamOptions{Name: stream, Subject: subject, Replicas: replicas, Storage: st,
					MaxBytes: int64(maxBytes), MaxMsgs: maxMsgs, MaxAge: maxAge},
				LogID: rs.id, CursorFile: cursor, Window: window, RunFrames: runFrames, RunBytes: int(runBytes), Linger: linger,
				Once: once, Logf: func(f string, a ...any) { stderrf(f, a...) },
			})
			if err != nil {
				return err
			}
			var last replicate.PushStats
			stopProgress := every(progress, func() {
				if s := p.Stats(); s.Frames != last.Frames {
					stderrf("pushed %d frames in %d messages this run; stream sequence %d, source cursor %d", s.Frames, s.Acked, s.Seq, s.Cursor)
					last = s
				}
			})
			err = p.Run(ctx)
			stopProgress()
			s := p.Stats()
			stderrf("push: %d frames (%d payload bytes) stored this run in %d messages (%d duplicates); stream %s at sequence %d, source cursor %d saved in %s",
				s.Frames, s.Bytes, s.Acked, s.Duplicates, stream, s.Seq, s.Cursor, cursor)
			return err
		},
	}
	nf.add(cmd, true, 0)
	f := cmd.Flags()
	f.StringVar(&logPath, "log", "", "the log or queue directory to publish (required)")
	f.StringVar(&stream, "stream", "", "JetStream stream name (required)")
	f.StringVar(&subject, "subject", "", "subject to publish on (default shmio.<stream>)")
	f.IntVar(&replicas, "replicas", 1, "replicas of the stream when it is created (3 or 5 on a cluster)")
	f.StringVar(&storage, "storage", "file", "storage of the stream when it is created: file or memory")
	f.Var(&maxBytes, "max-bytes", "limit of the stream's size when it is created (0: none)")
	f.Int64Var(&maxMsgs, "max-msgs", 0, "limit of the stream's messages when it is created (0: none)")
	f.DurationVar(&maxAge, "max-age", 0, "age after which the stream drops messages, when it is created (0: never)")
	f.StringVar(&cursor, "cursor-file", "", "where the acknowledged cursor is saved (default <log>.<stream>.cursor, next to the log or queue directory)")
	f.StringVar(&idFlag, "log-id", "", "identity of the log in message ids, hex (required for logs made by Node shmio)")
	f.IntVar(&window, "window", 32, "most messages awaiting their ack")
	f.IntVar(&runFrames, "run-frames", 8192, "most frames per message")
	f.Var(&runBytes, "run-bytes", "most encoded bytes per message (capped below the server's max_payload)")
	f.DurationVar(&linger, "linger", time.Millisecond, "how long a run that is not full waits for more frames while messages await their ack")
	f.BoolVar(&once, "once", false, "exit when every committed frame is acknowledged instead of following the log (non-zero on errors retrying cannot fix)")
	f.DurationVar(&progress, "progress", 10*time.Second, "print progress this often on stderr (0: never)")
	_ = cmd.MarkFlagRequired("log")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

// openPullLog opens (or creates, with capacity) the destination log.
func openPullLog(path string, capacity int64, wide bool) (*shmio.Log, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		l, err := shmio.Open(shmio.Options{Path: path, Capacity: capacity, Writable: true, WideFrames: wide})
		if err != nil {
			return nil, fmt.Errorf("%s: cannot create a log of %s: %s", path, formatSize(capacity), rootCause(err))
		}
		stderrf("created %s (%s)", path, formatSize(capacity))
		return l, nil
	}
	l, err := openLog(path, true, false)
	if err == nil && l.Header().NodeFormat {
		l.Close()
		return nil, fmt.Errorf("%s was made by Node shmio, which has no room for the commit tag pull needs; pull into a new log", path)
	}
	return l, err
}

// replDest is what pull appends to: a log file or a queue directory, with its writer.
type replDest struct {
	sink  shmio.FrameWriter
	id    uint64 // names the default durable consumer
	tag   uint64
	close func()
}

// openReplDest opens the destination of pull: an existing queue directory, or a log (created
// with capacity when missing). Queues are made with shmio create --queue beforehand: their
// segment size and retention are choices pull has no business guessing.
func openReplDest(path string, capacity int64, wide bool) (*replDest, error) {
	var s shmio.Store
	var err error
	if shmio.IsQueue(path) {
		s, err = openQueue(path, true)
	} else {
		s, err = openPullLog(path, capacity, wide)
	}
	if err != nil {
		return nil, err
	}
	tag, err := replicate.DestTag(s)
	if errors.Is(err, replicate.ErrForeignFrames) {
		err = fmt.Errorf("%s %w", path, replicate.ErrForeignFrames)
	} else if err != nil {
		err = fmt.Errorf("%s: %s", path, rootCause(err))
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	w, err := s.OpenWriter()
	if err != nil {
		s.Close()
		if errors.Is(err, shmio.ErrLocked) {
			return nil, fmt.Errorf("%s: another process writes to it (only one pull per log or queue)", path)
		}
		return nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	return &replDest{sink: w, id: replicate.StoreID(s), tag: tag, close: func() { w.Close(); s.Close() }}, nil
}

func newReplicatePullCmd() *cobra.Command {
	var (
		nf                                natsFlags
		logPath, stream, durable, subject string
		capacity                          = sizeValue(256 << 20)
		wide, once                        bool
		batch                             int
		progress                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "pull --nats URL --stream NAME --log PATH",
		Short: "Append a JetStream stream's messages to a local log, exactly once",
		Long: `Consume a stream with a durable consumer and append the frames each message carries to a local
log (created with --capacity when missing, only once the server answered). Messages are appended
in batches; each batch is committed together with the stream sequence of its last message (the
log's commit tag) and only then acknowledged. On start the puller resumes right after that tag,
so after a crash or kill -9 the log holds each frame once, in order. A message in an encoding
this version does not know, or a run that does not follow the previous one, stops pull with an
error. With --once a missing stream is an error too. Stop with Ctrl-C or SIGTERM.

--log may also be a queue directory, made beforehand with shmio create --queue (pull never
creates one): the commit tag then rides on the queue's segments, across rolls.`,
		Example: `  shmio replicate pull --log /dev/shm/copy --nats nats://127.0.0.1:4222 --stream EVENTS
  shmio replicate pull --log /data/events.copy --capacity 8GiB --nats tls://nats.example:4222 \
      --stream EVENTS --creds shmio.creds --tls-ca ca.pem --durable events-copy-host2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := replicate.CheckStreamName(stream); err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			// Connect first: a wrong URL must not leave a new log behind.
			nc, stop, err := nf.connect(ctx, "shmio replicate pull "+logPath)
			if err != nil {
				return err
			}
			defer stop()
			if once { // nothing to wait for: a missing stream must not leave a new log behind either
				if js, err := jetstream.New(nc); err == nil {
					if _, err := js.Stream(ctx, stream); errors.Is(err, jetstream.ErrStreamNotFound) {
						return fmt.Errorf("stream %s: %w", stream, err)
					}
				}
			}
			d, err := openReplDest(logPath, int64(capacity), wide)
			if err != nil {
				return err
			}
			defer d.close()
			if durable == "" {
				durable = replicate.DefaultDurable(d.id)
			}
			p, err := replicate.NewPuller(d.sink, replicate.PullConfig{
				Conn: nc, Stream: stream, Durable: durable, FilterSubject: subject, Tag: d.tag, Batch: batch, Once: once,
				Logf: func(f string, a ...any) { stderrf(f, a...) },
			})
			if err != nil {
				return err
			}
			var last replicate.PullStats
			stopProgress := every(progress, func() {
				if s := p.Stats(); s.Frames != last.Frames {
					stderrf("pulled %d frames in %d messages this run; log at stream sequence %d, %d pending", s.Frames, s.Msgs, s.Tag, s.Pending)
					last = s
				}
			})
			err = p.Run(ctx)
			stopProgress()
			s := p.Stats()
			stderrf("pull: %d frames (%d payload bytes) in %d messages appended this run; %s holds stream %s up to sequence %d (durable %s)",
				s.Frames, s.Bytes, s.Msgs, logPath, stream, s.Tag, durable)
			return err
		},
	}
	nf.add(cmd, true, 0)
	f := cmd.Flags()
	f.StringVar(&logPath, "log", "", "the log to append to, created when missing, or an existing queue directory (required)")
	f.StringVar(&stream, "stream", "", "JetStream stream name (required)")
	f.StringVar(&durable, "durable", "", "durable consumer name, one per destination log (default shmio-pull-<log id>)")
	f.StringVar(&subject, "subject", "", "take only this subject of the stream")
	f.Var(&capacity, "capacity", "capacity of the log when pull creates it")
	f.BoolVar(&wide, "wide", false, "create the log with u32 frame lengths (for payloads over 65531 bytes)")
	f.IntVar(&batch, "batch", 64, "most messages (runs of frames) appended per commit")
	f.BoolVar(&once, "once", false, "exit when nothing is pending instead of waiting for more (non-zero on errors retrying cannot fix, such as a missing stream)")
	f.DurationVar(&progress, "progress", 10*time.Second, "print progress this often on stderr (0: never)")
	_ = cmd.MarkFlagRequired("log")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}
