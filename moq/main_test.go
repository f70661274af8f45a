package moq

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 15*time.Second) }

func testLogger() *slog.Logger { return testutil.Logger() }

// loopbackAddrs keeps a host from advertising (and peers from dialing) any
// address but loopback: tests never send traffic anywhere else.
func loopbackAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	return out
}

type node struct {
	*Moq
	h host.Host
}

// newNode is a QUIC host (moq-lite on raw QUIC over its socket), built by
// NewHost.
func newNode(t testing.TB, opts ...Option) *node {
	t.Helper()
	q := p2pquic.New(p2pquic.Config{Logger: testLogger()})
	return start(t, HostConfig{QUIC: q, AddrsFactory: loopbackAddrs}, append([]Option{WithQUIC(q)}, opts...))
}

// newTCPNode is a TCP-only host: moq-lite runs over libp2p streams.
func newTCPNode(t testing.TB, opts ...Option) *node {
	t.Helper()
	return start(t, HostConfig{ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}}, opts)
}

func start(t testing.TB, hc HostConfig, opts []Option) *node {
	t.Helper()
	h, err := NewHost(hc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(h, append([]Option{WithLogger(testLogger()), WithShutdownGrace(time.Second)}, opts...)...)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		_ = h.Close()
	})
	return &node{Moq: m, h: h}
}

func (n *node) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

func (n *node) connect(t *testing.T, to *node) *Session {
	t.Helper()
	s, err := n.Connect(testCtx(t), to.info())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var eventually = testutil.Eventually
