// Dialing a peer from the host's own QUIC socket.

package p2pquic

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
)

// Dial opens a moq-lite connection to peer p at addr, an /ip4 or /ip6
// /udp/…/quic-v1 address optionally ending in /p2p/p. It leaves from the
// host's own QUIC socket (the one Listen serves, when listening), and the TLS
// handshake fails unless the remote proves it is p. ctx bounds the dial
// only: the connection's context carries none of its values.
func (t *Transport) Dial(ctx context.Context, p peer.ID, addr ma.Multiaddr) (*Conn, error) {
	maddr, raddr, netw, err := dialAddr(addr, p)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	b := t.b
	switch {
	case t.closed || t.hostClosed:
		t.mu.Unlock()
		return nil, ErrClosed
	case b == nil:
		t.mu.Unlock()
		return nil, errNotBound
	}
	t.dialWG.Add(1) // the host's shutdown waits for dials, which it cancels
	t.mu.Unlock()
	defer t.dialWG.Done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(t.hostCtx, func() { cancel(ErrClosed) })()
	dctx := newDialContext(ctx)
	defer dctx.forget()

	if b.gater != nil && (!b.gater.InterceptPeerDial(p) || !b.gater.InterceptAddrDial(p, maddr)) {
		return nil, fmt.Errorf("p2pquic: dial to %s gated", p)
	}
	scope, err := b.rcmgr.OpenConnection(network.DirOutbound, false, maddr)
	if err != nil {
		return nil, fmt.Errorf("p2pquic: resource manager refused dial to %s: %w", p, err)
	}
	if err := scope.SetPeer(p); err != nil {
		scope.Done()
		return nil, fmt.Errorf("p2pquic: resource manager refused dial to %s: %w", p, err)
	}
	tr, err := b.cm.TransportWithAssociationForDial(t, netw, raddr)
	if err != nil {
		scope.Done()
		return nil, fmt.Errorf("p2pquic: no socket to dial %s: %w", raddr, err)
	}
	tc, keyCh := b.id.ConfigForPeer(p) // verifies the server's certificate against p
	tc.NextProtos = slices.Clone(alpns)
	qconf := t.qconf.Clone()
	qconf.Versions = []quic.Version{quic.Version1} // what /quic-v1 promises
	userAllow := qconf.AllowConnectionWindowIncrease
	qconf.AllowConnectionWindowIncrease = func(c *quic.Conn, delta uint64) bool {
		if userAllow != nil && !userAllow(c, delta) {
			return false
		}
		return scope.ReserveMemory(int(delta), network.ReservationPriorityMedium) == nil
	}
	// The socket reference and the scope last as long as the connection.
	release := func() {
		tr.DecreaseCount()
		scope.Done()
	}
	qc, err := tr.Dial(dctx, raddr, tc, qconf)
	if err != nil {
		release()
		if t.hostCtx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("p2pquic: dial %s at %s: %w", p, maddr, err)
	}
	// Refused here, the connection is over once CloseWithError returns
	// (quic-go's waits for it): release at once. Kept, it is released by
	// register's hook when it closes.
	if got, err := remotePeer(qc, keyCh); err != nil || got != p { // ConfigForPeer checked it; be sure
		_ = qc.CloseWithError(codeProtocol, "wrong peer")
		release()
		return nil, fmt.Errorf("p2pquic: dialed %s but the remote is %s (%v)", p, got, err)
	}
	if b.gater != nil && !b.gater.InterceptSecured(network.DirOutbound, p, connAddrs(qc)) {
		_ = qc.CloseWithError(codeUnauthorized, "gated")
		release()
		return nil, fmt.Errorf("p2pquic: connection to %s gated", p)
	}
	c := t.register(qc, p, release)
	if c == nil {
		return nil, ErrClosed
	}
	return c, nil
}

// dialAddr checks and splits a dial address: it returns the QUIC multiaddr
// without /p2p, the UDP address, and its network.
func dialAddr(addr ma.Multiaddr, p peer.ID) (ma.Multiaddr, *net.UDPAddr, string, error) {
	tpt, id := peer.SplitAddr(addr)
	if id != "" && id != p {
		return nil, nil, "", fmt.Errorf("p2pquic: address %s names peer %s, not %s", addr, id, p)
	}
	if len(tpt) != 3 || tpt[1].Code() != ma.P_UDP || tpt[2].Code() != ma.P_QUIC_V1 {
		return nil, nil, "", fmt.Errorf("p2pquic: %s is not an /ip4|ip6/…/udp/…/quic-v1 address", addr)
	}
	netw := udpNetwork(tpt)
	if netw == "" {
		return nil, nil, "", fmt.Errorf("p2pquic: %s: resolve the host name first", addr)
	}
	ua, _, err := quicreuse.FromQuicMultiaddr(tpt)
	if err != nil {
		return nil, nil, "", fmt.Errorf("p2pquic: %s: %w", addr, err)
	}
	if ua.IP.IsUnspecified() || ua.Port == 0 {
		return nil, nil, "", fmt.Errorf("p2pquic: cannot dial %s", addr)
	}
	return tpt, ua, netw, nil
}

// dialContext is the context a dial runs under: ctx's, until forget. quic-go
// keeps the context it dials with for the connection's life (uncancellable,
// for its values); once the dial has returned, forget leaves it nothing to
// keep but this struct: not the caller's chain of contexts (their timers,
// done channels and child maps) nor the dial's own. The connection's
// context has none of ctx's values then.
type dialContext struct {
	ref atomic.Pointer[ctxRef]
}

type ctxRef struct{ ctx context.Context }

var background = &ctxRef{context.Background()}

func newDialContext(ctx context.Context) *dialContext {
	d := &dialContext{}
	d.ref.Store(&ctxRef{ctx})
	return d
}

func (d *dialContext) forget()                     { d.ref.Store(background) }
func (d *dialContext) Deadline() (time.Time, bool) { return d.ref.Load().ctx.Deadline() }
func (d *dialContext) Done() <-chan struct{}       { return d.ref.Load().ctx.Done() }
func (d *dialContext) Err() error                  { return d.ref.Load().ctx.Err() }
func (d *dialContext) Value(key any) any           { return d.ref.Load().ctx.Value(key) }
