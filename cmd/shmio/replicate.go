package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/replicate"
)

func init() { register(newReplicateCmd()) }

// natsFlags are the connection flags every replicate subcommand takes.
type natsFlags struct {
	url, creds, tlsCA, tlsCert, tlsKey string
	storeDir, listen                   string
}

func (n *natsFlags) add(cmd *cobra.Command, embedded bool) {
	f := cmd.Flags()
	f.StringVar(&n.url, "nats", "", `NATS server URL(s), comma-separated for a cluster (nats://host:4222, tls://host:4222)`)
	if embedded {
		cmd.Flags().Lookup("nats").Usage += `, or "embedded" to run an in-process server`
		f.StringVar(&n.storeDir, "store-dir", "shmio-nats", "JetStream storage directory of the embedded server")
		f.StringVar(&n.listen, "listen", "127.0.0.1:4222", "address the embedded server listens on (other processes connect there)")
	}
	f.StringVar(&n.creds, "creds", "", "NATS credentials file (JWT and nkey seed, as made by nsc)")
	f.StringVar(&n.tlsCA, "tls-ca", "", "PEM file of the CA(s) that signed the server certificate")
	f.StringVar(&n.tlsCert, "tls-cert", "", "client certificate (PEM) for servers that require mutual TLS")
	f.StringVar(&n.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	_ = cmd.MarkFlagRequired("nats")
}

// connect dials NATS, starting the embedded server first when asked; stop undoes both.
func (n *natsFlags) connect(name string) (nc *nats.Conn, stop func(), err error) {
	url := n.url
	var srv *server.Server
	if url == "embedded" {
		if srv, url, err = startEmbedded(n.storeDir, n.listen); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(os.Stderr, "shmio: embedded NATS server with JetStream in %s, listening on %s\n", n.storeDir, url)
	}
	nc, err = replicate.Connect(replicate.ConnectOptions{
		URL: url, Creds: n.creds, TLSCA: n.tlsCA, TLSCert: n.tlsCert, TLSKey: n.tlsKey, Name: name,
	})
	if err != nil {
		if srv != nil {
			srv.Shutdown()
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

// startEmbedded runs a nats-server with JetStream in this process.
func startEmbedded(storeDir, listen string) (*server.Server, string, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %q: want host:port, such as 127.0.0.1:4222", listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, "", fmt.Errorf("--listen %q: bad port", listen)
	}
	if port != 0 {
		// nats-server reports a busy port only in its log; say it plainly instead.
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, "", fmt.Errorf("cannot listen on %s (%v): if another shmio replicate runs the embedded "+
				"server there, connect to it with --nats nats://%s, or pick another --listen", listen, unwrapNetError(err), listen)
		}
		l.Close()
	} else {
		port = -1 // nats-server's "pick a free port"
	}
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("--store-dir: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "shmio-embedded", Host: host, Port: port, JetStream: true, StoreDir: storeDir,
		NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, "", fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, "", fmt.Errorf("embedded NATS server did not start on %s (is %s in use by another server?)", listen, storeDir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, "", fmt.Errorf("embedded NATS server: JetStream did not start in %s", storeDir)
	}
	return srv, srv.ClientURL(), nil
}

func unwrapNetError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
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

// replicateLogID returns the identity used in message ids: the header's, or --log-id for Node-made logs.
func replicateLogID(l *shmio.Log, flag string) (uint64, error) {
	if id, err := parseLogIDFlag(flag); id != 0 || err != nil {
		return id, err
	}
	if id := l.Header().ID; id != 0 {
		return id, nil
	}
	return 0, fmt.Errorf("%s was made by Node shmio and has no identity: pass --log-id with a random hex "+
		"number (for example --log-id %016x), and the same one on every restart", l.Path(), time.Now().UnixNano())
}

// replSource is what push and status read: a log file or a queue directory.
type replSource struct {
	src   replicate.Source
	id    uint64       // identity in message ids: the log's or the queue's (or --log-id)
	q     *shmio.Queue // nil for a log
	close func()
}

// openReplSource opens the log or queue at path for reading. A queue is named by Queue.ID,
// which stays the same across its segments, so message ids stay unique as it rolls.
func openReplSource(path, idFlag string) (*replSource, error) {
	if shmio.IsQueue(path) {
		q, err := openQueue(path, false)
		if err != nil {
			return nil, err
		}
		id, err := parseLogIDFlag(idFlag)
		if err != nil {
			q.Close()
			return nil, err
		}
		if id == 0 {
			id = q.ID()
		}
		it, err := q.NewIterator(shmio.IteratorOptions{})
		if err != nil {
			q.Close()
			return nil, fmt.Errorf("%s: %s", path, rootCause(err))
		}
		return &replSource{src: it, id: id, q: q, close: func() { q.Close() }}, nil
	}
	l, err := openLog(path, false, false)
	if err != nil {
		return nil, err
	}
	id, err := replicateLogID(l, idFlag)
	if err != nil {
		l.Close()
		return nil, err
	}
	it, err := l.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	return &replSource{src: it, id: id, close: func() { l.Close() }}, nil
}

// defaultCursorFile is the pusher's cursor file next to the log (or queue directory).
func defaultCursorFile(path, stream string) string {
	return filepath.Clean(path) + "." + stream + ".cursor"
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
		replicas, window                          int
		once                                      bool
		progress                                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "push --log PATH --nats URL --stream NAME",
		Short: "Publish a log's (or queue's) frames to a JetStream stream, following new frames",
		Long: `Publish every frame of a log to a JetStream stream, then keep following the log.
--log may also be a queue directory: its frames are published across segment rolls, and the
queue's identity (recorded in its queue.json) names them.

Each frame becomes one message on --subject (default shmio.<stream>) carrying its source cursor
(header Shmio-Cursor) and a Nats-Msg-Id made of the log's identity and that cursor, so JetStream
drops duplicates. Publishing is asynchronous with at most --window messages awaiting their ack;
the acknowledged cursor is saved in --cursor-file (atomically). On start the pusher also reads
the stream's last message and resumes right after it. Use one stream per log.

The stream is created when missing, with --replicas copies on --storage; an existing stream is
used as it is. Stop with Ctrl-C or SIGTERM.`,
		Example: `  shmio replicate push --log /dev/shm/events --nats embedded --stream EVENTS
  shmio replicate push --log /dev/shm/events --nats nats://n1:4222,nats://n2:4222,nats://n3:4222 \
      --stream EVENTS --replicas 3 --creds ~/.nkeys/shmio.creds --tls-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseStorage(storage)
			if err != nil {
				return err
			}
			if replicas < 1 || replicas > 5 {
				return fmt.Errorf("--replicas %d: JetStream allows 1 to 5", replicas)
			}
			rs, err := openReplSource(logPath, idFlag)
			if err != nil {
				return err
			}
			defer rs.close()
			if cursor == "" {
				cursor = defaultCursorFile(logPath, stream)
			}
			nc, stop, err := nf.connect("shmio replicate push " + logPath)
			if err != nil {
				return err
			}
			defer stop()
			p, err := replicate.NewPusher(rs.src, replicate.PushConfig{
				Conn: nc, Stream: replicate.StreamOptions{Name: stream, Subject: subject, Replicas: replicas, Storage: st},
				LogID: rs.id, CursorFile: cursor, Window: window, Once: once, Logf: func(f string, a ...any) { stderrf(f, a...) },
			})
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			var last replicate.PushStats
			stopProgress := every(progress, func() {
				if s := p.Stats(); s.Acked != last.Acked {
					stderrf("pushed %d frames this run; stream sequence %d, source cursor %d", s.Acked, s.Seq, s.Cursor)
					last = s
				}
			})
			err = p.Run(ctx)
			stopProgress()
			s := p.Stats()
			stderrf("push: %d frames acknowledged this run (%d duplicates); stream %s at sequence %d, source cursor %d saved in %s",
				s.Acked, s.Duplicates, stream, s.Seq, s.Cursor, cursor)
			return err
		},
	}
	nf.add(cmd, true)
	f := cmd.Flags()
	f.StringVar(&logPath, "log", "", "the log or queue directory to publish (required)")
	f.StringVar(&stream, "stream", "", "JetStream stream name (required)")
	f.StringVar(&subject, "subject", "", "subject to publish on (default shmio.<stream>)")
	f.IntVar(&replicas, "replicas", 1, "replicas of the stream when it is created (3 or 5 on a cluster)")
	f.StringVar(&storage, "storage", "file", "storage of the stream when it is created: file or memory")
	f.StringVar(&cursor, "cursor-file", "", "where the acknowledged cursor is saved (default <log>.<stream>.cursor, next to the log or queue directory)")
	f.StringVar(&idFlag, "log-id", "", "identity of the log in message ids, hex (required for logs made by Node shmio)")
	f.IntVar(&window, "window", 1024, "most messages awaiting their ack")
	f.BoolVar(&once, "once", false, "exit when every committed frame is acknowledged instead of following the log")
	f.DurationVar(&progress, "progress", 10*time.Second, "print progress this often on stderr (0: never)")
	_ = cmd.MarkFlagRequired("log")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

// openPullLog opens (or creates) the destination log and returns it with its commit tag.
func openPullLog(path string, capacity int64, wide bool) (*shmio.Log, uint64, error) {
	_, statErr := os.Stat(path)
	if errors.Is(statErr, fs.ErrNotExist) {
		l, err := shmio.Open(shmio.Options{Path: path, Capacity: capacity, Writable: true, WideFrames: wide})
		if err != nil {
			return nil, 0, fmt.Errorf("%s: cannot create a log of %s: %s", path, formatSize(capacity), rootCause(err))
		}
		stderrf("created %s (%s)", path, formatSize(capacity))
		return l, 0, nil
	}
	l, err := openLog(path, true, false)
	if err != nil {
		return nil, 0, err
	}
	h := l.Header()
	if h.NodeFormat {
		l.Close()
		return nil, 0, fmt.Errorf("%s was made by Node shmio, which has no room for the commit tag pull needs; pull into a new log", path)
	}
	tag, ok, err := l.CommitTag()
	if err != nil {
		l.Close()
		return nil, 0, err
	}
	if !ok && h.Size != h.DataOffset {
		l.Close()
		return nil, 0, fmt.Errorf("%s holds frames that pull did not write (no commit tag); pull into a new or empty log", path)
	}
	return l, tag, nil
}

// replDest is what pull appends to: a log file or a queue directory, with its writer.
type replDest struct {
	sink  replicate.Sink
	id    uint64 // names the default durable consumer
	tag   uint64
	close func()
}

// openReplDest opens the destination of pull: an existing queue directory, or a log (created
// with capacity when missing). Queues are made with shmio create --queue beforehand: their
// segment size and retention are choices pull has no business guessing.
func openReplDest(path string, capacity int64, wide bool) (*replDest, error) {
	if shmio.IsQueue(path) {
		q, err := openQueue(path, true)
		if err != nil {
			return nil, err
		}
		tag, ok, err := q.CommitTag()
		if err != nil {
			q.Close()
			return nil, fmt.Errorf("%s: %s", path, rootCause(err))
		}
		if !ok {
			segs, err := q.Segments()
			if err != nil {
				q.Close()
				return nil, fmt.Errorf("%s: %s", path, rootCause(err))
			}
			for _, s := range segs {
				if s.Committed > 0 {
					q.Close()
					return nil, fmt.Errorf("%s holds frames that pull did not write (no commit tag); pull into a new or empty queue", path)
				}
			}
		}
		w, err := q.Writer()
		if err != nil {
			q.Close()
			if errors.Is(err, shmio.ErrLocked) {
				return nil, fmt.Errorf("%s: another process writes to this queue (only one pull per queue)", path)
			}
			return nil, fmt.Errorf("%s: %s", path, rootCause(err))
		}
		return &replDest{sink: w, id: q.ID(), tag: tag, close: func() { q.Close() }}, nil // Close closes w
	}
	l, tag, err := openPullLog(path, capacity, wide)
	if err != nil {
		return nil, err
	}
	w, err := l.Writer()
	if err != nil {
		l.Close()
		if errors.Is(err, shmio.ErrLocked) {
			return nil, fmt.Errorf("%s: another process writes to this log (only one pull per log)", path)
		}
		return nil, fmt.Errorf("%s: %s", path, rootCause(err))
	}
	return &replDest{sink: w, id: l.Header().ID, tag: tag, close: func() { w.Close(); l.Close() }}, nil
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
		Long: `Consume a stream with a durable consumer and append each message as one frame to a local log
(created with --capacity when missing). Messages are appended in batches; each batch is committed
together with the stream sequence of its last message (the log's commit tag) and only then
acknowledged. On start the puller resumes right after that tag, so after a crash or kill -9 the
log holds each stream message once, in stream order. Stop with Ctrl-C or SIGTERM.

--log may also be a queue directory, made beforehand with shmio create --queue (pull never
creates one): the commit tag then rides on the queue's segments, across rolls.`,
		Example: `  shmio replicate pull --log /dev/shm/copy --nats nats://127.0.0.1:4222 --stream EVENTS
  shmio replicate pull --log /data/events.copy --capacity 8GiB --nats tls://nats.example:4222 \
      --stream EVENTS --creds shmio.creds --tls-ca ca.pem --durable events-copy-host2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := openReplDest(logPath, int64(capacity), wide)
			if err != nil {
				return err
			}
			defer d.close()
			if durable == "" {
				durable = fmt.Sprintf("shmio-pull-%016x", d.id)
			}
			nc, stop, err := nf.connect("shmio replicate pull " + logPath)
			if err != nil {
				return err
			}
			defer stop()
			p, err := replicate.NewPuller(d.sink, replicate.PullConfig{
				Conn: nc, Stream: stream, Durable: durable, FilterSubject: subject, Tag: d.tag, Batch: batch, Once: once,
				Logf: func(f string, a ...any) { stderrf(f, a...) },
			})
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			var last replicate.PullStats
			stopProgress := every(progress, func() {
				if s := p.Stats(); s.Frames != last.Frames {
					stderrf("pulled %d frames this run; log at stream sequence %d, %d pending", s.Frames, s.Tag, s.Pending)
					last = s
				}
			})
			err = p.Run(ctx)
			stopProgress()
			s := p.Stats()
			stderrf("pull: %d frames (%d payload bytes) appended this run; %s holds stream %s up to sequence %d (durable %s)",
				s.Frames, s.Bytes, logPath, stream, s.Tag, durable)
			return err
		},
	}
	nf.add(cmd, true)
	f := cmd.Flags()
	f.StringVar(&logPath, "log", "", "the log to append to, created when missing, or an existing queue directory (required)")
	f.StringVar(&stream, "stream", "", "JetStream stream name (required)")
	f.StringVar(&durable, "durable", "", "durable consumer name, one per destination log (default shmio-pull-<log id>)")
	f.StringVar(&subject, "subject", "", "take only this subject of the stream")
	f.Var(&capacity, "capacity", "capacity of the log when pull creates it")
	f.BoolVar(&wide, "wide", false, "create the log with u32 frame lengths (for payloads over 65531 bytes)")
	f.IntVar(&batch, "batch", 512, "most messages appended per commit")
	f.BoolVar(&once, "once", false, "exit when nothing is pending instead of waiting for more")
	f.DurationVar(&progress, "progress", 10*time.Second, "print progress this often on stderr (0: never)")
	_ = cmd.MarkFlagRequired("log")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

// statusJSON is the --json form of replicate status.
type statusJSON struct {
	Stream struct {
		Name        string   `json:"name"`
		Subjects    []string `json:"subjects"`
		Replicas    int      `json:"replicas"`
		Storage     string   `json:"storage"`
		Messages    uint64   `json:"messages"`
		Bytes       uint64   `json:"bytes"`
		FirstSeq    uint64   `json:"first_seq"`
		LastSeq     uint64   `json:"last_seq"`
		LastLogID   string   `json:"last_log_id,omitempty"`
		LastCursor  *int64   `json:"last_cursor,omitempty"`
		Leader      string   `json:"leader,omitempty"`
		Current     int      `json:"replicas_current,omitempty"`
		Unavailable int      `json:"replicas_unavailable,omitempty"`
	} `json:"stream"`
	Push *pushStatusJSON `json:"push,omitempty"`
	Pull *pullStatusJSON `json:"pull,omitempty"`
}

type pushStatusJSON struct {
	Log          string `json:"log"`
	LogID        string `json:"log_id"`
	Committed    int64  `json:"committed_bytes"`
	StreamEnd    int64  `json:"stream_end_cursor"`
	CursorFile   *int64 `json:"cursor_file_cursor,omitempty"`
	BehindFrames int64  `json:"behind_frames"`
	BehindBytes  int64  `json:"behind_bytes"`
	Foreign      bool   `json:"stream_from_another_log,omitempty"`
}

type pullStatusJSON struct {
	Log             string  `json:"log"`
	Tag             *uint64 `json:"commit_tag"`
	BehindMessages  uint64  `json:"behind_messages"`
	BehindBytes     *int64  `json:"behind_bytes"`
	Durable         string  `json:"durable,omitempty"`
	ConsumerPending *uint64 `json:"consumer_pending,omitempty"`
	ConsumerUnacked *uint64 `json:"consumer_unacked,omitempty"`
}

func newReplicateStatusCmd() *cobra.Command {
	var (
		nf                                                natsFlags
		stream, logPath, cursor, idFlag, pullLog, durable string
		asJSON                                            bool
	)
	cmd := &cobra.Command{
		Use:   "status --nats URL --stream NAME [--log SRC] [--pull-log DST]",
		Short: "Show how far behind the stream and the pulled log are (frames and bytes)",
		Long: `Show the stream, and how far behind each side is:
with --log, how many committed frames (and bytes) of the source the stream does not hold yet;
with --pull-log, how many stream messages (and source bytes) the pulled log does not hold yet,
and the durable consumer's pending counts.

Point --nats at the server or cluster push and pull use (for an embedded server, the address
it listens on, nats://127.0.0.1:4222 by default). status only reads. --log and --pull-log may
be queue directories; the pull side's byte count is then unknown (reported as null in --json).`,
		Example: `  shmio replicate status --nats nats://127.0.0.1:4222 --stream EVENTS --log /dev/shm/events
  shmio replicate status --nats nats://127.0.0.1:4222 --stream EVENTS --pull-log /dev/shm/copy --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nf.url == "embedded" {
				return errors.New(`status connects to a running server: use the address of the embedded one (--nats nats://127.0.0.1:4222 by default)`)
			}
			o := replicate.StatusOptions{Stream: stream}
			var out statusJSON
			var srcQueue *shmio.Queue
			if logPath != "" {
				rs, err := openReplSource(logPath, idFlag)
				if err != nil {
					return err
				}
				defer rs.close()
				o.Source, o.LogID, srcQueue = rs.src, rs.id, rs.q
				if cursor == "" {
					cursor = defaultCursorFile(logPath, stream)
				}
				o.CursorFile = cursor
			}
			pullQueue := false
			if pullLog != "" {
				o.Pull = true
				var id uint64
				if shmio.IsQueue(pullLog) {
					q, err := openQueue(pullLog, false)
					if err != nil {
						return err
					}
					defer q.Close()
					if o.Tag, o.TagOK, err = q.CommitTag(); err != nil {
						return fmt.Errorf("%s: %s", pullLog, rootCause(err))
					}
					id, pullQueue = q.ID(), true
				} else {
					l, err := openLog(pullLog, false, false)
					if err != nil {
						return err
					}
					defer l.Close()
					if o.Tag, o.TagOK, err = l.CommitTag(); err != nil {
						return err
					}
					id = l.Header().ID
				}
				if durable == "" {
					durable = fmt.Sprintf("shmio-pull-%016x", id)
				}
				o.Durable = durable
			}
			nc, stop, err := nf.connect("shmio replicate status")
			if err != nil {
				return err
			}
			defer stop()
			o.Conn = nc
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			st, err := replicate.GetStatus(ctx, o)
			if err != nil {
				return err
			}
			if err := fixQueueBytes(st, srcQueue, pullQueue); err != nil {
				return fmt.Errorf("%s: %s", logPath, rootCause(err))
			}
			fillStatusJSON(&out, st, logPath, pullLog, durable)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			printReplicateStatus(cmd.OutOrStdout(), &out)
			return nil
		},
	}
	nf.add(cmd, false)
	f := cmd.Flags()
	f.StringVar(&stream, "stream", "", "JetStream stream name (required)")
	f.StringVar(&logPath, "log", "", "the pushed (source) log or queue directory")
	f.StringVar(&cursor, "cursor-file", "", "the pusher's cursor file (default <log>.<stream>.cursor)")
	f.StringVar(&idFlag, "log-id", "", "identity of a Node-made source log, as given to push")
	f.StringVar(&pullLog, "pull-log", "", "the pulled (destination) log or queue directory")
	f.StringVar(&durable, "durable", "", "the puller's durable consumer (default shmio-pull-<pull log id>)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (for scripts)")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

// fixQueueBytes replaces the push side's byte count, which replicate.GetStatus computes by
// subtracting cursors (wrong across a queue's segments), with the source queue's Distance. The
// pull side only has the stream's cursors: when they look like queue cursors its byte count is
// reported as unknown rather than wrong.
func fixQueueBytes(st *replicate.Status, src *shmio.Queue, pullQueue bool) error {
	queueCursors := src != nil && st.Stream.LastLogID == src.ID()
	if p := st.Push; p != nil && src != nil {
		from := max(p.FileCursor, 0)
		if st.Stream.LastCursor >= 0 && st.Stream.LastLogID == p.LogID {
			from = p.StreamEnd
		}
		var err error
		if _, p.BehindBytes, err = src.Distance(from, p.Committed); err != nil {
			return err
		}
	}
	if seg, _ := shmio.SplitQueueCursor(st.Stream.LastCursor); pullQueue && seg > 0 {
		queueCursors = true
	}
	if p := st.Pull; p != nil && queueCursors && p.BehindMsgs > 0 {
		p.BehindBytes = -1
	}
	return nil
}

func fillStatusJSON(out *statusJSON, st *replicate.Status, logPath, pullLog, durable string) {
	s := &out.Stream
	s.Name, s.Subjects, s.Replicas, s.Storage = st.Stream.Name, st.Stream.Subjects, st.Stream.Replicas, strings.ToLower(st.Stream.Storage)
	s.Messages, s.Bytes, s.FirstSeq, s.LastSeq = st.Stream.Msgs, st.Stream.Bytes, st.Stream.FirstSeq, st.Stream.LastSeq
	if st.Stream.LastCursor >= 0 {
		s.LastLogID = fmt.Sprintf("%016x", st.Stream.LastLogID)
		c := st.Stream.LastCursor
		s.LastCursor = &c
	}
	s.Leader, s.Current, s.Unavailable = st.Stream.Leader, st.Stream.CurrentReplicas, st.Stream.UnhealthyReplicas
	if p := st.Push; p != nil {
		out.Push = &pushStatusJSON{Log: logPath, LogID: fmt.Sprintf("%016x", p.LogID), Committed: p.Committed, StreamEnd: p.StreamEnd,
			BehindFrames: p.BehindFrames, BehindBytes: p.BehindBytes, Foreign: p.ForeignStream}
		if p.FileCursor >= 0 {
			c := p.FileCursor
			out.Push.CursorFile = &c
		}
	}
	if p := st.Pull; p != nil {
		out.Pull = &pullStatusJSON{Log: pullLog, BehindMessages: p.BehindMsgs, Durable: durable}
		if p.TagOK {
			t := p.Tag
			out.Pull.Tag = &t
		}
		if p.BehindBytes >= 0 {
			b := p.BehindBytes
			out.Pull.BehindBytes = &b
		}
		if p.ConsumerExists {
			pend, unacked := p.ConsumerPending, p.ConsumerAckWait
			out.Pull.ConsumerPending, out.Pull.ConsumerUnacked = &pend, &unacked
		}
	}
}

func printReplicateStatus(w io.Writer, s *statusJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	st := s.Stream
	fmt.Fprintf(tw, "stream\t%s (subjects %s, %d replica(s), %s storage)\n", st.Name, strings.Join(st.Subjects, " "), st.Replicas, st.Storage)
	fmt.Fprintf(tw, "  messages\t%d (%d bytes), sequences %d..%d\n", st.Messages, st.Bytes, st.FirstSeq, st.LastSeq)
	if st.LastCursor != nil {
		fmt.Fprintf(tw, "  last frame\tlog %s, cursor %d\n", st.LastLogID, *st.LastCursor)
	}
	if st.Replicas > 1 {
		fmt.Fprintf(tw, "  cluster\tleader %s, %d replica(s) current, %d unavailable or lagging\n", st.Leader, st.Current, st.Unavailable)
	}
	if p := s.Push; p != nil {
		fmt.Fprintf(tw, "push\t%s (log id %s)\n", p.Log, p.LogID)
		if p.Foreign {
			fmt.Fprintf(tw, "  warning\tthe stream's last message comes from another log\n")
		}
		fmt.Fprintf(tw, "  committed\t%d bytes; the stream holds up to cursor %d\n", p.Committed, p.StreamEnd)
		if p.CursorFile != nil {
			fmt.Fprintf(tw, "  cursor file\t%d\n", *p.CursorFile)
		}
		fmt.Fprintf(tw, "  behind\t%d frames, %d bytes\n", p.BehindFrames, p.BehindBytes)
	}
	if p := s.Pull; p != nil {
		fmt.Fprintf(tw, "pull\t%s\n", p.Log)
		if p.Tag != nil {
			fmt.Fprintf(tw, "  holds\tstream sequences up to %d\n", *p.Tag)
		} else {
			fmt.Fprintf(tw, "  holds\tnothing pulled yet\n")
		}
		behind := "unknown bytes"
		if p.BehindBytes != nil {
			behind = fmt.Sprintf("%d bytes", *p.BehindBytes)
		}
		fmt.Fprintf(tw, "  behind\t%d frames, %s\n", p.BehindMessages, behind)
		if p.ConsumerPending != nil {
			fmt.Fprintf(tw, "  consumer\t%s: %d undelivered, %d unacknowledged\n", p.Durable, *p.ConsumerPending, *p.ConsumerUnacked)
		} else if p.Durable != "" {
			fmt.Fprintf(tw, "  consumer\t%s does not exist (yet)\n", p.Durable)
		}
	}
	tw.Flush()
}
