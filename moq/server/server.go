package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/moq"
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
// clock. Fill the fields, then call ListenAndServe or Serve; the fields must
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
	// Raw QUIC sessions carry no request and see everything.
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
	MaxPendingPerIP int

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
	perIP    map[netip.Addr]*ipLoad // sessions and admissions by source address
	tcp      net.Listener
	udp      net.PacketConn
	draining bool // Shutdown began: refuse new sessions
	closed   bool
}

// Bounds of the HTTP side (WebSocket upgrades, pages): how long a
// connection may take to deliver a request's headers (its TLS handshake
// included), and how long it may idle between requests.
const (
	httpHeaderTimeout = 10 * time.Second
	httpIdleTimeout   = 2 * time.Minute
)

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
		h := http.HandlerFunc(s.serveHTTP)
		s.wt = webtransport.NewServer(s.tc, s.QUICConfig, webtransport.Config{
			CheckOrigin: s.CheckOrigin,
			Handler:     h,
			Logger:      s.log,
		})
		// A client that never finishes its request (or its TLS handshake,
		// which the header timeout bounds too), or idles between requests,
		// must not hold a connection and a goroutine for ever: nothing
		// else bounds them before a WebSocket upgrade.
		s.hs = &http.Server{Handler: h, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			ReadHeaderTimeout: httpHeaderTimeout, IdleTimeout: httpIdleTimeout}
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
	scope, err := s.route(r)
	if err != nil {
		code := http.StatusForbidden
		if s.isDraining() {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
		return
	}
	ip := remoteIP(r.RemoteAddr)
	if err := s.reserve(ip); err != nil {
		s.log.Debug("websocket refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	// Waiting for an admission slot before the upgrade leaves the client
	// waiting for its answer: back-pressure rather than a refusal.
	slot, err := s.Moq.Admission(s.drainCtx)
	if err != nil {
		s.release(ip, true)
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
		s.release(ip, true)
		s.log.Debug("websocket refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.register(slot, c, scope, ip)
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
		scope := ""
		if req != nil {
			if scope, err = s.route(req); err != nil {
				code, reason := refusal(err)
				_ = c.CloseWithError(uint32(code), reason)
				continue
			}
		}
		ip := remoteIP(c.RemoteAddr().String())
		if err := s.reserve(ip); err != nil {
			code, reason := refusal(err)
			s.log.Debug("session refused", "remote", c.RemoteAddr(), "err", err)
			_ = c.CloseWithError(uint32(code), reason)
			continue
		}
		slot, err := s.Moq.Admission(s.drainCtx)
		if err != nil {
			s.release(ip, true)
			_ = c.CloseWithError(uint32(broadcast.CodeCancel), "server shutting down")
			continue
		}
		s.wg.Go(func() { s.register(slot, c, scope, ip) })
	}
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

// ipLoad is what one source address holds.
type ipLoad struct{ sessions, pending int }

func bound(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return int(^uint(0) >> 1)
	}
	return v
}

// remoteIP is the IP of a "host:port" address (the zero Addr if it has none,
// which then counts as one address).
func remoteIP(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// reserve counts a new session and admission of ip, or refuses it.
func (s *Server) reserve(ip netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.perIP[ip]
	if l == nil {
		l = &ipLoad{}
	}
	switch {
	case l.sessions >= bound(s.MaxSessionsPerIP, DefaultMaxSessionsPerIP):
		return ErrTooManySessions
	case l.pending >= bound(s.MaxPendingPerIP, DefaultMaxPendingPerIP):
		return ErrTooManyPending
	}
	l.sessions++
	l.pending++
	s.perIP[ip] = l
	return nil
}

// admissionDone uncounts ip's admission; release(ip, true) uncounts a
// session that never got past it, release(ip, false) one that ended.
func (s *Server) admissionDone(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.perIP[ip]; l != nil {
		l.pending--
	}
}

func (s *Server) release(ip netip.Addr, pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.perIP[ip]
	if l == nil {
		return
	}
	if pending {
		l.pending--
	}
	if l.sessions--; l.sessions <= 0 {
		delete(s.perIP, ip)
	}
}

// register admits c, makes it a session of the node and tracks it for
// Shutdown. The caller holds slot and ip's reservation. The slot is held
// until the session has reached every IncomingSessions iteration (as for
// P2P sessions), so an iteration that stopped reading pauses accepting
// once the node's slots are taken, rather than parking a goroutine and a
// connection per client.
func (s *Server) register(slot *moq.Admission, c transport.Conn, scope string, ip netip.Addr) {
	s.mu.Lock()
	if s.draining || s.closed {
		s.mu.Unlock()
		slot.Release()
		s.release(ip, true)
		_ = c.CloseWithError(uint32(broadcast.CodeCancel), "server shutting down")
		return
	}
	s.registering.Add(1) // Shutdown waits for this one before it looks
	s.mu.Unlock()
	defer s.registering.Done()

	// Admission and the hand-over to the iterations end with the server's
	// draining (the node's shutdown ends them too), so that neither holds
	// Shutdown up.
	ms, err := slot.Accept(s.drainCtx, c, scope)
	if err != nil {
		s.release(ip, true)
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
		s.release(ip, false)
		return
	}
	s.sessions[ms] = struct{}{}
	s.mu.Unlock()
	// A callback at the session's end, not a goroutine parked per session.
	context.AfterFunc(ms.Context(), func() {
		s.mu.Lock()
		delete(s.sessions, ms)
		s.mu.Unlock()
		s.release(ip, false)
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
