package rawquic

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/quic-go/quic-go"
)

// ErrNoCommonProtocol: the two sides share no ALPN protocol, so no moq-lite
// version. The error's text names what each side offered, as far as it is
// known (a TLS client never learns what the server would have taken).
var ErrNoCommonProtocol = errors.New("rawquic: no common protocol")

// noApplicationProtocol is TLS's no_application_protocol alert (120) as a
// QUIC CRYPTO_ERROR (0x100 + alert).
const noApplicationProtocol = quic.TransportErrorCode(0x100 + 120)

// explainDial turns a handshake the server refused for want of a common
// ALPN into ErrNoCommonProtocol naming what we offered, and a close
// during the handshake into transport's ConnError.
func explainDial(err error, offered []string) error {
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode == noApplicationProtocol {
		return fmt.Errorf("%w: we offered %s; the server accepts none of them (%v)", ErrNoCommonProtocol, strings.Join(offered, ", "), err)
	}
	// A server that takes the handshake and closes at once (refusing us
	// with a moq-lite code) can make that close the dial's error: in
	// transport's terms, as a close after the dial returned would be. A
	// handshake that timed out lost no connection: quic-go's error stays.
	if _, ok := errors.AsType[*quic.ApplicationError](err); ok {
		return convert(err)
	}
	return err
}

// ClientPreference returns a copy of tc whose server side picks the
// client's most preferred protocol among tc.NextProtos (Go's TLS picks by
// the server's order): moq-dev's servers and webtransport-go pick by the
// client's, and a client that prefers an older version (gomoqt offers
// lite-04 first) must get it even though our own list puts lite-05 first.
func ClientPreference(tc *tls.Config) *tls.Config {
	base := tc.Clone()
	out := tc.Clone()
	prev := tc.GetConfigForClient
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if prev != nil {
			c, err := prev(hello)
			if err != nil || c != nil {
				return c, err
			}
		}
		var order []string
		for _, p := range hello.SupportedProtos {
			if slices.Contains(base.NextProtos, p) && !slices.Contains(order, p) {
				order = append(order, p)
			}
		}
		if len(order) == 0 || order[0] == firstCommon(base.NextProtos, hello.SupportedProtos) {
			return nil, nil // no common protocol, or our order picks the same: tc as it is
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.NextProtos = order
		return c, nil
	}
	return out
}

// firstCommon is the first of ours that theirs has ("" for none).
func firstCommon(ours, theirs []string) string {
	for _, p := range ours {
		if slices.Contains(theirs, p) {
			return p
		}
	}
	return ""
}

// LogALPNMismatch returns a copy of tc that logs, on log, a client hello
// sharing no protocol with tc's NextProtos, naming both sides' lists, so
// the server's side of a refused handshake says why. The handshake itself
// fails as before (no_application_protocol).
func LogALPNMismatch(tc *tls.Config, log *slog.Logger) *tls.Config {
	tc = tc.Clone()
	ours := slices.Clone(tc.NextProtos)
	prev := tc.GetConfigForClient
	tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if len(ours) > 0 && !slices.ContainsFunc(hello.SupportedProtos, func(p string) bool { return slices.Contains(ours, p) }) {
			log.Info("QUIC client refused: no common protocol", "remote", hello.Conn.RemoteAddr(),
				"client_offered", strings.Join(hello.SupportedProtos, ","), "we_offer", strings.Join(ours, ","))
		}
		if prev != nil {
			return prev(hello)
		}
		return nil, nil
	}
	return tc
}
