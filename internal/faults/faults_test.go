package faults

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 30*time.Second) }

// rawQUICLink connects a client to a server over raw QUIC through an
// impairing UDP proxy.
func rawQUICLink(t testing.TB) (client, server transport.Conn, link Link) {
	crt, err := cert.SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	proxy, err := impair.NewUDPProxy(ln.Addr().String(), impair.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	ep, err := rawquic.NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	if client, err = ep.Dial(testCtx(t), proxy.Addr().String(), cert.PinnedConfig(cert.Fingerprint(crt))); err != nil {
		t.Fatal(err)
	}
	if server, err = ln.Accept(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return client, server, proxy
}

// webSocketLink connects a client to a server over WebSocket through an
// impairing TCP proxy.
func webSocketLink(t testing.TB) (client, server transport.Conn, link Link) {
	accepted := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.Config{Logger: testutil.Logger()})
		if err == nil {
			accepted <- c
		}
	}))
	t.Cleanup(srv.Close)
	proxy, err := impair.NewTCPProxy(strings.TrimPrefix(srv.URL, "http://"), impair.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	c, err := websocket.Dial(testCtx(t), "ws://"+proxy.Addr().String()+"/moq", &websocket.Config{Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "") })
	select {
	case s := <-accepted:
		t.Cleanup(func() { _ = s.CloseWithError(0, "") })
		return c, s, proxy
	case <-testCtx(t).Done():
		t.Fatal("not accepted")
	}
	return nil, nil, nil
}

// sessions runs moq-lite over a connection pair: the server publishes
// "live" with one track, "video", paced at fps; the client subscribes.
func sessions(t testing.TB, client, server transport.Conn, fps int) *broadcast.TrackConsumer {
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	origin.Publish("live", b.Consume())
	pub, err := session.New(server, session.Config{Publish: origin, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := session.New(client, session.Config{Client: true, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close(broadcast.CodeCancel, "test over")
		_ = pub.Close(broadcast.CodeCancel, "test over")
	})
	Pace(t, tp, fps)
	tc, err := sub.Subscribe(testCtx(t), "live", "video", session.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// iroh-live's impairment profile at 15 frames/s over raw QUIC (moql://).
func TestImpairmentRawQUIC(t *testing.T) {
	client, server, link := rawQUICLink(t)
	tc := sessions(t, client, server, 15)
	rec := Record(t, tc.NextGroup)
	time.Sleep(time.Second)
	Run(t, link, rec, Profile(true))
}

// The same over WebSocket through a TCP proxy: latency only (a byte
// stream cannot lose packets; TCP under real loss retransmits, which is
// what the latency phase already shows).
func TestImpairmentWebSocket(t *testing.T) {
	client, server, link := webSocketLink(t)
	tc := sessions(t, client, server, 15)
	rec := Record(t, tc.NextGroup)
	time.Sleep(time.Second)
	Run(t, link, rec, Profile(false))
}
