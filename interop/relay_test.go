package interop

// @moq/lite through two moqp2p relays: Node publishes at relay A over
// WebSocket, relays A and B are linked over libp2p, and headless Chromium
// subscribes at relay B over WebTransport.

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	p2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/internal/jspeer"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// loopbackAddrsOnly keeps a host from advertising (and peers from dialing)
// any address but loopback: tests never send traffic anywhere else.
var loopbackAddrsOnly = libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	return out
})

// newRelayNode is a forwarding node on a loopback libp2p host, serving JS
// clients with a Server.
func newRelayNode(t *testing.T) (*moq.Moq, *server.Server) {
	t.Helper()
	q := moq.NewQUICTransport(moq.QUICConfig{Logger: logger()})
	h, err := libp2p.New(append(moq.HostOptions(q), libp2p.ListenAddrStrings("/ip4/0.0.0.0/udp/0/quic-v1"), loopbackAddrsOnly, libp2p.DisableMetrics())...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := moq.New(h, moq.WithQUIC(q), moq.WithLogger(logger()), moq.WithShutdownGrace(time.Second), moq.WithForwarding(moq.Forwarding{}))
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	srv := &server.Server{Moq: m, Logger: logger(), CheckOrigin: webtransport.AllowOrigins("*")}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(udp, tcp) }()
	testutil.Until(t, ctxFor(t, 10*time.Second), "the server to listen", func() bool { return srv.UDPAddr() != nil && srv.TCPAddr() != nil })
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
		_ = m.Shutdown(context.Background())
		_ = h.Close()
	})
	return m, srv
}

// TestJSThroughTwoRelays: 10 000 frames byte for byte from Node to
// Chromium, with the versions mixed along the path.
func TestJSThroughTwoRelays(t *testing.T) {
	jspeer.RequireChromium(t)
	for _, v := range []struct{ node, browser string }{
		{"moq-lite-04", "moq-lite-04"},
		{"", "moq-lite-03"}, // Node on lite-02 through the compat SETUP
	} {
		t.Run("node-"+v.node+"/chromium-"+v.browser, func(t *testing.T) { jsThroughTwoRelays(t, v.node, v.browser) })
	}
}

func jsThroughTwoRelays(t *testing.T, nodeProto, browserProto string) {
	a, srvA := newRelayNode(t)
	b, srvB := newRelayNode(t)
	if _, err := b.Connect(ctxFor(t, 10*time.Second), p2ppeer.AddrInfo{ID: a.Host().ID(), Addrs: a.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	sc := jspeer.Scenario{Role: jspeer.RolePub, Broadcast: "js/bcast", Track: "data", Groups: 100, Frames: 100, Size: 256, Timeout: 90 * time.Second, Linger: 80 * time.Second}
	// The publisher lingers until it is killed: under load the two relays and
	// Chromium may need far longer than the writing took, and a publisher that
	// leaves early unannounces the broadcast mid-transfer.
	pub, err := jspeer.Start(ctxFor(t, 90*time.Second), jspeer.Options{URL: "http://" + srvA.TCPAddr().String() + "/", Protocol: nodeProto, Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Kill()
	testutil.Until(t, ctxFor(t, 30*time.Second), "relay B forwarding the JS broadcast", func() bool { return b.Forwarded().Get(sc.Broadcast) != nil })
	fp, err := cert.ParseFingerprint(srvB.CertificateHash())
	if err != nil {
		t.Fatal(err)
	}
	sub := sc
	sub.Role, sub.Linger = jspeer.RoleSub, 0
	res, err := jspeer.Chromium(ctxFor(t, 90*time.Second), jspeer.BrowserOptions{URL: "https://" + srvB.UDPAddr().String() + "/", CertHash: fp[:], Protocols: []string{browserProto}, Scenario: sub})
	if err != nil {
		t.Fatalf("Chromium subscriber: %v\n%s", err, tailLines(res.Stderr, 20))
	}
	if res.Version != browserProto {
		t.Fatalf("Chromium negotiated %s, want %s", res.Version, browserProto)
	}
	if got, want := res.Summary(), sc.Expect(); got != want {
		t.Fatalf("Chromium received %+v through two relays, want %+v", got, want)
	}
}
