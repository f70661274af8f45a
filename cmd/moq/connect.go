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
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/moq/server/watch"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// peerSession is a moq-lite session with one peer, over libp2p, moql://,
// WebTransport or WebSocket.
type peerSession interface {
	// Peer names the other end: moql://addr or a peer ID.
	Peer() string
	// Announced yields the peer's broadcasts under prefix, then changes.
	Announced(ctx context.Context, prefix string) iter.Seq2[string, *broadcast.Consumer]
	// Subscribe reads a track of the peer's broadcast, once the peer has
	// announced it (until ctx ends). A track the announced broadcast lacks
	// is an error that does not match broadcast.ErrNotFound, which callers
	// read as a missing broadcast.
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
	// relay makes the node a circuit relay for peers behind NATs (moq node
	// --relay-service); nil relays nothing.
	relay *moq.RelayService
	net   *netFlags
	log   *slog.Logger
	// moqOpts are extra options of the moq node (moq relay's forwarding).
	moqOpts []moq.Option
	// route, if set, admits and scopes the sessions of the web listeners
	// (default: everything); handler serves their plain HTTP requests.
	route   func(*http.Request) (string, error)
	handler http.Handler
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

// node is this process on the network: a moq node (libp2p host, moq.Moq)
// with a server.Server per moql://, https:// or ws:// listener, so every
// session, accepted or dialed, over any transport, is one of the node's
// and passes its admission and limits. Every subcommand opens and accepts
// sessions through it.
type node struct {
	cfg nodeConfig
	log *slog.Logger

	listening   []string // dialable addresses, for "listening:" lines
	pages       []string // http://host:port of the listeners serving the web pages (watch.Handler)
	fingerprint string   // of the certificate of the moql:// and https:// listeners

	// webTCP maps the host:port of each https:// --listen whose TCP port
	// serves WebSocket (and the pages) to that port's printed address.
	webTCP map[string]string

	servers  []*server.Server
	serveErr chan error // Serve's results, one per server
	dialMu   sync.Mutex
	dialEPs  map[string]*rawquic.Endpoint // moql:// dialing sockets by bind address
	noPath   sync.Map                     // moql:// URLs warned of a server older than lite-05 (redials warn once)
	p2p      *p2pNode

	// incoming carries accepted sessions when cfg.incoming is set. It is
	// never closed; sends never block (a full queue drops the notice, not
	// the session).
	incoming chan peerSession
	observe  *observeServer // --metrics (observe.go); nil without
}

// newNode opens the listeners and joins the DHT through the --bootstrap
// peers (within --timeout; ctx interrupts). Nothing is printed yet: see
// printListening.
func newNode(ctx context.Context, cfg nodeConfig) (n *node, err error) {
	n = &node{
		cfg:      cfg,
		log:      cfg.log,
		incoming: make(chan peerSession, 64),
		serveErr: make(chan error, len(cfg.listens)),
	}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if n.p2p, err = newP2P(ctx, cfg, n.offer); err != nil {
		return n, err
	}
	if n.observe, err = startObserve(n); err != nil {
		return n, err
	}
	var tc *tls.Config
	for _, e := range cfg.listens {
		if e.kind == kindP2P {
			continue
		}
		if tc == nil {
			if tc, err = n.serverTLS(cfg.listens); err != nil {
				return n, err
			}
		}
		if err := n.listen(e, tc); err != nil {
			return n, fmt.Errorf("--listen %s: %w", e, err)
		}
	}
	n.listening = append(n.listening, n.p2p.addrs()...)
	if err := n.p2p.join(ctx, cfg.net.boot, cfg.net.timeout); err != nil {
		return n, err
	}
	return n, nil
}

// pagesHandler serves a listener's plain HTTP requests: the node's own
// handler (moq relay's /announced and /fetch) where it has one, the watch and
// publish pages everywhere else.
func (n *node) pagesHandler() http.Handler {
	mux := http.NewServeMux()
	if n.cfg.handler != nil {
		mux.Handle("/announced", n.cfg.handler)
		mux.Handle("/announced/", n.cfg.handler)
		mux.Handle("/fetch/", n.cfg.handler)
	}
	// The pages show the node's live stats next to the player: its
	// sessions and broadcasts, as moq stats prints them, from /stats.
	// Anyone who can load the pages reads them, so the sessions' peers
	// and addresses are in them only with --serve-stats.
	if n.cfg.net.serveStats {
		mux.Handle("GET /stats", server.StatsHandler(n.p2p.m))
	}
	mux.Handle("/", watch.NodeHandler(n.p2p.m))
	return mux
}

// listen serves e with a server.Server of the node: raw QUIC (moql://) and
// WebTransport (https://) share a UDP socket, WebSocket (ws://) is on TCP.
// Every session sees all the node's broadcasts, whatever the URL path.
func (n *node) listen(e endpoint, tc *tls.Config) error {
	srv := &server.Server{
		Moq:         n.p2p.m,
		TLSConfig:   tc,
		PlainHTTP:   true,
		CheckOrigin: n.cfg.net.checkOrigin(),
		Route:       func(*http.Request) (string, error) { return "", nil },
		Logger:      n.log,
		Handler:     n.pagesHandler(),
		QUICConfig:  rawquic.ConfigDeadPeer(n.cfg.net.deadPeer),
	}
	srv.WebSocket.DeadPeerTimeout = n.cfg.net.deadPeer
	if n.cfg.route != nil {
		srv.Route = n.cfg.route
	}
	var udp net.PacketConn
	var tcp net.Listener
	var err error
	if e.kind == kindWS {
		if served, ok := n.webTCP[e.hostport]; ok {
			// An https:// listener on this port number serves WebSocket
			// on its TCP port already: --listen https://H:P/ --listen
			// ws://H:P/ is what a user writes for both kinds of browser.
			n.listening = append(n.listening, "ws://"+served+pathOf(e.url))
			return nil
		}
		if tcp, err = net.Listen("tcp", e.hostport); err != nil {
			return err
		}
		n.listening = append(n.listening, "ws://"+listenAddr(e.hostport, tcp.Addr())+pathOf(e.url))
		n.pages = append(n.pages, "http://"+listenAddr(e.hostport, tcp.Addr()))
	} else {
		if udp, err = net.ListenPacket("udp", e.hostport); err != nil {
			return err
		}
		addr := listenAddr(e.hostport, udp.LocalAddr())
		if e.kind == kindWT {
			n.listening = append(n.listening, "https://"+addr+pathOf(e.url))
			// Browsers load pages over TCP: the same port number there
			// serves them (and WebSocket), if it is free.
			if tcp, err = net.Listen("tcp", udp.LocalAddr().String()); err == nil {
				n.pages = append(n.pages, "http://"+addr)
				if _, port, _ := net.SplitHostPort(e.hostport); port != "0" { // :0 asks for a port of its own
					if n.webTCP == nil {
						n.webTCP = map[string]string{}
					}
					n.webTCP[e.hostport] = addr
				}
			} else {
				n.log.Debug("no web pages: TCP port taken", "addr", udp.LocalAddr(), "err", err)
				tcp = nil
			}
		}
		n.listening = append(n.listening, "moql://"+addr)
	}
	n.servers = append(n.servers, srv)
	go func() { n.serveErr <- srv.Serve(udp, tcp) }()
	return nil
}

// checkOrigin is the browsers' origin check of the ws:// and https://
// listeners: same-origin pages (and clients that send no Origin, which are
// not browsers) unless --allow-origin names more, or "*" for any page.
func (f *netFlags) checkOrigin() func(*http.Request) bool {
	if len(f.allowOrigin) == 0 {
		return nil // server.Server's default: same origin
	}
	allowed := webtransport.AllowOrigins(f.allowOrigin...)
	return func(r *http.Request) bool {
		if allowed(r) {
			return true
		}
		u, err := url.Parse(r.Header.Get("Origin"))
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
}

// serverTLS makes the self-signed certificate all moql:// and https://
// listeners share.
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
	if n.observe != nil {
		fmt.Fprintf(w, "metrics: http://%s/metrics\n", n.observe.addr)
	}
}

// sessionLimits lets a received group hold as many frames as a publisher
// may put in one (--group-frames), so a reader that is a moment behind is
// not handed ErrLagged.
func sessionLimits() session.Limits {
	return session.Limits{Model: broadcast.Limits{GroupMaxFrames: maxGroupFrames}}
}

// maxGroupFrames bounds --group-frames and the frames a received group caches.
const maxGroupFrames = 1 << 16

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

// publishAndKeep is publishAndDial for a live publisher: the session to
// connects[0] is kept on a link that redials it after every loss (the
// peer or relay restarting, the network going away), as a relay's and a
// live sub's links are, until ctx ends or release is called. Its first
// session's failures read as publishAndDial's; connected gets every
// session the link brings, the first included. refused is closed, and
// refusal says why, once the peer closes a session as Unauthorized: the
// link is not redialed then.
func (n *node) publishAndKeep(ctx context.Context, name string, b *broadcast.Consumer, connects []endpoint, w io.Writer,
	connected func(peerSession)) (release func(), refused <-chan struct{}, refusal func() error, err error) {
	if err := n.publish(ctx, name, b); err != nil {
		return nil, nil, nil, err
	}
	e := connects[0]
	var first peerSession
	var l *moq.Link
	if e.kind == kindP2P {
		if first, err = n.connect(ctx, e); err != nil {
			return nil, nil, nil, err
		}
		l = n.keepLink(e, nil) // takes the session just opened as its first
	} else if first, l, err = n.keepOpen(ctx, e); err != nil {
		return nil, nil, nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	refusedc := make(chan struct{})
	var why error // set before refusedc closes
	go func() {
		defer close(done)
		followLink(lctx, l, e, n.log, func(s *moq.Session) {
			ps := &p2pSession{s: s}
			if e.kind != kindP2P {
				ps.name, ps.via = e.String(), first.Via()
			}
			connected(ps)
		}, func(err error) {
			why = fmt.Errorf("%s refused the session: %v", e, err)
			close(refusedc)
		})
	}()
	n.printListening(w)
	n.printTickets(w, name)
	return func() { cancel(); <-done; l.Detach() }, refusedc, func() error { return why }, nil
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
	_, err := n.p2p.m.Publish(ctx, name, b)
	return err
}

// connect opens a session to e, giving up after --timeout.
func (n *node) connect(ctx context.Context, e endpoint) (peerSession, error) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.net.timeout)
	defer cancel()
	var s peerSession
	var err error
	if e.kind == kindP2P {
		s, err = n.p2p.connect(ctx, e)
	} else {
		var c transport.Conn
		var via string
		if c, via, err = n.dialConn(ctx, e); err == nil {
			s, err = n.open(ctx, c, e, via)
		}
	}
	if err != nil {
		return nil, n.connectError(ctx, e, err, started)
	}
	n.log.Debug("connected", "peer", s.Peer(), "via", s.Via())
	return s, nil
}

// connectError is connect's failure as one clear sentence, with what to
// check when nothing answered.
func (n *node) connectError(ctx context.Context, e endpoint, err error, started time.Time) error {
	var ne net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout() // QUIC's handshake idle timeout
	switch {
	case timedOut:
		return fmt.Errorf("connect %s: no answer within %s (%s)", e, waited(started, n.cfg.net.timeout), unreachableHint(e))
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connect %s: connection refused: nothing listens on that TCP port (is moq running with --listen %s?)", e, e)
	}
	return fmt.Errorf("connect %s: %w", e, err)
}

// unreachableHint says what to check when a --connect peer does not answer.
func unreachableHint(e endpoint) string {
	switch e.kind {
	case kindP2P:
		return "is the peer running, at that address, with that peer ID? A firewall may drop UDP"
	case kindWS:
		return "is moq listening there? A firewall may drop the connection"
	default:
		return "is moq listening on that UDP port? A firewall may drop UDP; --timeout waits longer"
	}
}

// waited is how long an attempt bounded by limit waited before it gave up:
// limit, unless a layer below gave up well before it (libp2p's dial does, at
// about 5 s), so that the message does not claim a wait that did not happen.
func waited(started time.Time, limit time.Duration) time.Duration {
	if el := time.Since(started); el < limit-limit/10 {
		return el.Round(100 * time.Millisecond)
	}
	return limit
}

// dialConn dials a moql://, ws(s):// or https:// endpoint, for a session
// this node opens on it; via names the transport.
func (n *node) dialConn(ctx context.Context, e endpoint) (c transport.Conn, via string, err error) {
	if e.kind == kindMoQL {
		c, err = n.dialMoQL(ctx, e)
		via = "raw QUIC (moql)"
	} else {
		c, via, err = n.dialWeb(ctx, e)
	}
	if err != nil && strings.Contains(err.Error(), "x509:") {
		err = fmt.Errorf("%w (pin the server with --fingerprint HEX, the SHA-256 its listener printed as \"fingerprint: HEX\", or skip the check with --insecure)", err)
	}
	return c, via, err
}

func (n *node) dialMoQL(ctx context.Context, e endpoint) (transport.Conn, error) {
	ep, err := n.dialEndpoint(e)
	if err != nil {
		return nil, err
	}
	if e.url == "" {
		return ep.Dial(ctx, e.hostport, n.clientTLS(e))
	}
	c, err := ep.DialURL(ctx, e.url, n.clientTLS(e))
	if err != nil {
		return nil, err
	}
	if v, ok := wire.VersionForALPN(c.Protocol()); (!ok || !v.HasSetupStream()) && !n.warnedNoPath(e) {
		// Only lite-05's SETUP has room for them; the server will see
		// neither the path nor a token, and may refuse the session.
		n.log.Warn("the server chose a moq-lite version older than 05: the URL's path and query are not sent", "peer", e.String(), "protocol", c.Protocol())
	}
	return c, nil
}

func (n *node) warnedNoPath(e endpoint) bool {
	_, warned := n.noPath.LoadOrStore(e.raw, true)
	return warned
}

// open makes a connection this node dialed one of its sessions.
func (n *node) open(ctx context.Context, c transport.Conn, e endpoint, via string) (peerSession, error) {
	s, err := n.p2p.m.OpenWith(ctx, c, moq.OpenOptions{Cost: e.cost})
	if err != nil {
		return nil, err
	}
	return &p2pSession{s: s, name: e.String(), via: via}, nil
}

// dialEndpoint is the socket moql:// dials leave from, on loopback for a
// loopback peer.
func (n *node) dialEndpoint(e endpoint) (*rawquic.Endpoint, error) {
	bind := ":0"
	if host, _, _ := net.SplitHostPort(e.hostport); net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback() {
		bind = net.JoinHostPort(host, "0")
	}
	n.dialMu.Lock()
	defer n.dialMu.Unlock()
	if ep := n.dialEPs[bind]; ep != nil {
		return ep, nil
	}
	ep, err := rawquic.NewEndpoint(bind, n.dialQUICConfig())
	if err != nil {
		return nil, err
	}
	if n.dialEPs == nil {
		n.dialEPs = map[string]*rawquic.Endpoint{}
	}
	n.dialEPs[bind] = ep
	return ep, nil
}

// dialQUICConfig is the QUIC configuration of the sessions this node dials
// over moql:// and https://: the dead-peer bound, and a handshake that waits
// as long as --timeout (quic-go's own default gives up after 5 s).
func (n *node) dialQUICConfig() *quic.Config {
	qc := rawquic.ConfigDeadPeer(n.cfg.net.deadPeer)
	qc.HandshakeIdleTimeout = n.cfg.net.timeout
	return qc
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
	if n.p2p == nil {
		return nil
	}
	return n.p2p.sessions(ctx)
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
	n.observe.close()
	for _, srv := range n.servers {
		_ = srv.Close()
		<-n.serveErr
	}
	if n.p2p != nil {
		n.p2p.close()
	}
	n.dialMu.Lock()
	for _, ep := range n.dialEPs {
		_ = ep.Close()
	}
	n.dialMu.Unlock()
}

// isRefusal reports whether err is the peer closing the session as
// Unauthorized, or a WebSocket server refusing the request (HTTP 401 or
// 403): a refusal of this node's credentials, not a fault.
func isRefusal(err error) bool {
	var ce *transport.ConnError
	var he *websocket.HandshakeError
	return errors.As(err, &ce) && ce.Remote && ce.Code == uint32(broadcast.CodeUnauthorized) ||
		errors.As(err, &he) && he.Refused()
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
