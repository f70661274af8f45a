package moq

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// A QUIC host asked to listen on 127.0.0.1, as a test or a local tool
// asks, works: it advertises only 127.0.0.1, a peer reaches it over raw
// QUIC, and QUIC connections from other addresses would be refused.
func TestNewHostQUICOnLoopback(t *testing.T) {
	q := p2pquic.New(p2pquic.Config{Logger: testLogger()})
	a := start(t, HostConfig{QUIC: q, ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}}, []Option{WithQUIC(q)})
	if len(a.h.Addrs()) == 0 {
		t.Fatal("the host advertises no address")
	}
	for _, addr := range a.h.Addrs() {
		if !manet.IsIPLoopback(addr) {
			t.Errorf("advertised %s, asked for 127.0.0.1 only", addr)
		}
	}
	m := publish(t, a, "cam")
	live(t, m)
	b := newNode(t)
	s, err := b.Connect(testCtx(t), a.info())
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Path(); p.Transport != "raw QUIC" {
		t.Errorf("session path %v, want raw QUIC", p)
	}
	receive(t, s, "cam", 3)

	gate := loopbackQUICGate{}
	for remote, want := range map[string]bool{
		"/ip4/127.0.0.1/udp/4001/quic-v1": true,
		"/ip6/::1/udp/4001/quic-v1":       true,
		"/ip4/192.0.2.7/udp/4001/quic-v1": false,
		"/ip4/192.0.2.7/tcp/4001":         true, // TCP binds the IP asked for
	} {
		if got := gate.InterceptAccept(connAddrs{remote: ma.StringCast(remote)}); got != want {
			t.Errorf("accept from %s: %v, want %v", remote, got, want)
		}
	}
}

// A QUIC host needs a QUIC listen address, and says so.
func TestNewHostQUICWithoutListen(t *testing.T) {
	q := p2pquic.New(p2pquic.Config{Logger: testLogger()})
	for _, addrs := range [][]ma.Multiaddr{{}, {ma.StringCast("/ip4/127.0.0.1/tcp/0")}} {
		h, err := NewHost(HostConfig{QUIC: q, ListenAddrs: addrs})
		if err == nil {
			_ = h.Close()
		}
		if !errors.Is(err, ErrNoQUICListen) {
			t.Errorf("listening on %v: %v, want ErrNoQUICListen", addrs, err)
		}
	}
}

// connAddrs is a connection's two addresses, for the gate.
type connAddrs struct{ remote ma.Multiaddr }

func (c connAddrs) LocalMultiaddr() ma.Multiaddr {
	return ma.StringCast("/ip4/0.0.0.0/udp/4001/quic-v1")
}
func (c connAddrs) RemoteMultiaddr() ma.Multiaddr { return c.remote }

var _ network.ConnMultiaddrs = connAddrs{}
