package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Close or
// Shutdown.
var ErrServerClosed = errors.New("server: server closed")

// CertificatePath is where a Server publishes the SHA-256 of its certificate
// (hex), the moq-relay convention that lets a browser given an http:// URL
// fetch the hash for WebTransport's serverCertificateHashes.
const CertificatePath = "/certificate.sha256"

// Server accepts clients without a libp2p identity — browsers and Node over
// WebTransport or WebSocket, and raw-QUIC moql:// clients — as ordinary
// sessions of a moq node: they are offered the node's publications, appear
// in the node's IncomingSessions and Sessions, and what they publish is
// read through their moq.Session. They pass the node's admission
// (moq.WithAdmission) like P2P sessions, with an empty peer ID, after
// Route, and share the node's admission slots (moq.WithPendingAdmissions,
// through moq.Admission). WebTransport and raw QUIC share one UDP port;
// WebSocket and plain HTTP use the TCP port of the same number.
//
// The URL path of a WebTransport or WebSocket request scopes its session, as
// moq-relay does: a client connected at /room sees the node's room/clock as
// clock. Raw QUIC carries no URL: a lite-05 client sends its URL's path and
// query in its SETUP (moq-dev's clients, Dialer), which stands in for it.
// Fill the fields, then call ListenAndServe or Serve; the fields must
// not change afterwards.
type Server struct {
	// Moq is the node the sessions belong to. Required.
	Moq *moq.Moq
	// Addr is "host:port" for ListenAndServe: UDP for WebTransport and raw
	// QUIC, TCP for WebSocket. Port 0 picks a free UDP port and the same
	// number on TCP.
	Addr string
	// TLSConfig holds the certificate. Nil means a fresh self-signed
	// development certificate (ECDSA P-256, valid 13 days) that browsers
	// accept through serverCertificateHashes; the TCP side then speaks
	// plain HTTP (ws://), as moq-relay's development mode does. With a
	// TLSConfig the TCP side speaks TLS too (wss://).
	TLSConfig *tls.Config
	// PlainHTTP keeps the TCP side on plain HTTP (ws://) even with a
	// TLSConfig: for a development certificate of the caller's (one
	// fingerprint across listeners or restarts) that browsers accept only
	// through serverCertificateHashes.
	PlainHTTP bool
	// QUICConfig tunes the QUIC listener; nil means webtransport.QUICConfig().
	QUICConfig *quic.Config
	// CheckOrigin decides whether a browser's Origin may connect, over
	// WebTransport and WebSocket alike. Nil allows requests without an
	// Origin and same-origin requests; see webtransport.AllowOrigins.
	CheckOrigin func(r *http.Request) bool
	// Route admits a WebTransport or WebSocket request and names the scope
	// of its session (a broadcast path prefix; "" for everything). An error
	// refuses the session, with its code if it is a *broadcast.Error
	// (Unauthorized otherwise). Nil scopes each session to its URL path.
	// For a raw QUIC client whose lite-05 SETUP carries a path, Route gets
	// a CONNECT request made from it: URL the SETUP's path and query
	// (?jwt= included), Proto the ALPN, RemoteAddr the client's, no
	// headers; a SETUP path that is no request target is refused with
	// Protocol. Other raw
	// QUIC sessions (no path, or lite-04 and older, which have nowhere to
	// carry one) carry no request and see everything. It runs only
	// for clients within their address's bounds (MaxSessionsPerIP,
	// MaxPendingPerIP), so what it records stays bounded per address.
	Route func(r *http.Request) (scope string, err error)
	// Handler serves the plain HTTP requests (a page, say), over TCP and
	// HTTP/3. Nil answers 404, except for CertificatePath.
	Handler http.Handler
	// WebSocket tunes the WebSocket transport (framings, windows). Its
	// CheckOrigin is replaced by the Server's.
	WebSocket websocket.Config
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// MaxSessionsPerIP bounds the sessions one source IP address holds at
	// once, admitted or still in admission; a client over it is refused with
	// BoundsExceeded (HTTP 429 for WebSocket). Zero means
	// DefaultMaxSessionsPerIP, negative no bound. Worst case for one address:
	// that many sessions, each with the per-session bounds of
	// session.Limits (groups, subscriptions, announcements) and its
	// transport's buffers (QUIC's receive windows, WebSocket's). Clients
	// behind one NAT or proxy share an address, so size it for them.
	MaxSessionsPerIP int
	// MaxPendingPerIP bounds the sessions of one source IP address that wait
	// for admission (moq.WithAdmission) at once; over it a client is refused
	// like above, and the wait counts until the session has reached every
	// IncomingSessions iteration. Zero means DefaultMaxPendingPerIP,
	// negative no bound. The node-wide bound (moq.WithPendingAdmissions)
	// applies too: a hostile address holds at most this many of the node's
	// admission slots, one goroutine and one connection each.
	//
	// A QUIC connection that negotiated HTTP/3 and carries no session (it
	// has sent no WebTransport CONNECT yet, or its sessions ended) counts
	// against both bounds as a session waiting for admission: an address
	// holds at most MaxPendingPerIP of them, and one over the bound when
	// its last session ends is closed. A new connection from an address
	// at its bound takes the place of the one there idle longest, which
	// is closed with BoundsExceeded: a client that vanished without
	// closing its connection does not lock its address out until that
	// connection times out.
	//
	// An address is an IPv4 address or an IPv6 /64 (one host usually has a
	// whole /64; link-local addresses count alone).
	MaxPendingPerIP int

	// ReadHeaderTimeout bounds how long a TCP connection may take to send a
	// request's headers, its TLS handshake included (http.Server's field of
	// that name). Zero means DefaultReadHeaderTimeout, negative none.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a TCP connection idle between requests, and an
	// HTTP/3 connection with no request open (a WebTransport session keeps
	// its request open), after this long. Zero means DefaultIdleTimeout,
	// negative none.
	IdleTimeout time.Duration
	// SetupTimeout bounds how long a raw QUIC moq-lite-05 client may take
	// to send its SETUP, which the server reads before the session exists
	// (to route it by its Path); a client still silent is refused with
	// Timeout. Zero or negative means DefaultSetupTimeout.
	SetupTimeout time.Duration

	once    sync.Once
	initErr error
	log     *slog.Logger
	tc      *tls.Config
	hash    string
	wt      *webtransport.Server
	hs      *http.Server
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	// drainCtx ends at Shutdown or Close: it bounds pending admissions,
	// which a draining server would refuse anyway, and the wait for a full
	// IncomingSessions queue.
	drainCtx    context.Context
	drainCancel context.CancelFunc
	wg          sync.WaitGroup
	// registering counts register calls past the draining check; Shutdown
	// waits for them so that no session escapes its GOAWAY.
	registering sync.WaitGroup

	mu       sync.Mutex
	sessions map[*moq.Session]struct{}
	perIP    map[netip.Addr]*ipLoad   // sessions and admissions by source address
	h3conns  map[*quic.Conn]*connLoad // HTTP/3 connections counted in perIP
	tcp      net.Listener
	udp      net.PacketConn
	draining bool // Shutdown began: refuse new sessions
	closed   bool
}

// Defaults of ReadHeaderTimeout, IdleTimeout and SetupTimeout.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultSetupTimeout      = 10 * time.Second
)

// timeout is a duration field's value: def for zero, none (0, as net/http
// and http3 take it) for negative.
func timeout(v, def time.Duration) time.Duration {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (s *Server) init() error {
	s.once.Do(func() {
		if s.Moq == nil {
			s.initErr = errors.New("server: Server.Moq is nil")
			return
		}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.Default()
		}
		s.tc = s.TLSConfig
		if s.tc == nil {
			crt, err := cert.SelfSigned("localhost", "127.0.0.1", "::1")
			if err != nil {
				s.initErr = err
				return
			}
			s.tc = &tls.Config{Certificates: []tls.Certificate{crt}}
		}
		if len(s.tc.Certificates) > 0 {
			s.hash = webtransport.CertificateHash(s.tc.Certificates[0])
		}
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.drainCtx, s.drainCancel = context.WithCancel(s.ctx)
		s.sessions = map[*moq.Session]struct{}{}
		s.perIP = map[netip.Addr]*ipLoad{}
		s.h3conns = map[*quic.Conn]*connLoad{}
		h := http.HandlerFunc(s.serveHTTP)
		idle := timeout(s.IdleTimeout, DefaultIdleTimeout)
		if idle == 0 {
			idle = -1 // webtransport's "none"
		}
		s.wt = webtransport.NewServer(s.tc, s.QUICConfig, webtransport.Config{
			CheckOrigin: s.CheckOrigin,
			Handler:     h,
			Logger:      s.log,
			IdleTimeout: idle,
			AdmitConn:   s.admitConn,
		})
		// A client that never finishes its request (or its TLS handshake,
		// which the header timeout bounds too), or idles between requests,
		// must not hold a connection and a goroutine for ever: nothing
		// else bounds them before a WebSocket upgrade.
		s.hs = &http.Server{Handler: h, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			ReadHeaderTimeout: timeout(s.ReadHeaderTimeout, DefaultReadHeaderTimeout),
			IdleTimeout:       timeout(s.IdleTimeout, DefaultIdleTimeout)}
	})
	return s.initErr
}

// CertificateHash is the hex SHA-256 of the server's certificate, for
// WebTransport's serverCertificateHashes; also served at CertificatePath.
func (s *Server) CertificateHash() string {
	if s.init() != nil {
		return ""
	}
	return s.hash
}

// ListenAndServe listens on Addr (UDP and TCP on one port, see Listen) and
// serves until Close or Shutdown, then returns ErrServerClosed. UDPAddr and
// TCPAddr are nil until it listens; to know when it does, call Listen and
// Serve instead.
func (s *Server) ListenAndServe() error {
	if err := s.init(); err != nil {
		return err
	}
	addr := s.Addr
	if addr == "" {
		addr = ":443"
	}
	udp, tcp, err := Listen(addr)
	if err != nil {
		return err
	}
	return s.Serve(udp, tcp)
}

// Serve serves WebTransport and raw QUIC on udp and WebSocket and HTTP on
// tcp (either may be nil) until Close or Shutdown, then returns
// ErrServerClosed. The server owns both from the call on.
func (s *Server) Serve(udp net.PacketConn, tcp net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed || s.udp != nil || s.tcp != nil {
		closed := s.closed
		s.mu.Unlock()
		closeAll(udp, tcp)
		if closed {
			return ErrServerClosed
		}
		return errors.New("server: Server.Serve called twice")
	}
	s.udp, s.tcp = udp, tcp
	if tcp != nil && s.TLSConfig != nil && !s.PlainHTTP {
		s.tcp = tls.NewListener(tcp, s.tc)
	}
	s.mu.Unlock()

	errc := make(chan error, 2)
	if udp != nil {
		s.wg.Go(func() { errc <- s.wt.Serve(udp) })
		s.wg.Go(s.acceptQUIC)
	}
	if tcp != nil {
		s.wg.Go(func() { errc <- s.hs.Serve(s.tcp) })
	}
	select {
	case err := <-errc:
		if s.ctx.Err() == nil {
			_ = s.Close()
			return err
		}
	case <-s.ctx.Done():
	}
	return ErrServerClosed
}

func closeAll(udp net.PacketConn, tcp net.Listener) {
	if udp != nil {
		_ = udp.Close()
	}
	if tcp != nil {
		_ = tcp.Close()
	}
}

// UDPAddr is the address of the QUIC socket, or nil before Serve.
func (s *Server) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// TCPAddr is the address of the WebSocket listener, or nil before Serve.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// serveHTTP answers plain HTTP (over TCP or HTTP/3) and WebSocket upgrades.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case websocket.IsUpgradeRequest(r):
		s.serveWebSocket(w, r)
	case r.URL.Path == CertificatePath && s.hash != "":
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Access-Control-Allow-Origin", "*") // fetched by pages of any origin
		_, _ = w.Write([]byte(s.hash))
	case s.Handler != nil:
		s.Handler.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	// The address's bounds come before Route, so that an address over them
	// costs Route nothing (a token check, a grant it records).
	ip := ClientAddr(r.RemoteAddr)
	if err := s.reserve(ip, nil); err != nil {
		s.log.Debug("websocket refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	scope, err := s.route(r)
	if err != nil {
		s.release(ip, nil, true)
		code := http.StatusForbidden // a refused path or token: the same request would be refused again
		switch {
		case s.isDraining():
			code = http.StatusServiceUnavailable
		case broadcast.CodeOf(err) == broadcast.CodeBoundsExceeded:
			code = http.StatusTooManyRequests // Route's own bound: try again later
		}
		http.Error(w, err.Error(), code)
		return
	}
	// Waiting for an admission slot before the upgrade leaves the client
	// waiting for its answer: back-pressure rather than a refusal.
	slot, err := s.Moq.Admission(s.drainCtx)
	if err != nil {
		s.release(ip, nil, true)
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	cfg := s.WebSocket
	cfg.CheckOrigin = s.CheckOrigin
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	c, err := websocket.Accept(w, r, &cfg)
	if err != nil {
		slot.Release()
		s.release(ip, nil, true)
		s.log.Debug("websocket refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.register(slot, c, scope, ip, nil, nil)
}

// acceptQUIC registers the WebTransport and raw QUIC sessions. It waits
// for a node-wide admission slot before it accepts the next connection, so
// a flood waits in the QUIC listener's bounded queue, not in goroutines.
func (s *Server) acceptQUIC() {
	for {
		c, req, err := s.wt.Accept(s.ctx)
		if err != nil {
			return
		}
		ip := ClientAddr(c.RemoteAddr().String())
		cl := s.connLoad(c)
		// Before Route, as for WebSocket.
		if err := s.reserve(ip, cl); err != nil {
			code, reason := refusal(err)
			s.log.Debug("session refused", "remote", c.RemoteAddr(), "err", err)
			_ = c.CloseWithError(uint32(code), reason)
			continue
		}
		scope := ""
		if req != nil {
			if scope, err = s.route(req); err != nil {
				s.release(ip, cl, true)
				code, reason := refusal(err)
				_ = c.CloseWithError(uint32(code), reason)
				continue
			}
		}
		slot, err := s.Moq.Admission(s.drainCtx)
		if err != nil {
			s.release(ip, cl, true)
			_ = c.CloseWithError(uint32(broadcast.CodeCancel), "server shutting down")
			continue
		}
		if req == nil && hasSetupStream(c) {
			s.wg.Go(func() { s.registerRaw(slot, c, ip, cl) })
			continue
		}
		s.wg.Go(func() { s.register(slot, c, scope, ip, cl, nil) })
	}
}

func hasSetupStream(c transport.Conn) bool {
	v, ok := wire.VersionForALPN(c.Protocol())
	return ok && v.HasSetupStream()
}

// registerRaw reads a raw QUIC lite-05 client's SETUP and routes the
// session by its path, as a URL routes the other transports' sessions,
// then registers it with that SETUP, which the session takes as read.
// Without a path the session is unscoped and skips Route, as on the
// versions that cannot carry one.
func (s *Server) registerRaw(slot *moq.Admission, c transport.Conn, ip netip.Addr, cl *connLoad) {
	refuse := func(err error) {
		slot.Release()
		s.release(ip, cl, true)
		code, reason := refusal(err)
		if s.drainCtx.Err() != nil {
			code, reason = broadcast.CodeCancel, "server shutting down"
		}
		s.log.Debug("session refused", "remote", c.RemoteAddr(), "err", err)
		_ = c.CloseWithError(uint32(code), reason)
	}
	wait := s.SetupTimeout
	if wait <= 0 {
		wait = DefaultSetupTimeout
	}
	ctx, cancel := context.WithTimeoutCause(s.drainCtx, wait,
		&broadcast.Error{Code: broadcast.CodeTimeout, Reason: "no SETUP"})
	m, err := session.AcceptSetup(ctx, c, session.Limits{})
	cancel()
	if err != nil {
		refuse(err)
		return
	}
	scope := ""
	if m.HasPath && m.Path != "" {
		req, err := setupRequest(c, m.Path)
		if err == nil {
			scope, err = s.route(req)
		}
		if err != nil {
			refuse(err)
			return
		}
	}
	s.register(slot, c, scope, ip, cl, m)
}

// setupRequest is the request Route sees for a raw QUIC session whose
// SETUP carries target (a path, and maybe "?" and a query).
func setupRequest(c transport.Conn, target string) (*http.Request, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return nil, &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "SETUP path is not a request target"}
	}
	return &http.Request{
		Method:     http.MethodConnect,
		URL:        u,
		RequestURI: target,
		Proto:      c.Protocol(),
		Header:     http.Header{},
		RemoteAddr: c.RemoteAddr().String(),
	}, nil
}

// route admits a request and returns its session's scope.
func (s *Server) route(r *http.Request) (string, error) {
	if s.isDraining() {
		return "", &broadcast.Error{Code: broadcast.CodeCancel, Reason: "server shutting down"}
	}
	if s.Route == nil {
		return broadcast.CleanPath(r.URL.Path), nil
	}
	return s.Route(r)
}

// refusal is the close code and reason for an admission or route error: a
// *broadcast.Error's own (the code travels on its own), else Unauthorized
// with the error's text.
func refusal(err error) (broadcast.Code, string) {
	var e *broadcast.Error
	if errors.As(err, &e) {
		return e.Code, e.Reason
	}
	return broadcast.CodeUnauthorized, err.Error()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining || s.closed
}

// Defaults of the Server's per-address bounds.
const (
	DefaultMaxSessionsPerIP = 32
	DefaultMaxPendingPerIP  = 4
)

// Errors refusing a client over a per-address bound; the code travels to
// the client as the close code.
var (
	ErrTooManySessions = &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many sessions from this address"}
	ErrTooManyPending  = moq.ErrTooManyPending
)

// ipLoad is what one source address holds: sessions (admitted or not),
// those waiting for admission, and HTTP/3 connections carrying no session,
// which count as both.
type ipLoad struct{ sessions, pending, idle int }

// connLoad is an HTTP/3 connection's share of its address's ipLoad.
type connLoad struct {
	conn      *quic.Conn
	ip        netip.Addr
	sessions  int       // reserved by sessions it carries; idle while 0
	idleSince time.Time // when sessions last fell to 0 (or it was admitted)
	closed    bool      // the connection ended (or was evicted): no longer counted
}

func bound(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return int(^uint(0) >> 1)
	}
	return v
}

// ClientAddr is the address a client at hostport ("host:port", as
// http.Request.RemoteAddr) is bounded by (MaxSessionsPerIP and the like): its
// IPv4 address or, for IPv6, its /64, as one host (or one home's router) is
// usually handed a whole /64 and picks addresses in it at will. Link-local
// addresses stay whole: a link's /64 is every neighbour's. An address
// without an IP is the zero Addr, which then counts as one. A handler that
// keeps per-client state of its own (a relay's token grants, say) can
// count by the same key.
func ClientAddr(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if a.Is6() && !a.IsLinkLocalUnicast() {
		a = netip.PrefixFrom(a.WithZone(""), 64).Masked().Addr()
	}
	return a
}

// admitConn counts a new HTTP/3 connection of its address as a session
// waiting for admission until it carries one, or refuses it. An address at
// its bound only because of HTTP/3 connections carrying no session has the
// one idle longest closed to make room: a client that went away without
// closing its connection (a crash, a lost network) would otherwise lock
// its address out until that connection timed out, while a newcomer is
// likelier to be in use. The bound holds all the same.
func (s *Server) admitConn(c *quic.Conn) error {
	ip := ClientAddr(c.RemoteAddr().String())
	var evicted *quic.Conn
	defer func() {
		if evicted != nil {
			_ = evicted.CloseWithError(quic.ApplicationErrorCode(broadcast.CodeBoundsExceeded), errReplaced)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining || s.closed {
		return ErrServerClosed
	}
	l := s.load(ip)
	if err := s.over(l, 0); err != nil {
		old := s.idlest(ip)
		if old == nil || s.over(l, 1) != nil {
			s.tidy(ip, l)
			return err
		}
		s.forget(old)
		evicted = old.conn
	}
	l.idle++
	cl := &connLoad{conn: c, ip: ip, idleSince: time.Now()}
	s.h3conns[c] = cl
	context.AfterFunc(c.Context(), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.forget(cl)
	})
	return nil
}

// errReplaced is the reason an idle HTTP/3 connection is closed with when a
// newer one from its address takes its place (admitConn).
const errReplaced = "server: idle connection replaced by a newer one from this address"

// idlest is ip's HTTP/3 connection that has carried no session for the
// longest, or nil. The caller holds mu. It scans every HTTP/3 connection,
// but only for an address at its bound.
func (s *Server) idlest(ip netip.Addr) *connLoad {
	var old *connLoad
	for _, cl := range s.h3conns {
		if cl.ip == ip && cl.sessions == 0 && !cl.closed && (old == nil || cl.idleSince.Before(old.idleSince)) {
			old = cl
		}
	}
	return old
}

// forget stops counting an HTTP/3 connection, once: it ended, or admitConn
// evicted it. The caller holds mu.
func (s *Server) forget(cl *connLoad) {
	if cl.closed {
		return
	}
	cl.closed = true
	delete(s.h3conns, cl.conn)
	if cl.sessions == 0 {
		l := s.load(cl.ip)
		l.idle--
		s.tidy(cl.ip, l)
	}
}

// connLoad is the count of the HTTP/3 connection carrying c, or nil (raw
// QUIC, WebSocket, a connection already gone).
func (s *Server) connLoad(c transport.Conn) *connLoad {
	wc, ok := c.(*webtransport.Conn)
	if !ok || wc.QUICConn() == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h3conns[wc.QUICConn()]
}

// load is ip's entry, made if missing; the caller holds mu and calls tidy
// once done with it.
func (s *Server) load(ip netip.Addr) *ipLoad {
	l := s.perIP[ip]
	if l == nil {
		l = &ipLoad{}
		s.perIP[ip] = l
	}
	return l
}

// tidy forgets ip's entry once it holds nothing.
func (s *Server) tidy(ip netip.Addr, l *ipLoad) {
	if l.sessions <= 0 && l.idle <= 0 {
		delete(s.perIP, ip)
	}
}

// over is the refusal for one more session or connection of l, whose count
// includes freed idle connections that are being taken over.
func (s *Server) over(l *ipLoad, freed int) error {
	idle := l.idle - freed
	switch {
	case l.sessions+idle >= bound(s.MaxSessionsPerIP, DefaultMaxSessionsPerIP):
		return ErrTooManySessions
	case l.pending+idle >= bound(s.MaxPendingPerIP, DefaultMaxPendingPerIP):
		return ErrTooManyPending
	}
	return nil
}

// reserve counts a new session and admission of ip, or refuses it. cl is
// the HTTP/3 connection carrying the session, if any: if it was idle, its
// count passes to the session.
func (s *Server) reserve(ip netip.Addr, cl *connLoad) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.load(ip)
	freed := 0
	if cl != nil && !cl.closed && cl.sessions == 0 {
		freed = 1
	}
	if err := s.over(l, freed); err != nil {
		s.tidy(ip, l)
		return err
	}
	l.idle -= freed
	if cl != nil {
		cl.sessions++
	}
	l.sessions++
	l.pending++
	return nil
}

// admissionDone uncounts ip's admission; release(ip, cl, true) uncounts a
// session that never got past it, release(ip, cl, false) one that ended.
func (s *Server) admissionDone(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.perIP[ip]; l != nil {
		l.pending--
	}
}

func (s *Server) release(ip netip.Addr, cl *connLoad, pending bool) {
	s.mu.Lock()
	l := s.perIP[ip]
	if l == nil {
		s.mu.Unlock()
		return
	}
	if pending {
		l.pending--
	}
	l.sessions--
	var drop *quic.Conn
	if cl != nil && !cl.closed {
		if cl.sessions--; cl.sessions == 0 {
			// Idle again: counted as a waiting session, or closed if
			// the address has no room for one.
			if s.over(l, 0) != nil {
				drop = cl.conn
			}
			l.idle++ // until the close is seen
			cl.idleSince = time.Now()
		}
	}
	s.tidy(ip, l)
	s.mu.Unlock()
	if drop != nil {
		_ = drop.CloseWithError(quic.ApplicationErrorCode(broadcast.CodeBoundsExceeded), ErrTooManyPending.Reason)
	}
}

// register admits c, makes it a session of the node and tracks it for
// Shutdown. The caller holds slot and ip's reservation; peerSetup is the
// client's SETUP if registerRaw read it. The slot is held
// until the session has reached every IncomingSessions iteration (as for
// P2P sessions), so an iteration that stopped reading pauses accepting
// once the node's slots are taken, rather than parking a goroutine and a
// connection per client.
func (s *Server) register(slot *moq.Admission, c transport.Conn, scope string, ip netip.Addr, cl *connLoad, peerSetup *wire.Setup) {
	s.mu.Lock()
	if s.draining || s.closed {
		s.mu.Unlock()
		slot.Release()
		s.release(ip, cl, true)
		_ = c.CloseWithError(uint32(broadcast.CodeCancel), "server shutting down")
		return
	}
	s.registering.Add(1) // Shutdown waits for this one before it looks
	s.mu.Unlock()
	defer s.registering.Done()

	// Admission and the hand-over to the iterations end with the server's
	// draining (the node's shutdown ends them too), so that neither holds
	// Shutdown up.
	ms, err := slot.AcceptWith(s.drainCtx, c, moq.AcceptOptions{Scope: scope, PeerSetup: peerSetup})
	if err != nil {
		s.release(ip, cl, true)
		s.log.Debug("session not accepted", "remote", c.RemoteAddr(), "err", err)
		return
	}
	s.admissionDone(ip)
	s.mu.Lock()
	// A session registered while Shutdown drains is still tracked: Shutdown
	// waits for this call before it looks, and then tells it to go away as
	// it tells the others (closing it here would skip the GOAWAY).
	if s.closed {
		s.mu.Unlock()
		_ = ms.Close(broadcast.CodeCancel, "server shutting down")
		s.release(ip, cl, false)
		return
	}
	s.sessions[ms] = struct{}{}
	s.mu.Unlock()
	// A callback at the session's end, not a goroutine parked per session.
	context.AfterFunc(ms.Context(), func() {
		s.mu.Lock()
		delete(s.sessions, ms)
		s.mu.Unlock()
		s.release(ip, cl, false)
	})
	s.log.Debug("session accepted", "remote", c.RemoteAddr(), "protocol", c.Protocol(), "scope", scope)
}

// Close stops the server at once: listeners, pending admissions, and every
// session it accepted.
func (s *Server) Close() error {
	if s.init() != nil {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sessions := s.sessions
	s.sessions = map[*moq.Session]struct{}{}
	s.mu.Unlock()
	s.cancel()
	for as := range sessions {
		_ = as.Close(broadcast.CodeCancel, "server closed")
	}
	_ = s.hs.Close()
	_ = s.wt.Close()
	s.mu.Lock()
	tcp := s.tcp
	s.mu.Unlock()
	if tcp != nil {
		_ = tcp.Close()
	}
	s.wg.Wait()
	return nil
}

// Shutdown stops taking sessions and ends pending admissions; it sends
// GOAWAY to every session that speaks lite-04 or later and waits for those clients to
// leave. Sessions on versions without GOAWAY (lite-03, the compat SETUP's
// lite-01/02, or one whose SETUP has not finished) have nothing to be told,
// so they are closed at once with code 0. When ctx ends first it closes what
// is left (Close) and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.init() != nil {
		return nil
	}
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.drainCancel()
	registered := make(chan struct{})
	go func() { // ends once admissions, which drainCtx ended, return
		s.registering.Wait()
		close(registered)
	}()
	select {
	case <-registered:
	case <-ctx.Done():
		_ = s.Close()
		return ctx.Err()
	}
	s.mu.Lock()
	live := make([]*moq.Session, 0, len(s.sessions))
	for as := range s.sessions {
		live = append(live, as)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, as := range live {
		if !speaksGoaway(as) {
			wg.Go(func() { _ = as.Close(broadcast.CodeCancel, "server shutting down") })
			continue
		}
		wg.Go(func() {
			if err := as.Goaway(ctx, ""); err != nil {
				s.log.Debug("no GOAWAY sent", "version", as.Version(), "err", err)
				_ = as.Close(broadcast.CodeCancel, "server shutting down")
			}
		})
	}
	wg.Wait()
	for _, as := range live {
		select {
		case <-as.Closed():
		case <-ctx.Done():
		}
	}
	_ = s.Close()
	return ctx.Err()
}

// speaksGoaway reports whether a session's version has GOAWAY (lite-04 on).
func speaksGoaway(as *moq.Session) bool {
	v := as.Version()
	return v != "" && !slices.Contains(noGoaway, v)
}

// noGoaway are the versions before GOAWAY existed.
var noGoaway = []string{"moq-lite-01", "moq-lite-02", "moq-lite-03"}
