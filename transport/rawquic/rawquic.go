// Package rawquic runs moq-lite directly on QUIC (the `moql://` URL scheme):
// the TLS ALPN selects the moq-lite version, with no HTTP/3 in between.
//
// Where to start: a client calls Dial with the server's "host:port" (or
// DialURL with a moql:// URL, whose path and query then ride the lite-05
// SETUP) and a tls.Config that verifies it (cert.PinnedConfig for a
// development certificate); a server calls Listen and takes connections with
// Endpoint.Accept. Either way the transport.Conn goes to session.New. An
// Endpoint (NewEndpoint, NewEndpointConn) dials and accepts on one socket;
// Wrap adapts a quic.Conn made elsewhere.
package rawquic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"

	"github.com/moqp2p/moqp2p/internal/keepalive"
	"github.com/moqp2p/moqp2p/internal/quicstats"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// ALPNs are the protocols offered, most preferred first: moq-lite-05, as
// moq-net and @moq/net prefer it (lite-05 has no SUBSCRIBE_OK; between
// moqp2p nodes a publisher's eager SUBSCRIBE_START stands in for it, see
// the session package). A listener takes the client's preference among
// them (ClientPreference), as moq-dev's servers do. "moql" (the version by
// compat SETUP) comes last: moq-dev clients that offer only it still get
// a session. A session on a moql connection needs session.Config.Client
// on the dialing side.
var ALPNs = []string{wire.ALPNLite05, wire.ALPNLite04, wire.ALPNLite03, wire.ALPNCompat}

// Config returns the QUIC settings moq-lite needs: moq-lite opens one
// unidirectional stream per group, so the peer must be granted more
// concurrent uni streams than quic-go's default of 100, or group delivery
// stalls on stream credit a round trip at a time. The credit also bounds the
// buffers a peer can make us hold, so it is not unlimited. A peer silent for
// DefaultDeadPeerTimeout is given up (see ConfigDeadPeer).
func Config() *quic.Config { return ConfigDeadPeer(0) }

// DefaultDeadPeerTimeout is how long a QUIC peer may stay silent before its
// connection is given up, unless configured otherwise.
const DefaultDeadPeerTimeout = keepalive.DefaultTimeout

// ConfigDeadPeer is Config with a connection given up once nothing has been
// heard from the peer for d (0: DefaultDeadPeerTimeout; negative: quic-go's
// 30 s idle timeout, with keep-alives every 10 s). QUIC's idle timeout does
// the detection: it is the smaller of both ends' values (and never below
// three probe timeouts, so a lossy or slow path stretches it), and each end
// sends a PING after a quarter of d without traffic, so an idle but live
// connection is not mistaken for a dead one. quic-go counts the idle time
// from the first packet sent after the last one received, up to one
// keep-alive period later, so the idle timeout is three quarters of d. The cost on an idle
// connection is a PING and its ACK per period each way (measured by
// BenchmarkIdleKeepAlive).
func ConfigDeadPeer(d time.Duration) *quic.Config {
	idle, keep := 30*time.Second, 10*time.Second
	if d = keepalive.Resolve(d); d > 0 {
		idle, keep = d-d/4, d/4
	}
	return &quic.Config{
		MaxIncomingStreams:    1000,
		MaxIncomingUniStreams: 1000,
		MaxIdleTimeout:        idle,
		KeepAlivePeriod:       keep,
		EnableDatagrams:       true, // moq-lite-05 may send single-frame groups as datagrams
		// qlog, opt-in: with the QLOGDIR environment variable set, every
		// connection writes <odcid>_<client|server>.sqlog there (quic-go's
		// qlog package; the libp2p host's QUIC transport does the same).
		Tracer: qlog.DefaultConnectionTracer,
	}
}

// withALPN returns a copy of tc offering the moq-lite ALPNs if it names none.
// A nil tc is an empty config: the system's roots verify the peer.
func withALPN(tc *tls.Config) *tls.Config {
	if tc == nil {
		tc = &tls.Config{}
	} else {
		tc = tc.Clone()
	}
	if len(tc.NextProtos) == 0 {
		tc.NextProtos = slices.Clone(ALPNs)
	}
	return tc
}

// Endpoint is one UDP socket that accepts and dials moq-lite connections.
// Dialing from the listening socket keeps one NAT binding for both
// directions, and Close tears down the socket and every connection at once
// (a connection closed on its own lingers a few round trips, as QUIC wants).
type Endpoint struct {
	tr *quic.Transport
	pc net.PacketConn // the socket: quic.Transport.Close leaves it open
	ln *quic.Listener // nil if not listening
	qc *quic.Config
}

// NewEndpoint binds a UDP socket for dialing (and, with Listen, accepting).
// qc may be nil for Config().
func NewEndpoint(addr string, qc *quic.Config) (*Endpoint, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	uc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	return NewEndpointConn(uc, qc), nil
}

// NewEndpointConn makes an endpoint on a socket the caller opened, such as a
// shaped or shared one. The endpoint owns it from then on.
func NewEndpointConn(pc net.PacketConn, qc *quic.Config) *Endpoint {
	if qc == nil {
		qc = Config()
	}
	return &Endpoint{tr: &quic.Transport{Conn: pc}, pc: pc, qc: qc}
}

// Listen binds addr and accepts moq-lite connections on it. tc must hold the
// server certificate; qc may be nil for Config().
func Listen(addr string, tc *tls.Config, qc *quic.Config) (*Endpoint, error) {
	e, err := NewEndpoint(addr, qc)
	if err != nil {
		return nil, err
	}
	if err := e.Listen(tc); err != nil {
		_ = e.Close()
		return nil, err
	}
	return e, nil
}

// Listen starts accepting connections on the endpoint's socket.
func (e *Endpoint) Listen(tc *tls.Config) error {
	if e.ln != nil {
		return errors.New("rawquic: endpoint already listening")
	}
	ln, err := e.tr.Listen(LogALPNMismatch(ClientPreference(withALPN(tc)), slog.Default()), e.qc)
	if err != nil {
		return err
	}
	e.ln = ln
	return nil
}

// Accept waits for the next connection.
func (e *Endpoint) Accept(ctx context.Context) (transport.Conn, error) {
	if e.ln == nil {
		return nil, errors.New("rawquic: endpoint is not listening")
	}
	c, err := e.ln.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Dial connects to addr from this endpoint's socket. tc decides how the
// server is verified (see cert.PinnedConfig; nil: the system's roots).
func (e *Endpoint) Dial(ctx context.Context, addr string, tc *tls.Config) (transport.Conn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	tc = withALPN(tc)
	if tc.ServerName == "" {
		// quic.Transport.Dial has only the resolved address: verify the
		// name the caller dialed, as DialAddr does.
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	c, err := e.tr.Dial(ctx, ua, tc, e.qc)
	if err != nil {
		return nil, explainDial(err, tc.NextProtos)
	}
	return Wrap(c), nil
}

// Addr is the socket's address.
func (e *Endpoint) Addr() net.Addr { return e.tr.Conn.LocalAddr() }

// Close closes every connection of the endpoint and its socket.
func (e *Endpoint) Close() error {
	err := e.tr.Close()
	if cerr := e.pc.Close(); err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}

// Dial connects to addr from a socket of its own, which closes some round
// trips after the connection does. tc decides how the server is verified
// (nil: the system's roots); qc may be nil for Config().
func Dial(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (transport.Conn, error) {
	if qc == nil {
		qc = Config()
	}
	tc = withALPN(tc)
	c, err := quic.DialAddr(ctx, addr, tc, qc)
	if err != nil {
		return nil, explainDial(err, tc.NextProtos)
	}
	return Wrap(c), nil
}

// DialURL is Dial for a moql:// URL: it dials the URL's host:port, and the
// connection carries the URL's request target (see RequestTarget), which a
// moq-lite-05 client session sends in its SETUP: raw QUIC has no request
// URI of its own, so without it the server would see neither the path nor
// a ?jwt= token.
func DialURL(ctx context.Context, rawURL string, tc *tls.Config, qc *quic.Config) (transport.Conn, error) {
	return dialURL(rawURL, func(addr string) (transport.Conn, error) { return Dial(ctx, addr, tc, qc) })
}

// DialURL is Dial for a moql:// URL, as the package's DialURL, from this
// endpoint's socket.
func (e *Endpoint) DialURL(ctx context.Context, rawURL string, tc *tls.Config) (transport.Conn, error) {
	return dialURL(rawURL, func(addr string) (transport.Conn, error) { return e.Dial(ctx, addr, tc) })
}

func dialURL(rawURL string, dial func(addr string) (transport.Conn, error)) (transport.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rawquic: %w", err)
	}
	if !strings.EqualFold(u.Scheme, "moql") || u.Host == "" {
		return nil, fmt.Errorf("rawquic: %q is not a moql://host:port URL", rawURL)
	}
	c, err := dial(u.Host)
	if err != nil {
		return nil, err
	}
	c.(*conn).target = RequestTarget(u)
	return c, nil
}

// RequestTarget is what a moql:// URL asks of its server: the path, and
// "?" and the query if there is one, as moq-dev's clients send it
// (rs/moq-native/src/client.rs); "" (no path, no query) means the server's
// default. The fragment is the client's own.
func RequestTarget(u *url.URL) string {
	t := u.EscapedPath()
	if u.RawQuery != "" {
		t += "?" + u.RawQuery
	}
	return t
}

// Wrap adapts an established QUIC connection.
func Wrap(c *quic.Conn) transport.Conn { return WrapFunc(c, nil) }

// WrapFunc is Wrap with closed called once c has closed, before the
// connection's Context ends and its OnClose hooks run: a transport built
// on rawquic keeps its bookkeeping for the connection there instead of in
// a context.AfterFunc of its own. closed must not block.
func WrapFunc(c *quic.Conn, closed func()) transport.Conn {
	wc := &conn{c: c, closed: closed}
	// One hook on quic-go's context does all a closed connection needs:
	// the Context (if anyone asked for it) and the OnClose hooks get the
	// close cause in transport's terms.
	context.AfterFunc(c.Context(), wc.end)
	return wc
}

type conn struct {
	c      *quic.Conn
	closed func() // WrapFunc's
	target string // DialURL's request target

	mu     sync.Mutex
	done   bool            // c has closed: cause is set
	cause  error           // c's close cause in transport's terms
	ctx    context.Context // made by Context when first asked
	cancel context.CancelCauseFunc
	hooks  []func(error) // OnClose's, until c closes
}

// end runs once quic-go's context for the connection has ended.
func (c *conn) end() {
	if c.closed != nil {
		c.closed()
	}
	cause := convert(context.Cause(c.c.Context()))
	c.mu.Lock()
	c.done, c.cause = true, cause
	cancel, hooks := c.cancel, c.hooks
	c.hooks = nil
	c.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
	// Each hook on a goroutine of its own, as AfterFunc's would be: the
	// last one on this one.
	for i, f := range hooks {
		if i < len(hooks)-1 {
			go f(cause)
		} else {
			f(cause)
		}
	}
}

// Context implements transport.Conn: it is made when first asked for (a
// session watches the connection through OnClose and never asks), and its
// cause is the close cause in transport's terms.
func (c *conn) Context() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancelCause(context.Background())
		if c.done {
			c.cancel(c.cause)
		}
	}
	return c.ctx
}

// OnClose implements transport.CloseHooker.
func (c *conn) OnClose(f func(cause error)) {
	c.mu.Lock()
	if c.done {
		cause := c.cause
		c.mu.Unlock()
		go f(cause)
		return
	}
	c.hooks = append(c.hooks, f)
	c.mu.Unlock()
}

// RequestTarget is the request target DialURL dialed for ("" otherwise);
// the session finds it through this method.
func (c *conn) RequestTarget() string { return c.target }

// DatagramsSupported implements transport.DatagramConn.
func (c *conn) DatagramsSupported() bool { return c.c.ConnectionState().SupportsDatagrams.Remote }

// SendDatagram implements transport.DatagramConn.
func (c *conn) SendDatagram(p []byte) error { return convert(c.c.SendDatagram(p)) }

// ReceiveDatagram implements transport.DatagramConn.
func (c *conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	p, err := c.c.ReceiveDatagram(ctx)
	if err != nil {
		return nil, convert(err)
	}
	return p, nil
}

func (c *conn) OpenStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, convert(err)
	}
	return (*stream)(s), nil
}

func (c *conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.c.AcceptStream(ctx)
	if err != nil {
		return nil, convert(err)
	}
	return (*stream)(s), nil
}

func (c *conn) OpenUniStream(ctx context.Context) (transport.SendStream, error) {
	s, err := c.c.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, convert(err)
	}
	return (*sendStream)(s), nil
}

func (c *conn) AcceptUniStream(ctx context.Context) (transport.ReceiveStream, error) {
	s, err := c.c.AcceptUniStream(ctx)
	if err != nil {
		return nil, convert(err)
	}
	return (*receiveStream)(s), nil
}

// doneCtx is an ended context: quic-go's AcceptUniStream given it returns a
// stream that is ready and fails at once otherwise.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// TryAcceptUniStream returns the peer's next uni stream if it is already
// there, without waiting.
func (c *conn) TryAcceptUniStream() (transport.ReceiveStream, bool) {
	s, err := c.c.AcceptUniStream(doneCtx)
	if err != nil {
		return nil, false
	}
	return (*receiveStream)(s), true
}

// CloseWithError closes with the moq-lite code unmapped: on raw QUIC, moq-dev
// maps only stream codes into the WebTransport space, not the connection's.
func (c *conn) CloseWithError(code uint32, reason string) error {
	return c.c.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

func (c *conn) Protocol() string     { return c.c.ConnectionState().TLS.NegotiatedProtocol }
func (c *conn) LocalAddr() net.Addr  { return c.c.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.c.RemoteAddr() }

// Stats reports quic-go's connection counters.
func (c *conn) Stats() transport.Stats {
	return quicstats.Named("quic", c.c.ConnectionStats())
}

// QUIC returns the underlying connection, for statistics.
func QUIC(c transport.Conn) (*quic.Conn, bool) {
	qc, ok := c.(*conn)
	if !ok {
		return nil, false
	}
	return qc.c, true
}

// The stream types are quic-go's own under another name: converting a
// *quic.SendStream to a *sendStream costs nothing, where a wrapper struct
// would cost an allocation per group stream.
type (
	sendStream    quic.SendStream
	receiveStream quic.ReceiveStream
	stream        quic.Stream
)

// quicSend is what *quic.Stream and *quic.SendStream share and the helpers
// below use.
type quicSend interface {
	Write([]byte) (int, error)
	CancelWrite(quic.StreamErrorCode)
	SetPriority(urgency int8, incremental bool)
}

// quicReceive is what *quic.Stream and *quic.ReceiveStream share and the
// helpers below use.
type quicReceive interface {
	Read([]byte) (int, error)
	CancelRead(quic.StreamErrorCode)
}

func write(s quicSend, p []byte) (int, error) {
	n, err := s.Write(p)
	return n, convert(err)
}

func cancelWrite(s quicSend, code uint32) {
	s.CancelWrite(quic.StreamErrorCode(transport.ToWebTransportCode(code)))
}

// setPriority keeps streams of one urgency incremental (round-robin), so
// groups of equal importance share the link instead of going strictly by
// stream ID.
func setPriority(s quicSend, urgency int8) { s.SetPriority(urgency, true) }

func read(s quicReceive, p []byte) (int, error) {
	n, err := s.Read(p)
	return n, convert(err)
}

func cancelRead(s quicReceive, code uint32) {
	s.CancelRead(quic.StreamErrorCode(transport.ToWebTransportCode(code)))
}

func (s *sendStream) quic() *quic.SendStream        { return (*quic.SendStream)(s) }
func (s *sendStream) Write(p []byte) (int, error)   { return write(s.quic(), p) }
func (s *sendStream) Close() error                  { return convert(s.quic().Close()) }
func (s *sendStream) CancelWrite(code uint32)       { cancelWrite(s.quic(), code) }
func (s *sendStream) SetPriority(urgency int8)      { setPriority(s.quic(), urgency) }
func (s *receiveStream) quic() *quic.ReceiveStream  { return (*quic.ReceiveStream)(s) }
func (s *receiveStream) Read(p []byte) (int, error) { return read(s.quic(), p) }
func (s *receiveStream) CancelRead(code uint32)     { cancelRead(s.quic(), code) }
func (s *stream) quic() *quic.Stream                { return (*quic.Stream)(s) }
func (s *stream) Write(p []byte) (int, error)       { return write(s.quic(), p) }
func (s *stream) Close() error                      { return convert(s.quic().Close()) }
func (s *stream) CancelWrite(code uint32)           { cancelWrite(s.quic(), code) }
func (s *stream) SetPriority(urgency int8)          { setPriority(s.quic(), urgency) }
func (s *stream) Read(p []byte) (int, error)        { return read(s.quic(), p) }
func (s *stream) CancelRead(code uint32)            { cancelRead(s.quic(), code) }
func (s *stream) SetReadDeadline(t time.Time) error { return s.quic().SetReadDeadline(t) }

// OnPeerEnd calls f once the peer has ended its side of the stream (a FIN
// or a reset: the stream's final size is known), at once if it has, else
// later from the connection's event loop, so f must not block. f is not
// called if the connection closes first. The session uses it to notice the
// end of a stream the peer sends nothing more on without parking a
// goroutine in Read.
func (s *stream) OnPeerEnd(f func()) {
	s.quic().SetReceiveFinalSizeCallback(func(int64) { f() })
}

// SetSchedule sets the stream's urgency and whether it shares the link
// round-robin with the other incremental streams of that urgency
// (SetPriority's way) or, not incremental, sends what it has before the
// non-incremental streams opened after it (see session's groupSender).
func (s *sendStream) SetSchedule(urgency int8, incremental bool) {
	s.quic().SetPriority(urgency, incremental)
}

// SetReadDeadline bounds Read as net.Conn's does (the zero time: no bound);
// a Read past it fails with an error matching os.ErrDeadlineExceeded. The
// session uses it to take in a group stream that has fully arrived without
// a goroutine of its own.
func (s *receiveStream) SetReadDeadline(t time.Time) error { return s.quic().SetReadDeadline(t) }

// convert turns quic-go's errors into the transport package's, with stream
// codes mapped back from the WebTransport space. io.EOF, which ends every
// group stream, passes through without allocating.
func convert(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if se, ok := errors.AsType[*quic.StreamError](err); ok {
		code, ok := transport.FromWebTransportCode(uint64(se.ErrorCode))
		if !ok {
			code = 15 // protocol violation: a code we cannot interpret
		}
		return &transport.StreamError{Code: code, Remote: se.Remote}
	}
	if ae, ok := errors.AsType[*quic.ApplicationError](err); ok {
		ce := &transport.ConnError{Code: uint32(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: ae.Remote}
		if !ae.Remote && ae.ErrorCode == codeTimeout {
			// Only a watch that gave up on a silent peer closes a
			// connection with Timeout itself (p2pquic's, which holds
			// accepted connections to our dead-peer bound): the peer
			// is as lost as after an idle timeout.
			return transport.Lost(ce)
		}
		return ce
	}
	return MarkLost(err)
}

// codeTimeout is moq-lite's Timeout code.
const codeTimeout = 3

// MarkLost returns err matching transport.ErrConnLost too if it is one of
// quic-go's errors for a vanished peer (its idle timeout, a stateless reset
// after the peer restarted), else err itself: for the transports that run
// on quic-go to report a lost peer alike.
func MarkLost(err error) error {
	if _, ok := errors.AsType[*quic.IdleTimeoutError](err); ok {
		return transport.Lost(err)
	}
	if _, ok := errors.AsType[*quic.StatelessResetError](err); ok {
		return transport.Lost(err)
	}
	return err
}
