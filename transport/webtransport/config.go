package webtransport

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// DefaultProtocols are the moq-lite protocols offered by Dial and accepted by
// a Server when its Config names none, most preferred first.
// (The server takes the client's order among them, as rawquic.ALPNs
// explains.)
var DefaultProtocols = []string{wire.ALPNLite05, wire.ALPNLite04, wire.ALPNLite03, wire.ALPNCompat}

// DefaultAcceptQueue is how many sessions wait for Accept when
// Config.AcceptQueue is zero.
const DefaultAcceptQueue = 64

// DefaultIdleTimeout is how long an HTTP/3 connection may stay without an
// open request when Config.IdleTimeout is zero.
const DefaultIdleTimeout = 2 * time.Minute

// Config configures a Server. The zero value accepts DefaultProtocols from
// same-origin (or Origin-less) clients and answers other HTTP/3 requests with
// 404.
type Config struct {
	// Protocols are the moq-lite protocols accepted, both as WebTransport
	// application protocols and as raw-QUIC ALPNs. Over WebTransport the
	// client's order decides among them; for raw QUIC, ours does. Nil means
	// DefaultProtocols. "h3" is always offered in addition and must not be
	// listed.
	Protocols []string
	// CheckOrigin decides whether a WebTransport request's Origin header is
	// acceptable; a refused request gets HTTP 403 and never reaches Accept.
	// Nil allows requests without an Origin (non-browser clients) and those
	// whose Origin host equals the request's host (same origin). A page
	// served from another port or host needs CheckOrigin, for instance
	// AllowOrigins.
	CheckOrigin func(r *http.Request) bool
	// Handler serves the HTTP/3 requests that are not WebTransport CONNECTs,
	// such as /certificate.sha256. Nil answers them with 404.
	Handler http.Handler
	// AcceptQueue bounds the sessions established but not yet taken by
	// Accept; beyond it new sessions are refused (ErrAcceptQueueFull).
	// Zero means DefaultAcceptQueue.
	AcceptQueue int
	// IdleTimeout closes an HTTP/3 connection that has had no request open
	// for this long. A WebTransport session keeps its CONNECT request open,
	// so its connection never idles; a client that only sends QUIC PINGs
	// does. Zero means DefaultIdleTimeout, negative none.
	IdleTimeout time.Duration
	// AdmitConn, if set, is asked about each new QUIC connection that
	// negotiated h3, before any of its requests is read; an error refuses
	// it (closed with BoundsExceeded, the error's text as reason). It lets
	// the owner bound, per client address, connections that may never
	// carry a session.
	AdmitConn func(*quic.Conn) error
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
}

// protocols returns the moq-lite protocols the config accepts.
func (c Config) protocols() []string {
	ps := c.Protocols
	if ps == nil {
		ps = DefaultProtocols
	}
	return slices.DeleteFunc(slices.Clone(ps), func(p string) bool { return p == "" || p == http3.NextProtoH3 })
}

// QUICConfig returns the QUIC settings for both kinds of session:
// rawquic.Config's stream credit (moq-lite opens a uni stream per group) plus
// the datagram and partial-reset support webtransport-go insists on.
func QUICConfig() *quic.Config {
	return withWebTransport(rawquic.Config())
}

// withWebTransport returns a copy of qc (nil: QUICConfig()) with what
// WebTransport requires switched on.
func withWebTransport(qc *quic.Config) *quic.Config {
	if qc == nil {
		qc = rawquic.Config()
	} else {
		qc = qc.Clone()
	}
	qc.EnableDatagrams = true
	qc.EnableStreamResetPartialDelivery = true
	return qc
}

// serverTLS returns a copy of tc offering the moq-lite ALPNs and h3.
func serverTLS(tc *tls.Config, protocols []string) *tls.Config {
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	tc.NextProtos = append(slices.Clone(protocols), http3.NextProtoH3)
	return rawquic.ClientPreference(tc) // raw QUIC clients on this socket choose, as WebTransport ones do
}

// clientTLS returns a copy of tc (nil: an empty config) offering only h3 and
// naming host for SNI unless tc names a server already.
func clientTLS(tc *tls.Config, host string) *tls.Config {
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	tc.NextProtos = []string{http3.NextProtoH3}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	return tc
}
