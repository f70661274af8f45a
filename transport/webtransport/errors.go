package webtransport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// Sentinel errors of this package; compare with errors.Is.
var (
	// ErrServerClosed is returned by Serve and Accept once Close was called.
	ErrServerClosed = errors.New("webtransport: server closed")
	// ErrAlreadyServing is returned by a second Serve on one Server.
	ErrAlreadyServing = errors.New("webtransport: server is already serving")
	// ErrAcceptQueueFull is why a session was refused because Accept is not
	// keeping up: WebTransport requests get HTTP 503, raw-QUIC connections
	// are closed with code BoundsExceeded and this text as the reason.
	ErrAcceptQueueFull = errors.New("webtransport: accept queue full")
	// ErrRejected matches a *RejectedError: the server answered the CONNECT
	// request with a status other than 2xx.
	ErrRejected = errors.New("webtransport: session rejected by the server")
	// ErrURL is returned by Dial for a URL it cannot dial (not https).
	ErrURL = errors.New("webtransport: URL must be https://host[:port]/path")
	// ErrCertificate matches the errors of CheckCertificate.
	ErrCertificate = errors.New("webtransport: certificate unusable with serverCertificateHashes")
)

// RejectedError is returned by Dial when the server refused the session with
// an HTTP status, such as 403 for a disallowed Origin or 503 for a full
// accept queue. It matches ErrRejected.
type RejectedError struct {
	StatusCode int
}

// Error reports the status.
func (e *RejectedError) Error() string {
	return fmt.Sprintf("webtransport: session rejected by the server with HTTP status %d", e.StatusCode)
}

// Is reports whether target is ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// moq-lite codes this package produces itself (docs/wire.md#error-codes). The
// transport package must not import broadcast, so they are repeated here.
const (
	codeCancel         uint32 = 0
	codeTransport      uint32 = 4
	codeBoundsExceeded uint32 = 11
)

// convert turns webtransport-go's errors into the transport package's.
// webtransport-go has already mapped stream codes back out of the HTTP/3
// space, so StreamError codes are moq-lite codes as they are.
func convert(err error) error {
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*webtransport.StreamError](err); ok {
		return &transport.StreamError{Code: uint32(se.ErrorCode), Remote: se.Remote}
	}
	if se, ok := errors.AsType[*webtransport.SessionError](err); ok {
		return &transport.ConnError{Code: uint32(se.ErrorCode), Reason: se.Message, Remote: se.Remote}
	}
	if strings.Contains(err.Error(), bufferedRejected) {
		// The peer reset a stream it got after its session had ended
		// (or before the session was known, for too long): the session
		// is gone, and our side learns why from its close (streamErr).
		return &transport.ConnError{Code: codeTransport, Reason: "webtransport: the peer's session is gone (it rejected a stream)", Remote: true}
	}
	// The session ended without a WT_CLOSE_SESSION capsule: the CONNECT
	// stream or the whole QUIC connection failed, with an HTTP/3 code.
	if he, ok := errors.AsType[*http3.Error](err); ok {
		return h3Closed(uint64(he.ErrorCode), err, he.Remote)
	}
	if ae, ok := errors.AsType[*quic.ApplicationError](err); ok {
		if ae.ErrorCode < quic.ApplicationErrorCode(http3.ErrCodeNoError) {
			// Below HTTP/3's codes: a moq-lite code, which our server
			// (webtransport.Server, moq/server) closes an HTTP/3
			// connection with when it refuses the connection itself.
			reason := ae.ErrorMessage
			if reason == "" {
				reason = err.Error()
			}
			return &transport.ConnError{Code: uint32(ae.ErrorCode), Reason: reason, Remote: ae.Remote}
		}
		return h3Closed(uint64(ae.ErrorCode), err, ae.Remote)
	}
	// The QUIC connection gave the peer up (idle timeout, stateless reset).
	return rawquic.MarkLost(err)
}

// bufferedRejected is how webtransport-go reports a stream reset with
// WT_BUFFERED_STREAM_REJECTED: that code is outside the range it maps to
// application codes, and it keeps the code only in the error's text.
// TestSessionCloseArrivesAsConnError sees it when a session ends while a
// stream of it is on its way.
var bufferedRejected = fmt.Sprintf("failed to convert stream error %d", uint64(webtransport.WTBufferedStreamRejectedErrorCode))

// h3Closed reports a session ended by an HTTP/3 code, which is no moq-lite
// code: H3_NO_ERROR reads as a clean close (Cancel), anything else as a
// transport failure, with the HTTP/3 error as the reason.
func h3Closed(code uint64, err error, remote bool) *transport.ConnError {
	moq := codeTransport
	if code == uint64(http3.ErrCodeNoError) {
		moq = codeCancel
	}
	return &transport.ConnError{Code: moq, Reason: err.Error(), Remote: remote}
}
