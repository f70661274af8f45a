// Package p2pquic runs moq-lite on raw QUIC connections that share a go-libp2p
// host's UDP socket and identity: the connection negotiates a moq-lite ALPN
// (not libp2p's), is demultiplexed from the host's own QUIC traffic by that
// ALPN, and authenticates both ends with libp2p's TLS certificates, so the
// remote peer ID is proven inside the handshake.
//
// Sharing the socket means a moq-lite dial leaves from the host's listening
// port: the NAT binding (or hole punch) that libp2p opened for a peer carries
// moq-lite too.
//
// Constraints, all from go-libp2p v0.51.0's quicreuse package:
//
//   - The host must be built with [Transport.Option] and must listen for QUIC
//     on unspecified addresses (/ip4/0.0.0.0/udp/P/quic-v1, /ip6/::/udp/P/quic-v1).
//     libp2p serves every ALPN on a socket with one server quic.Config that
//     grants 5 concurrent uni streams, far too few for moq-lite's stream per
//     group; the only way around it is to own the socket and lend it to
//     libp2p, and quicreuse accepts lent sockets only on unspecified IPs.
//   - On the accepting side only the stream limits of [Config.QUIC] apply;
//     the other settings are libp2p's, shared with its own connections (which
//     get the raised stream limits too).
//   - moq-lite connections count against the host's resource manager like
//     libp2p's own (by default at most 8 connections per peer, libp2p's and
//     moq-lite's together), and the host's connection gater applies to them.
package p2pquic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	p2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
	"golang.org/x/time/rate"

	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// alpns are offered when dialing and served when listening, most preferred
// first (a TLS server picks by its own order).
var alpns = []string{wire.ALPNLite04, wire.ALPNLite03}

// moq-lite codes this package closes connections with (connection close codes
// go on the wire unmapped, as in rawquic).
const (
	codeUnauthorized   = 6  // the connection gater refused the peer
	codeBoundsExceeded = 11 // the resource manager refused the connection
	codeProtocol       = 15 // the peer's certificate names no peer ID
	codeClosed         = 25 // the transport or its host is shutting down
)

// ErrClosed is returned by Accept, Dial and Listen once the transport, or the
// host it is bound to, has been closed.
var ErrClosed = errors.New("p2pquic: transport closed")

// errNotBound is returned when the host was not built with this transport's
// Option, so there is no ConnManager or identity to use.
var errNotBound = errors.New("p2pquic: host was not built with this Transport's Option()")

// Config configures a Transport.
type Config struct {
	// QUIC is used for dialed connections; nil means rawquic.Config(). Its
	// MaxIncomingStreams and MaxIncomingUniStreams also raise the limits of
	// the host's shared listening sockets (never lower them).
	QUIC *quic.Config
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
}

// Transport accepts and dials moq-lite connections over one libp2p host's
// QUIC sockets. It is bound to the host by Option and is safe for concurrent
// use.
type Transport struct {
	qconf *quic.Config
	log   *slog.Logger

	done     chan struct{} // closed by Close
	incoming chan *Conn    // authenticated connections waiting for Accept
	acceptWG sync.WaitGroup

	hostCtx    context.Context // cancelled when the host shuts down, to end dials
	hostCancel context.CancelFunc
	dialWG     sync.WaitGroup

	mu         sync.Mutex
	b          *binding // set by the QUICReuse constructor during libp2p.New
	listening  bool
	closed     bool
	hostClosed bool
	conns      map[*Conn]struct{} // live connections, closed with the host
}

// binding is what the transport takes from its host when libp2p constructs
// the ConnManager. It never changes afterwards.
type binding struct {
	cm      *quicreuse.ConnManager
	rcmgr   network.ResourceManager
	gater   connmgr.ConnectionGater // may be nil
	id      *p2ptls.Identity
	self    peer.ID
	sockets []*socket
}

// socket is a UDP socket this transport owns and lends to the host.
type socket struct {
	netw string // "udp4" or "udp6"
	port int
	conn *net.UDPConn
	tr   *quic.Transport
}

// New returns a transport to bind to a host with Option.
func New(cfg Config) *Transport {
	qc := cfg.QUIC
	if qc == nil {
		qc = rawquic.Config()
	} else {
		qc = qc.Clone()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	hostCtx, hostCancel := context.WithCancel(context.Background())
	return &Transport{
		qconf:      qc,
		log:        log.With("transport", "p2pquic"),
		done:       make(chan struct{}),
		incoming:   make(chan *Conn, 16),
		hostCtx:    hostCtx,
		hostCancel: hostCancel,
		conns:      map[*Conn]struct{}{},
	}
}

// Option returns the libp2p option that binds t to the host being built: it
// supplies the host's quicreuse.ConnManager (the host never exposes its own)
// and lends the host UDP sockets whose listeners grant moq-lite's stream
// limits. Pass it to exactly one libp2p.New; no other QUICReuse option may be
// given with it.
func (t *Transport) Option() libp2p.Option {
	// The constructor needs the final listen addresses and connection gater,
	// which later options may still change; libp2p.New runs the constructor
	// on the same Config after applying every option, so keep a pointer to it.
	var cfg *libp2p.Config
	return libp2p.ChainOptions(
		func(c *libp2p.Config) error { cfg = c; return nil },
		libp2p.QUICReuse(func(srk quic.StatelessResetKey, tok quic.TokenGeneratorKey, rm network.ResourceManager,
			priv crypto.PrivKey, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
			return t.bind(cfg, srk, tok, rm, priv, lc)
		}),
	)
}

// bind builds the ConnManager the way libp2p's default constructor does (the
// resource manager opens a scope for each inbound connection, and decides
// when to verify source addresses) and lends it a socket for each
// unspecified QUIC listen address.
func (t *Transport) bind(cfg *libp2p.Config, srk quic.StatelessResetKey, tok quic.TokenGeneratorKey,
	rm network.ResourceManager, priv crypto.PrivKey, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
	if cfg == nil {
		return nil, errors.New("p2pquic: Option's constructor ran without its config")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, ErrClosed
	case t.b != nil:
		return nil, errors.New("p2pquic: a Transport binds to one host; its Option was used twice")
	}
	if rm == nil {
		rm = &network.NullResourceManager{}
	}
	id, err := p2ptls.NewIdentity(priv)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	connCtx := t.connContext(rm)
	cm, err := quicreuse.NewConnManager(srk, tok,
		quicreuse.ConnContext(connCtx),
		quicreuse.VerifySourceAddress(rm.VerifySourceAddress))
	if err != nil {
		return nil, err
	}
	b := &binding{cm: cm, rcmgr: rm, gater: cfg.ConnectionGater, id: id, self: self}
	// The ConnManager rate-limits its own VerifySourceAddress (verify every
	// address once more than 1000 connections a second arrive); our sockets
	// bypass that wrapper, so they get the same policy here.
	limiter := rate.NewLimiter(1000, 1000)
	verify := func(addr net.Addr) bool { return !limiter.Allow() || rm.VerifySourceAddress(addr) }
	for _, l := range lendable(cfg.ListenAddrs) {
		s, err := t.lend(cm, l.netw, l.port, &srk, &tok, connCtx, verify)
		if err != nil {
			closeSockets(b.sockets)
			_ = cm.Close()
			return nil, err
		}
		b.sockets = append(b.sockets, s)
	}
	// Appended before the swarm (which needs the ConnManager) adds its hooks,
	// so it runs after the swarm has stopped.
	lc.Append(fx.Hook{OnStop: func(context.Context) error { return t.hostStopped(b) }})
	t.b = b
	return cm, nil
}

type listenSlot struct {
	netw string
	port int
}

// lendable lists the sockets to lend: one per unspecified-IP UDP address
// that QUIC will listen on (/quic-v1, and /quic-v1/webtransport, which listens
// first and would otherwise take the /quic-v1 address's socket). Explicit
// ports are lent once; each port-0 address gets its own socket, which
// quicreuse hands to the next port-0 listener.
func lendable(addrs []ma.Multiaddr) []listenSlot {
	var out []listenSlot
	for _, a := range addrs {
		if len(a) < 3 || a[1].Code() != ma.P_UDP || a[2].Code() != ma.P_QUIC_V1 {
			continue
		}
		var netw string
		switch a[0].Code() {
		case ma.P_IP4:
			netw = "udp4"
		case ma.P_IP6:
			netw = "udp6"
		default:
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

// connContext is the host's ConnContext: the resource manager opens a scope
// for each inbound connection, which whoever accepts it moves to the peer.
func (t *Transport) connContext(rm network.ResourceManager) func(context.Context, *quic.ClientInfo) (context.Context, error) {
	return func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
		addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
		if err != nil {
			addr = nil // let the resource manager decide without an address
		}
		scope, err := rm.OpenConnection(network.DirInbound, false, addr)
		if err != nil {
			return ctx, err
		}
		ctx = network.WithConnManagementScope(ctx, scope)
		context.AfterFunc(ctx, scope.Done)
		return context.WithValue(ctx, verifiedKeyKey{}, new(verifiedKey)), nil
	}
}

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
				"the host must listen on /ip4/0.0.0.0 or /ip6/:: and be built with Option()", a))
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return fail(errors.New("p2pquic: host has no /quic-v1 listen address"))
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
	netw := "udp6"
	if a[0].Code() == ma.P_IP4 {
		netw = "udp4"
	}
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

// allowWindowIncrease charges flow-control window growth to the connection's
// resource scope, as libp2p does for its own connections, so a peer cannot
// make the host buffer more than the resource manager allows.
func allowWindowIncrease(c *quic.Conn, delta uint64) bool {
	scope, err := network.UnwrapConnManagementScope(c.Context())
	if err != nil {
		return true // a connection accepted without a scope: nothing to charge
	}
	return scope.ReserveMemory(int(delta), network.ReservationPriorityMedium) == nil
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
	if scope, err := network.UnwrapConnManagementScope(qc.Context()); err == nil {
		if err := scope.SetPeer(pid); err != nil {
			t.log.Debug("resource manager refused connection", "peer", pid, "err", err)
			_ = qc.CloseWithError(codeBoundsExceeded, "resource limit")
			return
		}
	}
	c := t.register(qc, pid)
	if c == nil {
		return
	}
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

// register wraps qc and keeps it until it closes, so that the host's shutdown
// can close it with a code instead of silently dropping its socket. It
// returns nil, having closed qc, once the host is shutting down.
func (t *Transport) register(qc *quic.Conn, p peer.ID) *Conn {
	c := &Conn{Conn: rawquic.Wrap(qc), qc: qc, peer: p}
	t.mu.Lock()
	if t.hostClosed {
		t.mu.Unlock()
		_ = qc.CloseWithError(codeClosed, "host closing")
		return nil
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	context.AfterFunc(qc.Context(), func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	})
	return c
}

// Accept waits for the next authenticated incoming connection.
func (t *Transport) Accept(ctx context.Context) (*Conn, error) {
	for {
		select {
		case <-t.done:
			return nil, ErrClosed
		case <-t.hostCtx.Done():
			return nil, ErrClosed
		default:
		}
		select {
		case c := <-t.incoming:
			if c.qc.Context().Err() != nil {
				continue // closed while queued (by the peer, or the host's shutdown)
			}
			return c, nil
		case <-t.done:
			return nil, ErrClosed
		case <-t.hostCtx.Done():
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Dial opens a moq-lite connection to peer p at addr, an /ip4 or /ip6
// /udp/…/quic-v1 address optionally ending in /p2p/p. It leaves from the
// host's own QUIC socket (the one Listen serves, when listening), and the TLS
// handshake fails unless the remote proves it is p.
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.hostCtx, cancel)()

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
	qc, err := tr.Dial(ctx, raddr, tc, qconf)
	if err != nil {
		tr.DecreaseCount()
		scope.Done()
		if t.hostCtx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("p2pquic: dial %s at %s: %w", p, maddr, err)
	}
	// The socket reference and the scope last as long as the connection.
	context.AfterFunc(qc.Context(), func() {
		tr.DecreaseCount()
		scope.Done()
	})
	if got, err := remotePeer(qc, keyCh); err != nil || got != p { // ConfigForPeer checked it; be sure
		_ = qc.CloseWithError(codeProtocol, "wrong peer")
		return nil, fmt.Errorf("p2pquic: dialed %s but the remote is %s (%v)", p, got, err)
	}
	if b.gater != nil && !b.gater.InterceptSecured(network.DirOutbound, p, connAddrs(qc)) {
		_ = qc.CloseWithError(codeUnauthorized, "gated")
		return nil, fmt.Errorf("p2pquic: connection to %s gated", p)
	}
	c := t.register(qc, p)
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
	var netw string
	switch tpt[0].Code() {
	case ma.P_IP4:
		netw = "udp4"
	case ma.P_IP6:
		netw = "udp6"
	default:
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

// remotePeer is the peer ID in the certificate the handshake verified. The
// key the TLS config's check extracted comes on keyCh; re-deriving it from
// the certificate chain (the fallback) costs another signature verification.
func remotePeer(qc *quic.Conn, keyCh <-chan crypto.PubKey) (peer.ID, error) {
	select {
	case pub, ok := <-keyCh:
		if ok && pub != nil {
			return peer.IDFromPublicKey(pub)
		}
	default:
	}
	pub, err := p2ptls.PubKeyFromCertChain(qc.ConnectionState().TLS.PeerCertificates)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pub)
}

// verifiedKey is where an inbound connection's TLS config leaves the channel
// that yields the peer's verified key: GetConfigForClient sees the handshake
// context, the accept loop sees the connection's, and this slot, put into the
// connection's context by connContext, is what both can reach.
type verifiedKey struct {
	ch atomic.Pointer[<-chan crypto.PubKey]
}

type verifiedKeyKey struct{}

// maddrs gives the connection gater a connection's endpoints.
type maddrs struct{ local, remote ma.Multiaddr }

func (m maddrs) LocalMultiaddr() ma.Multiaddr  { return m.local }
func (m maddrs) RemoteMultiaddr() ma.Multiaddr { return m.remote }

func connAddrs(qc *quic.Conn) maddrs {
	l, _ := quicreuse.ToQuicMultiaddr(qc.LocalAddr(), quic.Version1)
	r, _ := quicreuse.ToQuicMultiaddr(qc.RemoteAddr(), quic.Version1)
	return maddrs{local: l, remote: r}
}

// Close stops accepting: new moq-lite handshakes fail, and connections whose
// handshake was already under way are closed on arrival. Established
// connections stay open (they close with the host). Calling it again does
// nothing.
//
// The moq-lite ALPNs stay registered on the host's sockets until the host
// closes, refusing. Removing them would race with handshakes in flight: when
// a connection completes for an ALPN no longer registered, quicreuse stops
// the whole shared listener, and the host silently stops accepting libp2p's
// QUIC connections too.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	t.mu.Unlock()
	t.drainIncoming()
	return nil
}

// drainIncoming closes the connections nobody will accept.
func (t *Transport) drainIncoming() {
	for {
		select {
		case c := <-t.incoming:
			_ = c.qc.CloseWithError(codeClosed, "not accepting")
		default:
			return
		}
	}
}

// hostStopped runs when the host shuts down, after its swarm: it closes the
// moq-lite connections with a code (closing the sockets would drop them
// silently, leaving the peer to time out), then the ConnManager and finally
// the lent sockets, which the ConnManager has given back by then.
func (t *Transport) hostStopped(b *binding) error {
	t.mu.Lock()
	t.hostClosed = true
	conns := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	t.hostCancel()
	t.dialWG.Wait()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { _ = c.qc.CloseWithError(codeClosed, "host closing") })
	}
	wg.Wait()
	err := b.cm.Close()
	closeSockets(b.sockets)
	t.acceptWG.Wait() // the accept loops end with the sockets' listeners
	return err
}

// Conn is a moq-lite connection to an authenticated peer.
type Conn struct {
	transport.Conn
	qc   *quic.Conn
	peer peer.ID
}

// Stats reports the QUIC connection's counters (see transport.StatsConn).
func (c *Conn) Stats() transport.Stats {
	if sc, ok := c.Conn.(transport.StatsConn); ok {
		return sc.Stats()
	}
	return transport.Stats{}
}

// RemotePeer is the peer at the other end, proven by its TLS certificate.
func (c *Conn) RemotePeer() peer.ID { return c.peer }
