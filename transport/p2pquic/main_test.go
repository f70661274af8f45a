package p2pquic

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
)

// Every host and transport is closed by its test, and closing them ends all
// of their goroutines, so no goroutine is ignored.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger() *slog.Logger {
	if os.Getenv("MOQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// wildcard is where test hosts listen: unspecified addresses, so that the
// transport can lend the sockets; traffic stays on loopback.
var wildcard = []string{"/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/udp/0/quic-v1"}

// node is a libp2p host (QUIC only) with a p2pquic transport listening on it.
type node struct {
	t *Transport
	h host.Host
}

func (n *node) id() peer.ID { return n.h.ID() }

// newNode builds and starts a node; extra options go after the defaults.
func newNode(tb testing.TB, opts ...libp2p.Option) *node {
	tb.Helper()
	tr := New(Config{Logger: testLogger()})
	h, err := libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings(wildcard...),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		tr.Option(),
	}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = tr.Close()
		_ = h.Close()
	})
	if err := tr.Listen(h); err != nil {
		tb.Fatal(err)
	}
	return &node{t: tr, h: h}
}

// port is the host's QUIC listen port for udp4 (ip "127.0.0.1") or udp6.
func (n *node) port(tb testing.TB, ip string) int {
	tb.Helper()
	want := ma.P_IP4
	if ip == "::1" {
		want = ma.P_IP6
	}
	for _, a := range n.h.Network().ListenAddresses() {
		if len(a) == 3 && a[0].Code() == want && a[2].Code() == ma.P_QUIC_V1 {
			p, err := strconv.Atoi(a[1].Value())
			if err != nil {
				tb.Fatal(err)
			}
			return p
		}
	}
	tb.Fatalf("%s has no QUIC listen address for %s: %v", n.id(), ip, n.h.Network().ListenAddresses())
	return 0
}

// addr is the node's loopback QUIC address (without /p2p).
func (n *node) addr(tb testing.TB, ip string) ma.Multiaddr {
	tb.Helper()
	proto := "ip4"
	if ip == "::1" {
		proto = "ip6"
	}
	return ma.StringCast("/" + proto + "/" + ip + "/udp/" + strconv.Itoa(n.port(tb, ip)) + "/quic-v1")
}

// p2pAddr is addr with /p2p/<id>, as peer routing hands addresses out.
func (n *node) p2pAddr(tb testing.TB, ip string) ma.Multiaddr {
	return n.addr(tb, ip).Encapsulate(ma.StringCast("/p2p/" + n.id().String()))
}

// connect dials b from a and accepts on b; both ends close at cleanup.
func connect(tb testing.TB, a, b *node, ip string) (ac, bc *Conn) {
	tb.Helper()
	ac, err := a.t.Dial(testCtx(tb), b.id(), b.p2pAddr(tb, ip))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ac.CloseWithError(0, "") })
	bc, err = b.t.Accept(testCtx(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = bc.CloseWithError(0, "") })
	return ac, bc
}

// roomyLimits is the default resource manager with no per-peer connection
// limit (default 8), so that a few hosts can hold many connections to one.
func roomyLimits(tb testing.TB) libp2p.Option {
	tb.Helper()
	unlimited := rcmgr.ResourceLimits{Conns: rcmgr.Unlimited, ConnsInbound: rcmgr.Unlimited, ConnsOutbound: rcmgr.Unlimited}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	cfg := rcmgr.PartialLimitConfig{PeerDefault: unlimited}.Build(limits.AutoScale())
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(cfg))
	if err != nil {
		tb.Fatal(err)
	}
	return libp2p.ResourceManager(rm)
}

func newPeerID(tb testing.TB) peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// scopeStats reads a host's resource manager: inbound connections in the
// transient scope and in the given peers' scopes.
func scopeStats(tb testing.TB, h host.Host, peers ...peer.ID) (transient, inPeers int) {
	tb.Helper()
	rm := h.Network().ResourceManager()
	if err := rm.ViewTransient(func(s network.ResourceScope) error {
		transient = s.Stat().NumConnsInbound
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	for _, p := range slices.Compact(slices.Sorted(slices.Values(peers))) {
		if err := rm.ViewPeer(p, func(s network.PeerScope) error {
			inPeers += s.Stat().NumConnsInbound
			return nil
		}); err != nil {
			tb.Fatal(err)
		}
	}
	return transient, inPeers
}
