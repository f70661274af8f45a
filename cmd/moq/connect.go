package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// peerSession is a moq-lite session with one peer, over moql:// or libp2p.
type peerSession interface {
	// Peer names the other end: moql://addr or a peer ID.
	Peer() string
	// Announced yields the peer's broadcasts under prefix, then changes.
	Announced(ctx context.Context, prefix string) iter.Seq2[string, *broadcast.Consumer]
	// Subscribe reads a track of the peer's broadcast. Over moql:// it asks
	// at once (an unknown broadcast is broadcast.ErrNotFound); over libp2p
	// it first waits for the announcement.
	Subscribe(ctx context.Context, name, track string) (*broadcast.TrackConsumer, error)
	Done() <-chan struct{}
	Err() error
	Close(reason string)
	// RTT is the smoothed round-trip time, 0 if unknown.
	RTT() time.Duration
	// Via names the transport the session runs on, for logs.
	Via() string
}

// nodeConfig says what a subcommand needs from the network.
type nodeConfig struct {
	listens  []endpoint
	connects []endpoint
	// interest lists the path prefixes whose announcements to ask peers for:
	// nil is everything, empty is nothing.
	interest []string
	// incoming delivers accepted sessions on node.incoming.
	incoming bool
	// dhtServer runs the DHT as a server even without --bootstrap (moq
	// node); with --bootstrap every node runs it.
	dhtServer bool
	// dials are other libp2p peers the node will dial (a ticket's), for
	// choosing its sockets.
	dials []endpoint
	net   *netFlags
	log   *slog.Logger
}

// interestFor is the announce prefix to ask a peer for so as to learn of
// broadcast name: its parent path. Not the name itself: a prefix travels
// as "/name/", which gomoqt does not match against the broadcast "/name".
func interestFor(name string) []string {
	name = broadcast.CleanPath(name)
	i := strings.LastIndex(name, "/")
	if i < 0 {
		return []string{""}
	}
	return []string{name[:i]}
}

// node is this process on the network: its listeners, the broadcasts it
// publishes and its sessions, over moql:// and libp2p alike. Every
// subcommand opens and accepts sessions through it.
type node struct {
	cfg    nodeConfig
	log    *slog.Logger
	origin *broadcast.Origin // what moql:// sessions are offered

	listening   []string // dialable addresses, for "listening:" lines
	fingerprint string   // of the moql:// certificate, if listening on moql://

	eps        []*rawquic.Endpoint // moql:// listeners
	webClosers []io.Closer         // ws:// and https:// servers
	dialMu     sync.Mutex
	dialEPs    map[string]*rawquic.Endpoint // moql:// dialing sockets by bind address
	p2p        *p2pNode                     // nil without multiaddrs

	// incoming carries accepted sessions when cfg.incoming is set. It is
	// never closed; sends never block (a full queue drops the notice, not
	// the session).
	incoming chan peerSession

	ctx    context.Context // ends at close: stops the accept loops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	moqls map[*moqlSession]struct{} // live moql:// sessions
}

// newNode opens the listeners and joins the DHT through the --bootstrap
// peers (within --timeout; ctx interrupts). Nothing is printed yet: see
// printListening.
func newNode(ctx context.Context, cfg nodeConfig) (n *node, err error) {
	n = &node{
		cfg:      cfg,
		log:      cfg.log,
		origin:   broadcast.NewOrigin(0),
		incoming: make(chan peerSession, 64),
		moqls:    map[*moqlSession]struct{}{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	var tc *tls.Config
	for _, e := range cfg.listens {
		if e.kind == kindWS {
			if err := n.listenWS(e); err != nil {
				return n, fmt.Errorf("--listen %s: %w", e, err)
			}
			continue
		}
		if e.kind != kindMoQL && e.kind != kindWT {
			continue
		}
		if tc == nil {
			if tc, err = n.serverTLS(cfg.listens); err != nil {
				return n, err
			}
		}
		if e.kind == kindWT {
			if err := n.listenWT(e, tc); err != nil {
				return n, fmt.Errorf("--listen %s: %w", e, err)
			}
			continue
		}
		ep, err := rawquic.Listen(e.hostport, tc, nil)
		if err != nil {
			return n, fmt.Errorf("--listen %s: %w", e, err)
		}
		n.eps = append(n.eps, ep)
		n.listening = append(n.listening, "moql://"+listenAddr(e.hostport, ep.Addr()))
		n.wg.Go(func() { n.acceptMoQL(ep) })
	}
	if needsP2P(cfg) {
		if n.p2p, err = newP2P(n.ctx, cfg, n.offer); err != nil {
			return n, err
		}
		n.listening = append(n.listening, n.p2p.addrs()...)
		if err := n.p2p.join(ctx, cfg.net.boot, cfg.net.timeout); err != nil {
			return n, err
		}
	}
	return n, nil
}

func needsP2P(cfg nodeConfig) bool {
	if cfg.dhtServer || cfg.net.discovers() || len(cfg.dials) > 0 {
		return true
	}
	for _, e := range slices.Concat(cfg.listens, cfg.connects) {
		if e.kind == kindP2P {
			return true
		}
	}
	return false
}

// serverTLS makes the self-signed certificate all moql:// listeners share.
func (n *node) serverTLS(listens []endpoint) (*tls.Config, error) {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	for _, e := range listens {
		if h, _, _ := net.SplitHostPort(e.hostport); (e.kind == kindMoQL || e.kind == kindWT) && h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	c, err := cert.SelfSigned(hosts...)
	if err != nil {
		return nil, err
	}
	fp := cert.Fingerprint(c)
	n.fingerprint = hex.EncodeToString(fp[:])
	return &tls.Config{Certificates: []tls.Certificate{c}}, nil
}

// listenAddr is what to print for a listener (UDP or TCP): the host as given
// (the bound address if none) with the bound port.
func listenAddr(hostport string, bound net.Addr) string {
	host, _, _ := net.SplitHostPort(hostport)
	var ip net.IP
	var port int
	switch a := bound.(type) {
	case *net.UDPAddr:
		ip, port = a.IP, a.Port
	case *net.TCPAddr:
		ip, port = a.IP, a.Port
	default:
		return bound.String()
	}
	if host == "" {
		host = ip.String()
	}
	return net.JoinHostPort(host, fmt.Sprint(port))
}

// printListening writes the certificate fingerprint (if any) and one
// "listening:" line per dialable address. Call it once the node is ready to
// serve what a peer will ask for.
func (n *node) printListening(w io.Writer) {
	if n.fingerprint != "" {
		fmt.Fprintf(w, "fingerprint: %s\n", n.fingerprint)
	}
	for _, a := range n.listening {
		fmt.Fprintf(w, "listening: %s\n", a)
	}
}

// sessionConfig is the moq-lite configuration of every moql:// session.
func (n *node) sessionConfig() session.Config {
	return session.Config{Publish: n.origin, Interest: n.cfg.interest, Logger: n.log, Limits: sessionLimits()}
}

// sessionLimits lets a received group hold as many frames as a publisher
// may put in one (--group-frames), so a reader that is a moment behind is
// not handed ErrEvicted.
func sessionLimits() session.Limits {
	return session.Limits{Model: broadcast.Limits{GroupMaxFrames: maxGroupFrames}}
}

// maxGroupFrames bounds --group-frames and the frames a received group caches.
const maxGroupFrames = 1 << 16

func (n *node) acceptMoQL(ep *rawquic.Endpoint) {
	for {
		conn, err := ep.Accept(n.ctx)
		if err != nil {
			return
		}
		s, err := session.New(conn, n.sessionConfig())
		if err != nil {
			n.log.Warn("refused a moql:// session", "remote", conn.RemoteAddr(), "err", err)
			continue
		}
		ms := n.track(s, "moql://"+conn.RemoteAddr().String())
		n.log.Debug("session accepted", "peer", ms.Peer(), "version", s.Version())
		n.offer(ms)
	}
}

// offer hands an accepted session to the subcommand, if it wants them.
func (n *node) offer(s peerSession) {
	if !n.cfg.incoming {
		return
	}
	select {
	case n.incoming <- s:
	default:
		n.log.Debug("incoming session not queued: nobody is reading", "peer", s.Peer())
	}
}

// track registers a moql:// session until it ends.
func (n *node) track(s *session.Session, peer string) *moqlSession {
	ms := &moqlSession{s: s, peer: peer}
	n.mu.Lock()
	n.moqls[ms] = struct{}{}
	n.mu.Unlock()
	context.AfterFunc(s.Context(), func() {
		n.mu.Lock()
		delete(n.moqls, ms)
		n.mu.Unlock()
	})
	return ms
}

// publish offers b at name on every session, current and future.
// publishAndDial publishes b at name, dials the first of connects (if any)
// and prints the listening lines: what pub and clock pub both do before they
// produce. A dialed session is then the only way to the subscriber, so its
// end (peerGone, nil without connects) ends the command.
func (n *node) publishAndDial(ctx context.Context, name string, b *broadcast.Consumer, connects []endpoint, w io.Writer) (dialed peerSession, peerGone <-chan struct{}, err error) {
	if err := n.publish(ctx, name, b); err != nil {
		return nil, nil, err
	}
	if len(connects) > 0 {
		if dialed, err = n.connect(ctx, connects[0]); err != nil {
			return nil, nil, err
		}
		peerGone = dialed.Done()
	}
	n.printListening(w)
	n.printTickets(w, name)
	return dialed, peerGone, nil
}

// printTickets writes the tickets for broadcast name that subscribers can
// pass to sub --ticket: with this node's libp2p addresses if it has any,
// and, in a DHT, the short form whose addresses the DHT finds.
func (n *node) printTickets(w io.Writer, name string) {
	if n.p2p == nil {
		return
	}
	t := n.p2p.m.Ticket(name)
	if len(t.Addrs) > 0 {
		fmt.Fprintf(w, "ticket: %s\n", t)
	}
	if n.p2p.d != nil {
		fmt.Fprintf(w, "ticket: %s\n", t.Short())
	}
}

func (n *node) publish(ctx context.Context, name string, b *broadcast.Consumer) error {
	if _, err := n.origin.Publish(name, b); err != nil {
		return err
	}
	if n.p2p != nil {
		if _, err := n.p2p.m.Publish(ctx, name, b); err != nil {
			return err
		}
	}
	return nil
}

// connect opens a session to e, giving up after --timeout.
func (n *node) connect(ctx context.Context, e endpoint) (peerSession, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.net.timeout)
	defer cancel()
	var s peerSession
	var err error
	switch e.kind {
	case kindMoQL:
		s, err = n.dialMoQL(ctx, e)
	case kindP2P:
		s, err = n.p2p.connect(ctx, e)
	case kindWS, kindWT:
		s, err = n.dialWeb(ctx, e)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("connect %s: no answer within %s", e, n.cfg.net.timeout)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("connect %s: %w", e, err)
	}
	n.log.Debug("connected", "peer", s.Peer(), "via", s.Via())
	return s, nil
}

func (n *node) dialMoQL(ctx context.Context, e endpoint) (peerSession, error) {
	ep, err := n.dialEndpoint(e)
	if err != nil {
		return nil, err
	}
	conn, err := ep.Dial(ctx, e.hostport, n.clientTLS(e))
	if err != nil {
		if strings.Contains(err.Error(), "x509:") {
			return nil, fmt.Errorf("%w (pin the server with --fingerprint HEX, or use --insecure)", err)
		}
		return nil, err
	}
	cfg := n.sessionConfig()
	cfg.Client = true // a server that picks moql expects our CLIENT_SETUP
	s, err := session.New(conn, cfg)
	if err != nil {
		return nil, err
	}
	return n.track(s, e.raw), nil
}

// dialEndpoint is the socket moql:// dials leave from: a listener's if there
// is one (one NAT binding both ways), else one of its own, on loopback for
// a loopback peer.
func (n *node) dialEndpoint(e endpoint) (*rawquic.Endpoint, error) {
	if len(n.eps) > 0 {
		return n.eps[0], nil
	}
	bind := ":0"
	if host, _, _ := net.SplitHostPort(e.hostport); net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback() {
		bind = net.JoinHostPort(host, "0")
	}
	n.dialMu.Lock()
	defer n.dialMu.Unlock()
	if ep := n.dialEPs[bind]; ep != nil {
		return ep, nil
	}
	ep, err := rawquic.NewEndpoint(bind, nil)
	if err != nil {
		return nil, err
	}
	if n.dialEPs == nil {
		n.dialEPs = map[string]*rawquic.Endpoint{}
	}
	n.dialEPs[bind] = ep
	return ep, nil
}

func (n *node) clientTLS(e endpoint) *tls.Config {
	switch {
	case n.cfg.net.fingerprint != "":
		fp, _ := cert.ParseFingerprint(n.cfg.net.fingerprint) // checked by netFlags.endpoints
		return cert.PinnedConfig(fp)
	case n.cfg.net.insecure:
		return &tls.Config{InsecureSkipVerify: true}
	default:
		host, _, _ := net.SplitHostPort(e.hostport)
		return &tls.Config{ServerName: host}
	}
}

// sessions lists the live sessions, accepted and dialed.
func (n *node) sessions(ctx context.Context) []peerSession {
	n.mu.Lock()
	out := make([]peerSession, 0, len(n.moqls))
	for s := range n.moqls {
		out = append(out, s)
	}
	n.mu.Unlock()
	if n.p2p != nil {
		out = append(out, n.p2p.sessions(ctx)...)
	}
	return out
}

// waitSessionsDone waits until every live session has ended, at most d.
func (n *node) waitSessionsDone(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for _, s := range n.sessions(ctx) {
		select {
		case <-s.Done():
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// close ends every session and listener, and waits for them.
func (n *node) close() {
	n.cancel()
	if n.p2p != nil {
		n.p2p.close()
	}
	var wg sync.WaitGroup
	for _, s := range n.sessions(context.Background()) {
		wg.Go(func() { s.Close("bye") })
	}
	wg.Wait()
	for _, ep := range n.eps {
		_ = ep.Close()
	}
	for _, c := range n.webClosers {
		_ = c.Close()
	}
	n.dialMu.Lock()
	for _, ep := range n.dialEPs {
		_ = ep.Close()
	}
	n.dialMu.Unlock()
	n.wg.Wait()
	n.origin.Close()
}

// moqlSession is a session over moql://.
type moqlSession struct {
	s    *session.Session
	peer string
}

func (m *moqlSession) Peer() string { return m.peer }

func (m *moqlSession) Announced(ctx context.Context, prefix string) iter.Seq2[string, *broadcast.Consumer] {
	return m.s.Remote().Announced(ctx, prefix)
}

func (m *moqlSession) Subscribe(ctx context.Context, name, track string) (*broadcast.TrackConsumer, error) {
	tc, err := m.s.Subscribe(ctx, name, track, subscribeOptions)
	if errors.Is(err, session.ErrClosed) {
		return nil, sessionEnded(m)
	}
	return tc, err
}

func (m *moqlSession) Done() <-chan struct{} { return m.s.Done() }
func (m *moqlSession) Err() error            { return m.s.Err() }
func (m *moqlSession) Close(reason string)   { _ = m.s.Close(broadcast.CodeCancel, reason) }

func (m *moqlSession) Via() string { return "raw QUIC (moql)" }

func (m *moqlSession) RTT() time.Duration {
	if qc, ok := rawquic.QUIC(m.s.Conn()); ok {
		return qc.ConnectionStats().SmoothedRTT
	}
	return 0
}

// hungUp reports whether the peer closed the session normally (code 0), as
// a subscriber that got what it wanted does.
func hungUp(s peerSession) bool {
	var ce *transport.ConnError
	return errors.As(s.Err(), &ce) && ce.Remote && ce.Code == uint32(broadcast.CodeCancel)
}

// sessionEnded describes a session that ended under us.
func sessionEnded(s peerSession) error {
	if err := s.Err(); err != nil {
		return fmt.Errorf("session with %s ended: %v", s.Peer(), err)
	}
	return fmt.Errorf("session with %s ended", s.Peer())
}
