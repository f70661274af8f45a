// Package transport defines the connection that moq-lite runs over: a
// multiplexed set of bidirectional and unidirectional streams with per-stream
// reset codes, as QUIC provides. The session package speaks moq-lite over any
// Conn; the subpackages adapt real transports:
//
//   - rawquic: moq-lite directly on QUIC (moql://), dialing and listening.
//   - p2pquic: raw QUIC sharing a go-libp2p host's UDP socket and identity.
//   - p2pstream: libp2p streams, for peers with no direct QUIC path.
//   - webtransport: WebTransport for browsers, plus raw QUIC on one socket.
//   - websocket: a WebSocket, for browsers and Node without WebTransport.
//   - cert: development certificates and fingerprint-pinned TLS configs.
//
// Applications on a libp2p host need none of them directly: package moq
// runs p2pquic and p2pstream, and its Server runs webtransport and
// websocket. A program of its own with a moql:// server in hand starts
// with rawquic.Dial and session.New.
//
// Error codes in this package are moq-lite codes (broadcast.Code values).
// Adapters translate them to whatever their wire uses, so the session never
// sees a transport's own code space.
package transport

import (
	"context"
	"fmt"
	"io"
	"net"
)

// Conn is one connection to a peer.
type Conn interface {
	// OpenStream opens a bidirectional stream, waiting for stream credit.
	OpenStream(ctx context.Context) (Stream, error)
	// AcceptStream waits for the peer's next bidirectional stream.
	AcceptStream(ctx context.Context) (Stream, error)
	// OpenUniStream opens a unidirectional stream, waiting for stream credit.
	OpenUniStream(ctx context.Context) (SendStream, error)
	// AcceptUniStream waits for the peer's next unidirectional stream.
	AcceptUniStream(ctx context.Context) (ReceiveStream, error)
	// CloseWithError closes the connection with a moq-lite code and reason.
	CloseWithError(code uint32, reason string) error
	// Context is done when the connection is closed, by either side.
	Context() context.Context
	// Protocol is the negotiated application protocol (the ALPN, or the
	// WebTransport/WebSocket subprotocol); it selects the moq-lite version.
	Protocol() string
	// LocalAddr and RemoteAddr are the connection's endpoints.
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// DatagramConn is a Conn that also carries unreliable datagrams (QUIC
// DATAGRAM frames, RFC 9221): raw QUIC and WebTransport connections
// implement it; WebSocket and libp2p streams do not.
type DatagramConn interface {
	Conn
	// DatagramsSupported reports whether the peer accepts datagrams.
	DatagramsSupported() bool
	// SendDatagram queues p for sending. Delivery is not guaranteed; it
	// fails if datagrams are not supported or p is over the path's limit.
	SendDatagram(p []byte) error
	// ReceiveDatagram waits for the peer's next datagram, until ctx or the
	// connection ends.
	ReceiveDatagram(ctx context.Context) ([]byte, error)
}

// ReleaseConn is a Conn that holds on to something for a moment after it
// closed: a WebTransport session this side dialed lingers a few round trips
// before it closes its QUIC connection, so that its close code reaches the
// peer first. Released is closed once it has let go of everything; a
// program about to exit waits for it, or the peer never learns that the
// connection is gone and keeps it until it times out.
type ReleaseConn interface {
	Conn
	Released() <-chan struct{}
}

// Unwrapper is a Conn that wraps another (to add an identity, say).
// Optional interfaces such as DatagramConn are looked up through it.
type Unwrapper interface {
	Unwrap() Conn
}

// As returns c, or a connection c wraps (Unwrapper, a few levels deep at
// most), as a T: how optional interfaces are found through wrappers.
func As[T any](c Conn) (T, bool) {
	for range 8 {
		if t, ok := c.(T); ok {
			return t, true
		}
		u, ok := c.(Unwrapper)
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	var zero T
	return zero, false
}

// AsDatagramConn returns c, or a connection c wraps, as a DatagramConn.
func AsDatagramConn(c Conn) (DatagramConn, bool) { return As[DatagramConn](c) }

// CloseHooker is a Conn that can call a function when it closes without a
// context being watched for it: OnClose calls f once the connection has
// closed, with the cause its Context gives (context.Cause), on a goroutine
// other than the caller's (at once if it has closed already). A hook costs
// the connection a slice entry where a context.AfterFunc on its Context
// costs a context, and the Context itself need never be made.
type CloseHooker interface {
	OnClose(f func(cause error))
}

// OnClose calls f once c has closed, with the close cause: through c's
// CloseHooker (or that of a connection it wraps) if it has one, otherwise
// as a context.AfterFunc on its Context. f runs on a goroutine other than
// the caller's; it is never called if c stays open.
func OnClose(c Conn, f func(cause error)) {
	if h, ok := As[CloseHooker](c); ok {
		h.OnClose(f)
		return
	}
	ctx := c.Context()
	context.AfterFunc(ctx, func() { f(context.Cause(ctx)) })
}

// SendStream is the sending half of a stream.
type SendStream interface {
	io.Writer
	// Close ends the stream cleanly (FIN) after the data already written.
	Close() error
	// CancelWrite abandons the stream with a moq-lite code (RESET_STREAM).
	CancelWrite(code uint32)
	// SetPriority orders this stream against the connection's other streams:
	// urgency 0 is sent first, 7 last (RFC 9218). Transports without
	// priorities ignore it.
	SetPriority(urgency int8)
}

// ReceiveStream is the receiving half of a stream.
type ReceiveStream interface {
	io.Reader
	// CancelRead asks the peer to stop sending, with a moq-lite code
	// (STOP_SENDING).
	CancelRead(code uint32)
}

// Stream is a bidirectional stream.
type Stream interface {
	SendStream
	ReceiveStream
}

// StreamError is returned by a stream's Read or Write when the stream was
// reset (by the peer, Remote, or locally).
type StreamError struct {
	Code   uint32
	Remote bool
}

func (e *StreamError) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	return fmt.Sprintf("stream reset by %s side with code %d", side, e.Code)
}

// ConnError is returned once the connection was closed with an application
// code, by the peer (Remote) or locally.
type ConnError struct {
	Code   uint32
	Reason string
	Remote bool
}

// ErrorCode is the moq-lite code the connection was closed with.
func (e *ConnError) ErrorCode() uint32 { return e.Code }

func (e *ConnError) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	return fmt.Sprintf("connection closed by %s side with code %d: %q", side, e.Code, e.Reason)
}

// ErrConnLost matches (errors.Is) the error of a connection whose peer went
// away without closing it, on every transport: silent past the dead-peer
// bound (QUIC's idle timeout, the WebSocket and p2pstream keep-alives), a
// QUIC stateless reset (the peer restarted), a WebSocket or libp2p
// connection that broke. The transport's own error stays in the chain. Its
// moq-lite code (ErrorCode, what broadcast.CodeOf reports) is Transport:
// nobody chose a code, and the peer broke no rule.
var ErrConnLost error = connLost{}

type connLost struct{}

func (connLost) Error() string { return "connection lost" }

// ErrorCode is moq-lite's Transport code (transport does not import
// broadcast).
func (connLost) ErrorCode() uint32 { return 4 }

// Lost wraps err, a transport's report of a vanished peer, so that it
// matches ErrConnLost as well as its own kind.
func Lost(err error) error { return &LostError{Err: err} }

// LostError is Lost's error: the connection's end, whatever wraps it on
// its way (a stream's read, say).
type LostError struct{ Err error }

func (e *LostError) Error() string   { return "connection lost: " + e.Err.Error() }
func (e *LostError) Unwrap() []error { return []error{ErrConnLost, e.Err} }
