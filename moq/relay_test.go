package moq

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// Two nodes with no direct path (neither listens) reach each other through a
// circuit relay on a third host; the session runs over libp2p streams on the
// limited, relayed connection.
func TestRelayFallback(t *testing.T) {
	r := newTCPNode(t)
	relay, err := relayv2.New(r.h, relayv2.WithLimit(&relayv2.RelayLimit{Duration: 10 * time.Minute, Data: 64 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })

	unreachable := HostConfig{ListenAddrs: []ma.Multiaddr{}, Relay: true}
	a := start(t, unreachable, nil)
	b := start(t, unreachable, nil)
	rInfo := r.info()
	if err := b.h.Connect(testCtx(t), rInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(testCtx(t), b.h, rInfo); err != nil {
		t.Fatal(err)
	}
	cam := publish(t, b, "cam")
	live(t, cam)

	circuit := ma.StringCast(r.h.Addrs()[0].String() + "/p2p/" + r.h.ID().String() + "/p2p-circuit")
	s, err := a.Connect(testCtx(t), peer.AddrInfo{ID: b.h.ID(), Addrs: []ma.Multiaddr{circuit}})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := s.s.Conn().(*p2pstream.Conn)
	if !ok || !c.Limited() {
		t.Fatalf("session over %T (limited=%v), want libp2p streams over the relay", s.s.Conn(), ok && c.Limited())
	}
	receive(t, s, "cam", 20)
}
