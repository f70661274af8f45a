package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// Dialer returns a moq.Dialer for a server's URL, by scheme: moql:// (raw
// QUIC), https:// (WebTransport), ws:// or wss:// (WebSocket); the URL's
// path is the server's scope, as a Server routes it, and its query goes
// along (?jwt= for moq-relay). Raw QUIC has no request URI: there the path
// and query ride the moq-lite-05 SETUP (rawquic.DialURL), so a session that
// negotiates an older version reaches the server without them. tc verifies the
// server (nil: the system's roots; cert.PinnedConfig pins a development
// certificate). Give it to moq.ResilientOptions.Dial or Moq.KeepOpen, or
// call it once and pass the connection to Moq.Open.
func Dialer(rawURL string, tc *tls.Config) (moq.Dialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("server: dialer: %w", err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server: dialer: %q has no host", rawURL)
	}
	switch strings.ToLower(u.Scheme) {
	case "moql":
		return func(ctx context.Context) (transport.Conn, error) {
			return rawquic.DialURL(ctx, rawURL, tc, nil)
		}, nil
	case "https":
		return func(ctx context.Context) (transport.Conn, error) {
			return webtransport.Dial(ctx, rawURL, tc, nil)
		}, nil
	case "ws", "wss":
		cfg := &websocket.Config{}
		if tc != nil {
			cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		}
		return func(ctx context.Context) (transport.Conn, error) {
			c, err := websocket.Dial(ctx, rawURL, cfg)
			if err != nil {
				return nil, err // not a nil *websocket.Conn in the interface
			}
			return c, nil
		}, nil
	}
	return nil, fmt.Errorf("server: dialer: unsupported scheme %q (moql, https, ws or wss)", u.Scheme)
}
