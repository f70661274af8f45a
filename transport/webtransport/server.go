package webtransport

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// Server accepts moq-lite sessions on one UDP socket: WebTransport (ALPN h3)
// and raw QUIC (the moq-lite ALPNs). It is safe for concurrent use.
type Server struct {
	tc        *tls.Config
	qc        *quic.Config
	protocols []string
	handler   http.Handler // for requests other than WebTransport CONNECTs
	check     func(*http.Request) bool
	admit     func(*quic.Conn) error
	log       *slog.Logger
	wt        *webtransport.Server
	queue     *acceptQueue

	ctx    context.Context // done on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // per-connection goroutines

	mu      sync.Mutex
	pc      net.PacketConn // nil until Serve
	tr      *quic.Transport
	ln      *quic.Listener
	serving chan struct{}           // closed when Serve's accept loop returns
	conns   map[*quic.Conn]struct{} // open connections, closed by Close
	closed  bool
}

// quicConnKey finds a request's QUIC connection in its context.
type quicConnKey struct{}

// NewServer makes a server; Serve or ListenAndServe starts it. tc must hold
// the certificate (its NextProtos are replaced by cfg's protocols and h3);
// qc may be nil for QUICConfig(), and datagrams and partial resets are
// switched on in any case, as WebTransport needs them.
func NewServer(tc *tls.Config, qc *quic.Config, cfg Config) *Server {
	s := &Server{
		protocols: cfg.protocols(),
		handler:   cfg.Handler,
		check:     cfg.CheckOrigin,
		admit:     cfg.AdmitConn,
		log:       cfg.Logger,
		conns:     map[*quic.Conn]struct{}{},
	}
	s.qc = withWebTransport(qc)
	if s.handler == nil {
		s.handler = http.NotFoundHandler()
	}
	if s.check == nil {
		s.check = sameOrigin
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.tc = rawquic.LogALPNMismatch(serverTLS(tc, s.protocols), s.log)
	size := cfg.AcceptQueue
	if size <= 0 {
		size = DefaultAcceptQueue
	}
	s.queue = newAcceptQueue(size)
	idle := cfg.IdleTimeout
	switch {
	case idle == 0:
		idle = DefaultIdleTimeout
	case idle < 0:
		idle = 0 // http3: none
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wt = &webtransport.Server{
		H3: &http3.Server{
			Handler: http.HandlerFunc(s.serveHTTP),
			Logger:  s.log,
			// A connection that opens no request would otherwise be kept
			// as long as the client PINGs.
			IdleTimeout: idle,
			ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
				return context.WithValue(ctx, quicConnKey{}, c)
			},
		},
		ApplicationProtocols: s.protocols,
		CheckOrigin:          s.check,
	}
	return s
}

// ListenAndServe binds the UDP address addr and serves on it until Close.
func (s *Server) ListenAndServe(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	return s.Serve(pc)
}

// Serve accepts connections on pc until Close, and returns ErrServerClosed
// then. The server owns pc from the call on: Close closes it, and so does a
// Serve that fails at once (on a closed or already serving server).
func (s *Server) Serve(pc net.PacketConn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = pc.Close()
		return ErrServerClosed
	}
	if s.pc != nil {
		s.mu.Unlock()
		_ = pc.Close()
		return ErrAlreadyServing
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(s.tc, s.qc)
	if err != nil {
		s.mu.Unlock()
		_ = tr.Close()
		_ = pc.Close()
		return err
	}
	s.pc, s.tr, s.ln = pc, tr, ln
	s.serving = make(chan struct{})
	defer close(s.serving)
	s.mu.Unlock()
	s.log.Info("serving moq-lite over WebTransport and raw QUIC", "addr", pc.LocalAddr().String(), "protocols", s.protocols)

	for {
		qconn, err := ln.Accept(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, quic.ErrServerClosed) {
				return ErrServerClosed
			}
			return err
		}
		s.route(qconn)
	}
}

// route hands a new connection to HTTP/3 or queues it as a raw-QUIC session,
// by its ALPN.
func (s *Server) route(qconn *quic.Conn) {
	alpn := qconn.ConnectionState().TLS.NegotiatedProtocol
	h3 := alpn == http3.NextProtoH3
	if !s.track(qconn, h3) {
		_ = qconn.CloseWithError(quic.ApplicationErrorCode(codeCancel), "server closing")
		return
	}
	log := s.log.With("remote", qconn.RemoteAddr().String(), "alpn", alpn)
	if h3 && s.admit != nil {
		if err := s.admit(qconn); err != nil {
			s.wg.Done() // counted by track, not served
			log.Debug("refusing HTTP/3 connection", "error", err)
			_ = qconn.CloseWithError(quic.ApplicationErrorCode(codeBoundsExceeded), err.Error())
			return
		}
	}
	switch {
	case h3:
		log.Debug("serving HTTP/3 connection")
		go func() {
			defer s.wg.Done() // counted by track
			if err := s.wt.ServeQUICConn(qconn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Debug("HTTP/3 connection ended", "error", err)
			}
		}()
	case slices.Contains(s.protocols, alpn):
		if !s.queue.reserve() {
			log.Warn("refusing raw-QUIC session", "error", ErrAcceptQueueFull)
			_ = qconn.CloseWithError(quic.ApplicationErrorCode(codeBoundsExceeded), ErrAcceptQueueFull.Error())
			return
		}
		log.Debug("raw-QUIC session queued")
		s.queue.push(&accepted{conn: rawquic.Wrap(qconn)})
	default: // TLS negotiates only what tc offers
		_ = qconn.CloseWithError(quic.ApplicationErrorCode(codeCancel), "unexpected ALPN")
	}
}

// track records an open connection for Close and, with serve, counts the
// goroutine that will serve it in wg (under the lock, so never after Close
// began waiting); false once closed.
func (s *Server) track(qconn *quic.Conn, serve bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if serve {
		s.wg.Add(1)
	}
	s.conns[qconn] = struct{}{}
	context.AfterFunc(qconn.Context(), func() {
		s.mu.Lock()
		delete(s.conns, qconn)
		s.mu.Unlock()
	})
	return true
}

// Accept waits for the next session, WebTransport or raw QUIC. For
// WebTransport, req is the CONNECT request: its URL path scopes the session,
// its Body is empty and its context ends with the session. For raw QUIC req
// is nil. Sessions that ended while queued are skipped.
func (s *Server) Accept(ctx context.Context) (conn transport.Conn, req *http.Request, err error) {
	for {
		if s.ctx.Err() != nil {
			return nil, nil, ErrServerClosed
		}
		select {
		case a := <-s.queue.items:
			s.queue.release()
			if a.conn.Context().Err() != nil {
				continue
			}
			return a.conn, a.req, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, nil, ErrServerClosed
		}
	}
}

// Addr is the socket's address, or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc == nil {
		return nil
	}
	return s.pc.LocalAddr()
}

// Close stops the server: it closes every connection (including the
// sessions already accepted), waits for the goroutines serving them (and so
// for Config.Handler calls to return) and closes the socket.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	conns := slices.Collect(maps.Keys(s.conns))
	pc, tr, ln, serving := s.pc, s.tr, s.ln, s.serving
	s.mu.Unlock()

	if ln != nil {
		_ = ln.Close()
	}
	// CONNECTION_CLOSE goes out while the socket is still open.
	for _, c := range conns {
		code := quic.ApplicationErrorCode(codeCancel)
		if c.ConnectionState().TLS.NegotiatedProtocol == http3.NextProtoH3 {
			code = quic.ApplicationErrorCode(http3.ErrCodeNoError)
		}
		_ = c.CloseWithError(code, "server closing")
	}
	err := s.wt.Close()
	if tr != nil {
		_ = tr.Close()
	}
	s.wg.Wait()
	if serving != nil {
		<-serving // nothing is queued any more
	}
	s.queue.drain(func(a *accepted) { _ = a.conn.CloseWithError(codeCancel, "server closing") })
	if pc != nil {
		if cerr := pc.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
