// Listening and admission: the moq-lite ALPNs on the host's sockets, a TLS
// config per handshake, and the checks (peer ID, gater, resource scope) a
// connection passes before Accept returns it.

package p2pquic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
)

// Listen starts accepting moq-lite connections on each /quic-v1 listen
// address of h. It fails unless h was built with t's Option and every such
// address is on a socket t lent (see the package doc).
func (t *Transport) Listen(h host.Host) error {
	t.mu.Lock()
	b := t.b
	switch {
	case t.closed || t.hostClosed:
		t.mu.Unlock()
		return ErrClosed
	case b == nil || h.ID() != b.self:
		t.mu.Unlock()
		return errNotBound
	case t.listening:
		t.mu.Unlock()
		return errors.New("p2pquic: already listening")
	}
	t.listening = true
	t.mu.Unlock()

	fail := func(err error) error {
		t.mu.Lock()
		t.listening = false
		t.mu.Unlock()
		return err
	}
	var addrs []ma.Multiaddr
	for _, a := range h.Network().ListenAddresses() {
		if len(a) != 3 || a[1].Code() != ma.P_UDP || a[2].Code() != ma.P_QUIC_V1 {
			continue
		}
		if !b.lent(a) {
			return fail(fmt.Errorf("p2pquic: host QUIC address %s is not on a socket this transport lent; "+
				"the host must listen on /ip4/0.0.0.0 or /ip6/:: and be built with this transport's Option() "+
				"(moq.NewHost does both for HostConfig.QUIC, binding a specific IP's port on the unspecified IP)", a))
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return fail(errors.New("p2pquic: host has no /quic-v1 listen address (raw QUIC dials leave from it too; listen on /ip4/0.0.0.0/udp/0/quic-v1 for a free port)"))
	}

	// Not under t.mu: quicreuse calls back into us (GetConfigForClient,
	// allowWindowIncrease) under the lock that ListenQUIC takes.
	var lns []quicreuse.Listener
	for _, a := range addrs {
		tc := &tls.Config{
			NextProtos:         slices.Clone(alpns),
			GetConfigForClient: t.serverConfig(b),
		}
		// Associating with t makes Dial prefer these sockets when the host
		// has others (a WebTransport socket, say).
		ln, err := b.cm.ListenQUICAndAssociate(t, a, tc, allowWindowIncrease)
		if err != nil {
			for _, ln := range lns {
				_ = ln.Close()
			}
			return fail(fmt.Errorf("p2pquic: listen on %s: %w", a, err))
		}
		lns = append(lns, ln)
	}

	t.mu.Lock()
	if t.hostClosed { // the sockets are gone
		t.mu.Unlock()
		for _, ln := range lns {
			_ = ln.Close()
		}
		return ErrClosed
	}
	closed := t.closed
	t.acceptWG.Add(len(lns))
	t.mu.Unlock()
	// After Close the loops still run, closing what arrives (see Close).
	for _, ln := range lns {
		go t.acceptLoop(b, ln)
	}
	if closed {
		return ErrClosed
	}
	t.log.Debug("listening", "addrs", addrs)
	return nil
}

// lent reports whether listen address a is on one of b's sockets.
func (b *binding) lent(a ma.Multiaddr) bool {
	ua, _, err := quicreuse.FromQuicMultiaddr(a)
	if err != nil || !ua.IP.IsUnspecified() {
		return false
	}
	netw := udpNetwork(a)
	return slices.ContainsFunc(b.sockets, func(s *socket) bool { return s.netw == netw && s.port == ua.Port })
}

// serverConfig returns the TLS config for each moq-lite handshake: a fresh
// libp2p config per connection (the config's certificate check can run only
// once), accepting any peer, who is then known from its certificate.
func (t *Transport) serverConfig(b *binding) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(info *tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case <-t.done:
			// Refuse (see Close) by offering no ALPN the client asked for:
			// it then fails with "no application protocol", which says what
			// happened, where an error here would be a TLS internal error.
			return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"moq-lite-closed"}}, nil
		default:
		}
		tc, keyCh := b.id.ConfigForPeer("")
		tc.NextProtos = slices.Clone(alpns)
		// The handshake context is a child of the connection's, which
		// carries the slot connContext made for the verified key.
		if vk, ok := info.Context().Value(verifiedKeyKey{}).(*verifiedKey); ok {
			vk.ch.Store(&keyCh)
		}
		return tc, nil
	}
}

func (t *Transport) acceptLoop(b *binding, ln quicreuse.Listener) {
	defer t.acceptWG.Done()
	for {
		qc, err := ln.Accept(context.Background())
		if err != nil {
			return // the listener closed
		}
		t.admit(b, qc)
	}
}

// admit authenticates an accepted connection and queues it for Accept.
func (t *Transport) admit(b *binding, qc *quic.Conn) {
	var keyCh <-chan crypto.PubKey
	if vk, ok := qc.Context().Value(verifiedKeyKey{}).(*verifiedKey); ok {
		if p := vk.ch.Load(); p != nil {
			keyCh = *p
		}
	}
	pid, err := remotePeer(qc, keyCh)
	if err != nil {
		t.log.Debug("refusing connection without a peer ID", "remote", qc.RemoteAddr(), "err", err)
		_ = qc.CloseWithError(codeProtocol, "no peer ID")
		return
	}
	if b.gater != nil {
		ca := connAddrs(qc)
		if !b.gater.InterceptAccept(ca) || !b.gater.InterceptSecured(network.DirInbound, pid, ca) {
			t.log.Debug("connection gated", "peer", pid, "remote", qc.RemoteAddr())
			_ = qc.CloseWithError(codeUnauthorized, "gated")
			return
		}
	}
	// quicreuse opened a resource scope for the connection before anyone knew
	// its ALPN; libp2p's own listener moves its connections to the peer's
	// scope, and if we did not, ours would pile up in the transient scope
	// until the resource manager refused every inbound QUIC connection.
	var release func()
	if scope, err := network.UnwrapConnManagementScope(qc.Context()); err == nil {
		if err := scope.SetPeer(pid); err != nil {
			t.log.Debug("resource manager refused connection", "peer", pid, "err", err)
			_ = qc.CloseWithError(codeBoundsExceeded, "resource limit")
			return
		}
		release = takeScope(qc, scope)
	}
	c := t.register(qc, pid, release)
	if c == nil {
		return
	}
	watchSilence(qc, &t.silence)
	select {
	case t.incoming <- c:
		select {
		case <-t.done: // Close may have drained the queue just before the send
			t.drainIncoming()
		default:
		}
	case <-t.done:
		_ = qc.CloseWithError(codeClosed, "not accepting")
	case <-t.hostCtx.Done():
		// hostStopped closes registered connections
	}
}

// verifiedKey is where an inbound connection's TLS config leaves the channel
// that yields the peer's verified key: GetConfigForClient sees the handshake
// context, the accept loop sees the connection's, and this slot, put into the
// connection's context by connContext, is what both can reach.
type verifiedKey struct {
	ch atomic.Pointer[<-chan crypto.PubKey]
	// stopScope stops connContext's hook that releases the connection's
	// resource scope when it closes (set before the connection exists).
	stopScope func() bool
}

// takeScope hands the release of qc's resource scope from connContext's
// hook to the caller, who must call the function it returns once qc has
// closed (nil: the hook keeps it, having run or being about to). It saves
// a connection that has a close hook of its own a second one.
func takeScope(qc *quic.Conn, scope network.ConnManagementScope) func() {
	vk, ok := qc.Context().Value(verifiedKeyKey{}).(*verifiedKey)
	if !ok || vk.stopScope == nil {
		return nil
	}
	stop := vk.stopScope
	vk.stopScope = nil // the hook it holds goes with it
	if !stop() {
		return nil
	}
	return scope.Done
}

type verifiedKeyKey struct{}
