package replicate

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded runs a NATS server with JetStream in this process, storing in storeDir and
// listening on listen (host:port; port 0 picks a free one). It returns the server and its
// client URL; Shutdown stops it.
func StartEmbedded(storeDir, listen string) (*server.Server, string, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("listen address %q: want host:port, such as 127.0.0.1:4222", listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, "", fmt.Errorf("listen address %q: bad port", listen)
	}
	if port != 0 {
		// nats-server reports a busy port only in its log; say it plainly instead.
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, "", fmt.Errorf("cannot listen on %s (%v): if another shmio replicate runs the embedded "+
				"server there, connect to it at nats://%s, or pick another address", listen, unwrapNetError(err), listen)
		}
		l.Close()
	} else {
		port = -1 // nats-server's "pick a free port"
	}
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("embedded NATS server: store directory: %w", err)
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
