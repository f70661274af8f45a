package moq

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ErrNoQUICListen: HostConfig.QUIC is set but ListenAddrs has no QUIC
// address. Raw QUIC sessions, dialed ones too, leave from the host's QUIC
// socket, so a host that only dials still listens on one: give
// /ip4/0.0.0.0/udp/0/quic-v1 (a free port) and, to accept nobody, a
// ConnectionGater that refuses inbound connections.
var ErrNoQUICListen = errors.New("moq: HostConfig.QUIC needs a /udp/PORT/quic-v1 listen address")

// quicListenPlan is how a host whose QUIC sockets p2pquic shares listens
// on the addresses asked for. p2pquic can share only a socket bound to the
// unspecified IP, so a QUIC address on a specific IP is bound on the
// unspecified IP of its family (same port); the host then advertises only
// the IPs asked for, and when they are all loopback ones it refuses QUIC
// connections from anywhere else, so that listening on 127.0.0.1 still
// means that only this machine can connect.
type quicListenPlan struct {
	bind      []ma.Multiaddr
	requested []net.IP     // the specific IPs of QUIC addresses
	widened   map[int]bool // address families bound wider than asked
	loopback  bool         // every QUIC address asked for is a loopback one
}

// planQUICListen plans addrs for a host with p2pquic.
func planQUICListen(addrs []ma.Multiaddr) (*quicListenPlan, error) {
	p := &quicListenPlan{widened: map[int]bool{}, loopback: true}
	anyQUIC := false
	unspecified := map[int]bool{}
	for _, a := range addrs {
		if !isQUICListen(a) {
			p.bind = append(p.bind, a)
			continue
		}
		anyQUIC = true
		ip, err := manet.ToIP(a)
		if err != nil {
			return nil, fmt.Errorf("moq: HostConfig.ListenAddrs %s: %w", a, err)
		}
		family := a[0].Code()
		if ip.IsUnspecified() {
			unspecified[family] = true
			p.loopback = false
			p.bind = append(p.bind, a)
			continue
		}
		p.requested = append(p.requested, ip)
		p.loopback = p.loopback && ip.IsLoopback()
		p.widened[family] = true
		any := "/ip4/0.0.0.0"
		if family == ma.P_IP6 {
			any = "/ip6/::"
		}
		p.bind = append(p.bind, ma.StringCast(any).Encapsulate(a[1:]))
	}
	if !anyQUIC {
		return nil, ErrNoQUICListen
	}
	for f := range unspecified {
		delete(p.widened, f) // asked for every IP of the family anyway
	}
	// 127.0.0.1:P and 0.0.0.0:P are one socket now; two listens on it
	// would fail.
	var bind []ma.Multiaddr
	for _, a := range p.bind {
		if isPortZero(a) || !slices.ContainsFunc(bind, a.Equal) {
			bind = append(bind, a)
		}
	}
	p.bind = bind
	return p, nil
}

// isQUICListen reports whether a is /ipX/IP/udp/PORT/quic-v1.
func isQUICListen(a ma.Multiaddr) bool {
	return len(a) == 3 && (a[0].Code() == ma.P_IP4 || a[0].Code() == ma.P_IP6) &&
		a[1].Code() == ma.P_UDP && a[2].Code() == ma.P_QUIC_V1
}

// isPortZero reports whether a's port is 0 (each such address is a socket
// of its own).
func isPortZero(a ma.Multiaddr) bool {
	port, err := a.ValueForProtocol(ma.P_UDP)
	return err == nil && port == "0"
}

// advertise drops the host's QUIC addresses on IPs of a widened family that
// were not asked for (the unspecified bind makes the host list every
// interface's).
func (p *quicListenPlan) advertise(addrs []ma.Multiaddr) []ma.Multiaddr {
	if len(p.widened) == 0 {
		return addrs
	}
	return slices.DeleteFunc(slices.Clone(addrs), func(a ma.Multiaddr) bool {
		if len(a) < 3 || !p.widened[a[0].Code()] || a[1].Code() != ma.P_UDP {
			return false
		}
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			return false
		}
		ip, err := manet.ToIP(a)
		return err == nil && !slices.ContainsFunc(p.requested, ip.Equal)
	})
}

// loopbackQUICGate refuses QUIC connections from addresses that are not
// loopback ones, and otherwise asks inner (if any).
type loopbackQUICGate struct{ inner connmgr.ConnectionGater }

func (g loopbackQUICGate) InterceptPeerDial(p peer.ID) bool {
	return g.inner == nil || g.inner.InterceptPeerDial(p)
}

func (g loopbackQUICGate) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return g.inner == nil || g.inner.InterceptAddrDial(p, a)
}

func (g loopbackQUICGate) InterceptAccept(c network.ConnMultiaddrs) bool {
	if r := c.RemoteMultiaddr(); len(r) >= 2 && r[1].Code() == ma.P_UDP && !manet.IsIPLoopback(r) {
		return false
	}
	return g.inner == nil || g.inner.InterceptAccept(c)
}

func (g loopbackQUICGate) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.inner == nil || g.inner.InterceptSecured(d, p, c)
}

func (g loopbackQUICGate) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if g.inner == nil {
		return true, 0
	}
	return g.inner.InterceptUpgraded(c)
}
