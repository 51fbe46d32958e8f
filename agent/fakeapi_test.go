package agent

import (
	"context"
	"github.com/shmio/shmio/agent/fakeapi"
	"net"
	"net/http"
	"sync"
)

// newFakeAPI is the strict fake of the Messages API (package fakeapi) that the tests drive the
// real SDK client against.
func newFakeAPI(key string) *fakeapi.Server { return fakeapi.New(key) }

// pipeNet is an in-memory network (net.Pipe connections) for running the HTTP server and the SDK
// client inside a synctest bubble, where real sockets would not let fake time advance.
type pipeNet struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeNet() *pipeNet { return &pipeNet{conns: make(chan net.Conn), closed: make(chan struct{})} }

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return pipeAddr{} }

func (p *pipeNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case p.conns <- s:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// servePipe serves h over a pipeNet; the returned client dials it. stop shuts both down.
func servePipe(h http.Handler) (client *http.Client, stop func()) {
	pn := newPipeNet()
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { srv.Serve(pn); close(done) }()
	tr := &http.Transport{DialContext: pn.DialContext, MaxIdleConnsPerHost: 64}
	return &http.Client{Transport: tr}, func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-done
	}
}
