package moq

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// Moq is a moqp2p node on a libp2p host. It is safe for concurrent use.
type Moq struct {
	h       host.Host
	a       *actor.Actor
	log     *slog.Logger
	quic    *p2pquic.Transport
	streams *p2pstream.Transport
	admit   func(context.Context, peer.ID) error

	incoming  int           // queue of each IncomingSessions iteration
	listeners atomic.Int32  // IncomingSessions iterations subscribed with the actor
	admits    chan struct{} // bounds admissions in progress, node-wide

	pendingMu      sync.Mutex
	pendingPerPeer map[peer.ID]int // admissions in progress by peer
	maxPendingPeer int

	disc        discoverer    // DHT, providing, mDNS (discovery.go)
	dialTimeout time.Duration // bounds connects the node makes by itself
	// hostConnects bounds the host connects that follow direct dials
	hostConnects chan struct{}
	// hostLater holds the peers whose host connect waits for their
	// Connect flight's callers to leave (flightReleased).
	hostLater   sync.Map     // peer.ID → struct{}
	directDials atomic.Int64 // sessions dialed by dialDirect (tests read it)

	paths        pathWatch     // hole-punching outcomes (path.go)
	punchWait    time.Duration // WithHolePunchWait
	relayedGrace time.Duration // WithRelayedGrace
	fallback     PathFallback  // WithPathFallback
	punching     bool          // the host runs DCUtR (punches)
	movingMu     sync.Mutex
	moving       map[peer.ID]map[*movingSub]struct{} // subscriptions on relayed sessions (migrate.go)

	ctx    context.Context // ends at Shutdown: stops accept loops and admissions
	cancel context.CancelFunc
	mu     sync.Mutex // orders m.wg.Go after New against Shutdown's cancel
	wg     sync.WaitGroup
	once   sync.Once
}

// New starts a node on h. h keeps belonging to the caller: Shutdown does not
// close it.
func New(h host.Host, opts ...Option) (*Moq, error) {
	o := options{incoming: 16, pendingAdmits: DefaultPendingAdmissions, pendingPerPeer: DefaultPendingPerPeer}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	m := &Moq{
		h:        h,
		log:      o.logger.With("node", h.ID().String()),
		quic:     o.quic,
		admit:    o.admit,
		incoming: max(o.incoming, 1),
		admits:   make(chan struct{}, max(o.pendingAdmits, 1)),

		pendingPerPeer: map[peer.ID]int{},
		maxPendingPeer: max(o.pendingPerPeer, 1),

		dialTimeout:  o.dialTimeout,
		hostConnects: make(chan struct{}, maxHostConnects),
	}
	if m.dialTimeout <= 0 {
		m.dialTimeout = 30 * time.Second
	}
	m.punchWait, m.relayedGrace, m.fallback = DefaultHolePunchWait, o.relayedGrace, o.fallback
	m.punching = punches(h)
	if o.punchWait != nil {
		m.punchWait = *o.punchWait
	}
	if m.relayedGrace <= 0 {
		m.relayedGrace = DefaultRelayedGrace
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if m.quic != nil {
		if o.deadPeer != 0 {
			m.quic.SetDeadPeerTimeout(o.deadPeer)
		}
		if err := m.quic.Listen(h); err != nil {
			m.cancel()
			return nil, err
		}
	}
	m.streams = p2pstream.New(h, p2pstream.Config{
		Logger:               m.log,
		MaxSessionsPerPeer:   o.peerLimits.StreamSessions,
		MaxStreamsPerSession: o.peerLimits.StreamsPerSession,
		DeadPeerTimeout:      o.deadPeer,
	})
	m.a = actor.New(actor.Config{
		Dial: func(ctx context.Context, addr peer.AddrInfo) (actor.Conn, error) {
			return m.dial(context.WithValue(ctx, connectFlight{}, true), addr)
		},
		Released: m.flightReleased,
		// Lazy: a session asks for its peer's announcements only once
		// something here needs them (Session.Announced, Subscribe,
		// forwarding), which saves an idle session two announce streams.
		Session:       session.Config{Limits: o.sessionLimits(), Interest: o.interest, LazyInterest: true, Metrics: o.metrics},
		HopID:         HopID(h.ID()),
		DialTimeout:   o.dialTimeout,
		ShutdownGrace: o.grace,
		Logger:        m.log,

		MaxSessionsPerPeer: o.peerLimits.Sessions,
		MaxPendingDials:    o.peerLimits.PendingDials,
		Forward:            o.forwardConfig(&m),
	})
	if m.quic != nil {
		m.wg.Go(func() { m.acceptLoop(func(ctx context.Context) (actor.Conn, error) { return m.quic.Accept(ctx) }) })
	}
	m.wg.Go(func() { m.acceptLoop(func(ctx context.Context) (actor.Conn, error) { return m.streams.Accept(ctx) }) })
	if err := m.startPathWatch(); err != nil {
		_ = m.Shutdown(context.Background())
		return nil, err
	}
	if err := m.startDiscovery(o.discovery, o.forward); err != nil {
		_ = m.Shutdown(context.Background())
		return nil, err
	}
	if o.relayFallback {
		if err := m.startRelayFallback(); err != nil {
			_ = m.Shutdown(context.Background())
			return nil, err
		}
	}
	return m, nil
}

// HopID is the node's ID in moq-lite hop lists: derived from its peer ID, so
// it is stable across restarts, and below 2^53 so JavaScript peers can read it.
func HopID(p peer.ID) uint64 {
	sum := sha256.Sum256([]byte(p))
	return max(binary.BigEndian.Uint64(sum[:8])&(broadcast.MaxHopID-1), 1)
}

// Host is the libp2p host the node runs on.
func (m *Moq) Host() host.Host { return m.h }

// Publish offers b at name to every current and future session until it is
// unpublished or b ends; then the name is free again. With WithDHT (unless
// WithProvide(false)) the name is also provided in the DHT, now and every
// provide interval until then. A name already published returns
// ErrDuplicate; after Shutdown, ErrShutdown.
func (m *Moq) Publish(ctx context.Context, name string, b *broadcast.Consumer) (*Publication, error) {
	return m.publish(ctx, name, b)
}

// PublishedBroadcasts lists the names published on every session.
func (m *Moq) PublishedBroadcasts(ctx context.Context) ([]string, error) { return m.a.Published(ctx) }

// Connect returns the session to a peer, dialing it if there is none. Give
// addr.Addrs to dial addresses the host does not know yet; with only addr.ID
// the host's peerstore (and its routing, if any) supplies them. When the
// host has no connection to the peer, the QUIC addresses in addr.Addrs are
// dialed directly first (one handshake; the host connects to the peer in
// the background afterwards); if none answers within half a second, the
// host connects and the session takes the path that connection proves.
// Concurrent calls for one peer share one dial; a closing session is never
// returned. The node's own peer ID returns ErrSelfConnect.
func (m *Moq) Connect(ctx context.Context, addr peer.AddrInfo) (*Session, error) {
	if addr.ID == m.h.ID() { // a session with ourselves would answer nothing
		return nil, ErrSelfConnect
	}
	s, err := m.a.Connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &Session{s: s, m: m}, nil
}

// Sessions lists the live sessions, oldest first.
func (m *Moq) Sessions(ctx context.Context) ([]*Session, error) {
	list, err := m.a.Sessions(ctx)
	out := make([]*Session, len(list))
	for i, s := range list {
		out[i] = &Session{s: s, m: m}
	}
	return out, err
}

// IncomingSessions yields the sessions that peers open to this node, after
// admission (a server.Server's clients, and sessions accepted through
// Admission, too); sessions this node dialed or opened are not included.
// An iteration first yields the accepted sessions still open when it
// starts, oldest first, then every session admitted while it runs, so a
// loop started after its first peers arrived misses none of them, and
// sees none twice (a later iteration yields again those still open).
// Every iteration sees them all, whatever other
// iterations run at the same time: each has its own queue of
// WithIncomingQueue sessions. None is dropped: when an iteration's queue
// is full, the admission waits for room until that iteration reads again
// or ends, or the node (for a server.Server's session, the server) shuts
// down; other iterations receive the session meanwhile. The admission
// waits holding one of the node's WithPendingAdmissions slots, so once an
// iteration that stopped reading holds them all, accepting pauses (on the
// libp2p transports and on every server.Server alike). An iteration that
// ended (break, or Shutdown) holds up nothing, and nothing is queued while
// no iteration runs, so a node that never iterates is never stalled.
// Iteration ends at Shutdown.
func (m *Moq) IncomingSessions() iter.Seq[*Session] {
	return func(yield func(*Session) bool) {
		in, err := m.a.Incoming(m.ctx, m.incoming)
		if err != nil { // shutting down
			return
		}
		defer in.Close() // unsubscribes, however the iteration ends
		m.listeners.Add(1)
		defer m.listeners.Add(-1)
		for {
			s, err := in.Next(m.ctx)
			if err != nil {
				return
			}
			if !yield(&Session{s: s, m: m}) {
				return
			}
		}
	}
}

// Shutdown refuses new connects and publishes with ErrShutdown, fails
// pending connects, closes every session (waiting up to the grace period),
// ends IncomingSessions, stops mDNS and re-providing, and returns once the
// node has stopped. If ctx ends first (or had already ended) it returns
// ctx's error while the shutdown goes on; call it again with a live ctx to
// wait for the stop (as with net/http's Server.Shutdown): each call waits.
// The host (and the DHT) stay open.
func (m *Moq) Shutdown(ctx context.Context) error {
	m.stopDiscovery()
	err := m.a.Shutdown(ctx)
	m.once.Do(func() {
		m.mu.Lock()
		m.cancel()
		m.mu.Unlock()
		m.stopProviding()
		if m.quic != nil {
			_ = m.quic.Close()
		}
		_ = m.streams.Close()
	})
	m.wg.Wait()
	return err
}

// dial reaches a peer: over raw QUIC straight to the QUIC addresses the
// caller gave (dialDirect), else over raw QUIC on the direct (unrelayed)
// QUIC path of the host's connection, else over libp2p streams on whatever
// connection libp2p makes.
func (m *Moq) dial(ctx context.Context, addr peer.AddrInfo) (actor.Conn, error) {
	if len(addr.Addrs) > 0 {
		m.h.Peerstore().AddAddrs(addr.ID, addr.Addrs, peerstore.TempAddrTTL)
		if c := m.dialDirect(ctx, addr); c != nil {
			return c, nil
		}
	} else {
		m.findAddrs(ctx, addr.ID)
	}
	if err := m.h.Connect(ctx, peer.AddrInfo{ID: addr.ID}); err != nil {
		return nil, err
	}
	m.awaitDirect(ctx, addr.ID) // hole punching, if the peer is only reachable through a relay
	if m.quic != nil {
		for _, c := range m.h.Network().ConnsToPeer(addr.ID) {
			if !directQUIC(c) {
				continue
			}
			qc, err := m.quic.Dial(ctx, addr.ID, c.RemoteMultiaddr())
			if err == nil {
				return qc, nil
			}
			m.log.Debug("raw QUIC dial failed; trying libp2p streams", "peer", addr.ID, "err", err)
		}
	}
	c, err := m.streams.Dial(ctx, addr.ID)
	if err != nil {
		return nil, err // not c: a nil *p2pstream.Conn is no nil actor.Conn
	}
	return c, nil
}

// directHeadStart bounds the direct QUIC dial to the addresses a caller
// gave before the libp2p path takes over: a reachable QUIC address answers
// within a few round trips, and one that does not (stale, behind a NAT)
// delays the connect by this much at most.
const directHeadStart = 500 * time.Millisecond

// maxDirectAddrs bounds the addresses dialed at once by dialDirect.
const maxDirectAddrs = 8

// dialDirect dials raw QUIC straight to the QUIC addresses in addr, all at
// once, when the host has no connection to the peer yet: one handshake
// instead of libp2p's (handshake and identify) followed by ours. The first
// connection wins and the others are closed; nil if none succeeded within
// directHeadStart (the caller then takes the libp2p path). The host still
// connects to the peer, in the background, as it would have before the
// session: discovery and the DHT see the peer as they did.
func (m *Moq) dialDirect(ctx context.Context, addr peer.AddrInfo) actor.Conn {
	if m.quic == nil || m.h.Network().Connectedness(addr.ID) == network.Connected {
		return nil // connected: the libp2p path costs nothing more, and its address is proven
	}
	var cands []ma.Multiaddr
	for _, a := range addr.Addrs {
		if isQUIC(a) && !isRelayed(a) && len(cands) < maxDirectAddrs {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, directHeadStart)
	defer cancel()
	type result struct {
		c   *p2pquic.Conn
		err error
	}
	results := make(chan result, len(cands))
	for _, a := range cands {
		go func() {
			c, err := m.quic.Dial(ctx, addr.ID, a)
			results <- result{c, err}
		}()
	}
	var won *p2pquic.Conn
	for range cands { // every dial returns: the losers are cancelled or closed
		r := <-results
		switch {
		case r.err != nil:
			m.log.Debug("direct QUIC dial failed", "peer", addr.ID, "err", r.err)
		case won == nil:
			won = r.c
			cancel()
		default:
			_ = r.c.CloseWithError(uint32(broadcast.CodeCancel), "duplicate dial")
		}
	}
	if won == nil {
		return nil
	}
	m.directDials.Add(1)
	if ctx.Value(connectFlight{}) != nil {
		// Connect's: the host connects once every caller waiting for
		// this dial has the session (flightReleased). Its handshake
		// would otherwise take the CPU a burst of callers needs to wake
		// (P7: a millisecond or more of the time to serve 1000 of them).
		m.hostLater.Store(addr.ID, struct{}{})
	} else {
		m.connectHost(addr.ID)
	}
	return won
}

// connectFlight marks the context of the actor's dials: those made for
// Connect callers, whose end the actor reports (flightReleased).
type connectFlight struct{}

// flightReleased runs once the callers of a Connect flight to p have left:
// the host connect its direct dial put off starts now.
func (m *Moq) flightReleased(p peer.ID) {
	if _, ok := m.hostLater.LoadAndDelete(p); ok {
		m.connectHost(p)
	}
}

// maxHostConnects bounds the background host connects of dialDirect.
const maxHostConnects = 16

// connectHost connects the host to p in the background, if fewer than
// maxHostConnects such connects are under way (it is a convenience: the
// session does not need it).
func (m *Moq) connectHost(p peer.ID) {
	select {
	case m.hostConnects <- struct{}{}:
	default:
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		<-m.hostConnects
		return
	}
	m.wg.Go(func() {
		defer func() { <-m.hostConnects }()
		ctx, cancel := context.WithTimeout(m.ctx, m.dialTimeout)
		defer cancel()
		if err := m.h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			m.log.Debug("host connect after a direct dial failed", "peer", p, "err", err)
		}
	})
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

// acceptLoop admits and registers a transport's incoming connections. It
// waits for an admission slot before it accepts the next connection, so a
// flood waits in the transport's bounded accept queue, not in goroutines.
func (m *Moq) acceptLoop(accept func(context.Context) (actor.Conn, error)) {
	for {
		c, err := accept(m.ctx)
		if err != nil {
			return
		}
		p := c.RemotePeer()
		if !m.reservePeer(p) {
			m.log.Debug("session refused: too many pending admissions", "peer", p)
			_ = c.CloseWithError(uint32(ErrTooManyPending.Code), ErrTooManyPending.Reason)
			continue
		}
		if err := m.acquireAdmission(m.ctx); err != nil {
			m.releasePeer(p)
			_ = c.CloseWithError(uint32(broadcast.CodeCancel), "shutting down")
			return
		}
		m.wg.Go(func() {
			m.admitAndRegister(c)
		})
	}
}

// acquireAdmission takes one of the node's admission slots.
func (m *Moq) acquireAdmission(ctx context.Context) error {
	select {
	case m.admits <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.ctx.Done():
		return ErrShutdown
	}
}

func (m *Moq) releaseAdmission() { <-m.admits }

// reservePeer counts an admission of p, unless p has the most it may have.
func (m *Moq) reservePeer(p peer.ID) bool {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	if m.pendingPerPeer[p] >= m.maxPendingPeer {
		return false
	}
	m.pendingPerPeer[p]++
	return true
}

func (m *Moq) releasePeer(p peer.ID) {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	if m.pendingPerPeer[p]--; m.pendingPerPeer[p] <= 0 {
		delete(m.pendingPerPeer, p)
	}
}

// admitAndRegister runs admission before the session exists, so nothing is
// offered to a peer that is then turned away. It holds p's reservation
// until admission is over, and the admission slot until the session has
// also reached every IncomingSessions iteration: an iteration that does not
// read holds up at most the node's slots, then accepting pauses.
func (m *Moq) admitAndRegister(c actor.Conn) {
	defer m.releaseAdmission()
	err := m.admitted(m.ctx, c)
	m.releasePeer(c.RemotePeer())
	if err != nil {
		return
	}
	if s, err := m.a.Register(m.ctx, c, false); err == nil { // a refused connection is closed
		m.sessionAdded(s) // a direct path takes over subscriptions on a relayed one
	}
}

// admitted runs admission (WithAdmission) on an incoming connection and
// closes it, with the refusal's code, if it is turned away (returning the
// refusal). An admission still running when ctx ends is a refusal.
func (m *Moq) admitted(ctx context.Context, c actor.Conn) error {
	if m.admit == nil {
		return nil
	}
	err := m.admit(ctx, c.RemotePeer())
	if ctx.Err() != nil { // whatever admission made of it: we are going away
		err = &broadcast.Error{Code: broadcast.CodeCancel, Reason: "shutting down"}
	}
	if err == nil {
		return nil
	}
	code, reason := refusal(err)
	m.log.Info("session rejected", "peer", c.RemotePeer(), "code", code, "reason", reason)
	_ = c.CloseWithError(uint32(code), reason)
	return err
}
