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
// ALPN into ErrNoCommonProtocol naming what we offered.
func explainDial(err error, offered []string) error {
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode == noApplicationProtocol {
		return fmt.Errorf("%w: we offered %s; the server accepts none of them (%v)", ErrNoCommonProtocol, strings.Join(offered, ", "), err)
	}
	return err
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
