package websocket

import (
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/moqp2p/moqp2p/transport"
)

// Handshake errors.
var (
	// ErrOrigin is returned by Accept when the request's Origin is not
	// allowed; the client got HTTP 403.
	ErrOrigin = errors.New("websocket: origin not allowed")
	// ErrNoProtocol is returned by Accept when the client offered
	// subprotocols but none that the Config allows (the client got HTTP
	// 400), and by Dial when the server selected none that we offered.
	ErrNoProtocol = errors.New("websocket: no acceptable subprotocol")
)

// Frame decoding errors. Every decode error wraps exactly one of these.
var (
	// ErrTruncated: a frame ends before its last field.
	ErrTruncated = errors.New("websocket: truncated frame")
	// ErrUnknownFrame: a frame type the framing does not define.
	ErrUnknownFrame = errors.New("websocket: unknown frame type")
	// ErrInvalidFrame: a field holds a value the framing forbids (an offset
	// past 2^62, a stream count past 2^60, a malformed transport
	// parameter, trailing bytes in a legacy frame that has none).
	ErrInvalidFrame = errors.New("websocket: invalid frame")
)

// Connection errors: the cause of a Conn's Context when the peer broke the
// rules. Every such cause matches ErrProtocol and one of the more precise
// sentinels (or a decode error above).
var (
	// ErrProtocol matches every protocol violation by the peer.
	ErrProtocol = errors.New("websocket: protocol violation")
	// ErrFlowControl: the peer sent more than the credit we granted.
	ErrFlowControl = errors.New("websocket: flow control violation")
	// ErrStreamLimit: the peer opened more streams than we allow.
	ErrStreamLimit = errors.New("websocket: stream limit exceeded")
	// ErrStreamState: a frame on a stream that cannot carry it (one we
	// never opened, or the wrong direction of a unidirectional stream).
	ErrStreamState = errors.New("websocket: frame not allowed on stream")
	// ErrFinalSize: data after FIN, or a final size that contradicts the
	// bytes already received.
	ErrFinalSize = errors.New("websocket: final size violation")
	// ErrOffset: a STREAM frame whose offset is not the number of bytes
	// received so far (data over WebSocket is never reordered).
	ErrOffset = errors.New("websocket: out-of-order stream offset")
	// ErrMessageTooBig: a WebSocket message larger than
	// Config.MaxMessageSize.
	ErrMessageTooBig = errors.New("websocket: message too big")
)

// ErrConnLost is the cause of a Conn whose WebSocket broke without a close
// frame of either kind: nobody chose a code, so it is not a
// *transport.ConnError. It matches transport.ErrConnLost.
var ErrConnLost = fmt.Errorf("websocket: %w", transport.ErrConnLost)

// ErrStreamClosed is returned by Write after Close.
var ErrStreamClosed = errors.New("websocket: write on closed stream")

// violation is a protocol violation by the peer: it matches both its
// precise kind and ErrProtocol.
type violation struct {
	kind error
	msg  string
}

func (v *violation) Error() string   { return v.msg }
func (v *violation) Unwrap() []error { return []error{v.kind, ErrProtocol} }

// violationf builds a violation of kind; the message starts with the kind's.
func violationf(kind error, format string, args ...any) error {
	return &violation{kind: kind, msg: kind.Error() + ": " + fmt.Sprintf(format, args...)}
}

// moq-lite codes this package sends or reports on its own account
// (broadcast.Code values; transport does not import broadcast).
const (
	codeCancel    uint32 = 0
	codeTransport uint32 = 4
	codeProtocol  uint32 = 15
)

// fromWire narrows a wire error code to a moq-lite code; a code that does
// not fit cannot be a moq-lite code, so it reads as a protocol violation.
func fromWire(code uint64) uint32 {
	if code > math.MaxUint32 {
		return codeProtocol
	}
	return uint32(code)
}

// HandshakeError is a Dial the server answered with an HTTP status instead
// of switching to WebSocket: 401 or 403 when it refused the request's path
// or token (Refused), 429 or 503 when it is busy or shutting down.
type HandshakeError struct {
	StatusCode int
	Err        error // what the WebSocket library reported
}

// Error is the library's message, which names the status.
func (e *HandshakeError) Error() string { return e.Err.Error() }

// Unwrap returns the library's error.
func (e *HandshakeError) Unwrap() error { return e.Err }

// Refused reports whether the server refused the request itself (401 or
// 403): the same request would be refused again, unlike a busy server's.
func (e *HandshakeError) Refused() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}
