package webtransport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/moqp2p/moqp2p/transport"
)

// Dialer opens WebTransport sessions, each on a QUIC connection of its own
// that is closed when the session ends. The zero value is usable but
// verifies the server against the system roots; see cert.PinnedConfig for a
// development certificate.
type Dialer struct {
	// TLSConfig verifies the server; its NextProtos are replaced by h3.
	TLSConfig *tls.Config
	// QUICConfig may be nil for QUICConfig(); datagrams and partial resets
	// are switched on in any case.
	QUICConfig *quic.Config
	// Protocols are the moq-lite protocols offered, most preferred first.
	// Nil means DefaultProtocols; an empty slice offers none (the session
	// then negotiates its version with the compat SETUP).
	Protocols []string
	// Header holds extra CONNECT request headers, such as Origin.
	Header http.Header
	// Transport, if set, dials from its socket (for example one that also
	// listens, to keep a single NAT binding) instead of a socket of its own.
	Transport *quic.Transport
}

// Dial opens a session to an https://host[:port]/path URL, the path scoping
// the session. A server that refuses it with an HTTP status yields a
// *RejectedError.
func (d *Dialer) Dial(ctx context.Context, rawURL string) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrURL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: got %q", ErrURL, rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	tc := clientTLS(d.TLSConfig, u.Hostname())
	qc := withWebTransport(d.QUICConfig)
	var qconn *quic.Conn
	if d.Transport != nil {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		qconn, err = d.Transport.Dial(ctx, ua, tc, qc)
		if err != nil {
			return nil, err
		}
	} else if qconn, err = quic.DialAddr(ctx, addr, tc, qc); err != nil {
		return nil, err
	}

	protocols := d.Protocols
	if protocols == nil {
		protocols = DefaultProtocols
	}
	wtr := &webtransport.Transport{ApplicationProtocols: slices.Clone(protocols)}
	defer wtr.Close() // only aborts session setup, which is over by then
	cc, err := wtr.NewClientConn(qconn)
	if err != nil {
		_ = qconn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
		return nil, err
	}
	rsp, sess, err := cc.Dial(ctx, u.String(), d.Header)
	if err != nil {
		_ = qconn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
		if rsp != nil && (rsp.StatusCode < 200 || rsp.StatusCode > 299) {
			return nil, &RejectedError{StatusCode: rsp.StatusCode}
		}
		return nil, convert(err)
	}
	return wrap(sess, qconn, true), nil
}

// Dial opens a WebTransport session to an https://host[:port]/path URL,
// offering protocols (nil: DefaultProtocols) and verifying the server with
// tc, from a socket of its own.
func Dial(ctx context.Context, rawURL string, tc *tls.Config, protocols []string) (transport.Conn, error) {
	c, err := (&Dialer{TLSConfig: tc, Protocols: protocols}).Dial(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	return c, nil
}
