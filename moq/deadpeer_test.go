package moq

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
)

// linkTo returns to's address info through an impairing proxy on loopback:
// its QUIC address through a UDP proxy (udp), or its TCP address through a
// TCP proxy.
// proxyLink is an impairing proxy in front of a node.
type proxyLink interface {
	Set(impair.Config)
	Bytes() int64
}

func linkTo(t testing.TB, to *node, udp bool) (peer.AddrInfo, proxyLink) {
	t.Helper()
	for _, a := range to.h.Addrs() {
		if !manet.IsIPLoopback(a) {
			continue
		}
		_, qerr := a.ValueForProtocol(ma.P_QUIC_V1)
		_, terr := a.ValueForProtocol(ma.P_TCP)
		na, err := manet.ToNetAddr(a)
		if udp && qerr == nil {
			port, _ := a.ValueForProtocol(ma.P_UDP)
			p, err := impair.NewUDPProxy("127.0.0.1:"+port, impair.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			pa := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p.Addr().Port))
			return peer.AddrInfo{ID: to.h.ID(), Addrs: []ma.Multiaddr{pa}}, p
		}
		if !udp && terr == nil && err == nil {
			p, err := impair.NewTCPProxy(na.String(), impair.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			pa := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p.Addr().Port))
			return peer.AddrInfo{ID: to.h.ID(), Addrs: []ma.Multiaddr{pa}}, p
		}
	}
	t.Fatalf("no loopback address to proxy among %v", to.h.Addrs())
	return peer.AddrInfo{}, nil
}

// A peer that goes silent (a partition: no close of any kind reaches us)
// ends its session within the dead-peer bound, over raw QUIC and over
// libp2p streams, with the bound set on the node.
func TestDeadPeerEndsSession(t *testing.T) {
	const bound = 2 * time.Second
	for _, tc := range []struct {
		name string
		udp  bool
	}{{"quic", true}, {"streams", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var pub, sub *node
			if tc.udp {
				pub, sub = newNode(t, WithDeadPeerTimeout(bound)), newNode(t, WithDeadPeerTimeout(bound))
			} else {
				pub, sub = newTCPNode(t, WithDeadPeerTimeout(bound)), newTCPNode(t, WithDeadPeerTimeout(bound))
			}
			info, link := linkTo(t, pub, tc.udp)
			s, err := sub.Connect(testCtx(t), info)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Link.Transport; (got == "p2pstream") == tc.udp {
				t.Fatalf("session over %s", got)
			}
			// idle: keep-alives keep it up, across a whole bound
			if err := impair.AwaitTraffic(testCtx(t), link, bound); err != nil {
				t.Fatalf("no keep-alives on the link: %v", err)
			}
			if s.Err() != nil {
				t.Fatalf("idle live session ended: %v", s.Err())
			}
			// The accepting end too: its session of the same connection.
			var accepted *Session
			testutil.Until(t, testCtx(t), "the publisher's session", func() bool {
				list, err := pub.Sessions(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range list {
					if l.RemotePeer() == sub.h.ID() {
						accepted = l
					}
				}
				return accepted != nil
			})
			link.Set(impair.Config{Loss: 1})
			cut := time.Now()
			for _, end := range []struct {
				name string
				s    *Session
			}{{"dialer", s}, {"acceptor", accepted}} {
				select {
				case <-end.s.Closed():
				case <-time.After(5 * bound):
					t.Fatalf("%s: dead peer not noticed in %v", end.name, 5*bound)
				}
				if d := time.Since(cut); d > bound+500*time.Millisecond {
					t.Errorf("%s: dead peer noticed after %v, bound %v", end.name, d, bound)
				}
				t.Logf("%s noticed after %v: %v", end.name, time.Since(cut), end.s.Err())
				// One sentinel on every transport, not a protocol violation.
				if err := end.s.Err(); !errors.Is(err, transport.ErrConnLost) || broadcast.CodeOf(err) != broadcast.CodeTransport {
					t.Errorf("%s: session ended with %v (code %v), want transport.ErrConnLost", end.name, err, broadcast.CodeOf(err))
				}
			}
		})
	}
}
