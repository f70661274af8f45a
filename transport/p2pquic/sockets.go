// Socket lending: UDP sockets this transport owns and lends to the host's
// ConnManager, so that their shared listener grants moq-lite's stream limits.

package p2pquic

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
)

// socket is a UDP socket this transport owns and lends to the host.
type socket struct {
	netw string // "udp4" or "udp6"
	port int
	conn *net.UDPConn
	tr   *quic.Transport
}

type listenSlot struct {
	netw string
	port int
}

// udpNetwork is "udp4" or "udp6" for an address that starts
// /ip4|ip6/…/udp/…/quic-v1, and "" for any other (a host name among them).
func udpNetwork(a ma.Multiaddr) string {
	if len(a) < 3 || a[1].Code() != ma.P_UDP || a[2].Code() != ma.P_QUIC_V1 {
		return ""
	}
	switch a[0].Code() {
	case ma.P_IP4:
		return "udp4"
	case ma.P_IP6:
		return "udp6"
	}
	return ""
}

// lendable lists the sockets to lend: one per unspecified-IP UDP address
// that QUIC will listen on (/quic-v1, and /quic-v1/webtransport, which listens
// first and would otherwise take the /quic-v1 address's socket). Explicit
// ports are lent once; each port-0 address gets its own socket, which
// quicreuse hands to the next port-0 listener.
func lendable(addrs []ma.Multiaddr) []listenSlot {
	var out []listenSlot
	for _, a := range addrs {
		netw := udpNetwork(a)
		if netw == "" {
			continue
		}
		if ip := net.ParseIP(a[0].Value()); ip == nil || !ip.IsUnspecified() {
			continue // quicreuse refuses to borrow a socket bound to one IP
		}
		port, err := strconv.Atoi(a[1].Value())
		if err != nil {
			continue
		}
		s := listenSlot{netw, port}
		if port != 0 && slices.Contains(out, s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// lend opens a UDP socket with our own quic.Transport on it and lends it to
// cm. The transport carries the same keys and callbacks the ConnManager would
// give its own, since libp2p's connections are accepted on it too.
func (t *Transport) lend(cm *quicreuse.ConnManager, netw string, port int, srk *quic.StatelessResetKey,
	tok *quic.TokenGeneratorKey, connCtx func(context.Context, *quic.ClientInfo) (context.Context, error),
	verify func(net.Addr) bool) (*socket, error) {
	ip := net.IPv4zero
	if netw == "udp6" {
		ip = net.IPv6unspecified
	}
	conn, err := net.ListenUDP(netw, &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("p2pquic: listen %s port %d: %w", netw, port, err)
	}
	tr := &quic.Transport{
		Conn:                conn,
		StatelessResetKey:   srk,
		TokenGeneratorKey:   tok,
		ConnContext:         connCtx,
		VerifySourceAddress: verify,
	}
	s := &socket{netw: netw, port: conn.LocalAddr().(*net.UDPAddr).Port, conn: conn, tr: tr}
	lt := &lentTransport{Transport: tr, streams: t.qconf.MaxIncomingStreams, uniStreams: t.qconf.MaxIncomingUniStreams}
	// The returned channel reports when the ConnManager is done with the
	// socket; we close it in hostStopped, after closing the ConnManager,
	// which is when that happens.
	if _, err := cm.LendTransport(netw, lt, conn); err != nil {
		closeSockets([]*socket{s})
		return nil, fmt.Errorf("p2pquic: lend %s socket: %w", netw, err)
	}
	return s, nil
}

func closeSockets(ss []*socket) {
	for _, s := range ss {
		_ = s.tr.Close() // closes the listeners on it and destroys what is left
		_ = s.conn.Close()
	}
}

// lentTransport raises the stream limits of the listener quicreuse opens on
// a lent socket. That listener serves every ALPN with one config (quic-go's
// per-connection config hook does not see the ALPN), so libp2p's connections
// get the raised limits as well; they cost nothing until streams are opened.
type lentTransport struct {
	*quic.Transport
	streams, uniStreams int64
}

// Listen is quicreuse's only way to start the socket's shared listener.
func (l *lentTransport) Listen(tc *tls.Config, qc *quic.Config) (quicreuse.QUICListener, error) {
	if qc == nil {
		qc = &quic.Config{}
	}
	qc = qc.Clone()
	qc.MaxIncomingStreams = max(qc.MaxIncomingStreams, l.streams)
	qc.MaxIncomingUniStreams = max(qc.MaxIncomingUniStreams, l.uniStreams)
	return l.Transport.Listen(tc, qc)
}
