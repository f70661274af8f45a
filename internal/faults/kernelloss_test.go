package faults

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// in runs f in the link's namespace ns.
func in(t testing.TB, link *netns.Link, ns string, f func()) {
	t.Helper()
	if err := link.In(ns, f); err != nil {
		t.Fatal(err)
	}
}

// The profile's 20 % loss for 3 s, and the recovery after it, dropped by
// the kernel: iptables' statistic match on the router between two network
// namespaces, the publisher in one, the subscriber in the other. This is
// the loss a TCP proxy cannot make, so it is where WebSocket meets it; raw
// QUIC gets it too, next to the proxy's loss. Needs root.
func TestKernelLoss(t *testing.T) {
	link, err := netns.Routed(t, netns.Impairment{})
	switch {
	case err != nil:
		netns.Unavailable(t, "no network namespaces for the impaired link (as root, it runs): %v", err)
		return
	case link == nil:
		return // the child ran it
	}
	t.Run("websocket", func(t *testing.T) {
		client, server := kernelWebSocket(t, link)
		runKernelLoss(t, link, client, server)
	})
	t.Run("rawquic", func(t *testing.T) {
		client, server := kernelRawQUIC(t, link)
		runKernelLoss(t, link, client, server)
	})
}

func runKernelLoss(t *testing.T, link *netns.Link, client, server transport.Conn) {
	tc := sessions(t, client, server, 15)
	rec := Record(t, tc.NextGroup)
	time.Sleep(time.Second)
	Run(t, &KernelLink{T: t, SetLoss: link.SetKernelLoss, Dropped: link.KernelDropped}, rec, Loss())
}

// kernelWebSocket connects a WebSocket client in the link's namespace B to
// a server in A.
func kernelWebSocket(t *testing.T, link *netns.Link) (client, server transport.Conn) {
	var ln net.Listener
	var err error
	in(t, link, link.A, func() { ln, err = net.Listen("tcp4", link.AddrA+":0") })
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *websocket.Conn, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.Config{Logger: testutil.Logger()})
		if err == nil {
			accepted <- c
		}
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			var d net.Dialer
			if err := link.In(link.B, func() { c, err = d.DialContext(ctx, "tcp4", addr) }); err != nil {
				return nil, err
			}
			return c, err
		},
	}}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := websocket.Dial(testCtx(t), "ws://"+ln.Addr().String()+"/moq", &websocket.Config{Logger: testutil.Logger(), HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "") })
	select {
	case s := <-accepted:
		t.Cleanup(func() { _ = s.CloseWithError(0, "") })
		return c, s
	case <-testCtx(t).Done():
		t.Fatal("not accepted")
	}
	return nil, nil
}

// kernelRawQUIC connects a raw QUIC client in the link's namespace B to a
// server in A.
func kernelRawQUIC(t *testing.T, link *netns.Link) (client, server transport.Conn) {
	crt, err := cert.SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	var ln *rawquic.Endpoint
	in(t, link, link.A, func() {
		ln, err = rawquic.Listen(link.AddrA+":0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var ep *rawquic.Endpoint
	in(t, link, link.B, func() { ep, err = rawquic.NewEndpoint(link.AddrB+":0", nil) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	if client, err = ep.Dial(testCtx(t), ln.Addr().String(), cert.PinnedConfig(cert.Fingerprint(crt))); err != nil {
		t.Fatal(err)
	}
	if server, err = ln.Accept(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return client, server
}
