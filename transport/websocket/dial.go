package websocket

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// withoutQuery is url for an error message: its query may hold a token.
func withoutQuery(url string) string {
	if base, _, ok := strings.Cut(url, "?"); ok {
		return base + "?…"
	}
	return url
}

// Dial opens a WebSocket moq-lite connection to url (ws:, wss:, http: or
// https:). Like @moq/qmux it offers every allowed framing bare, then
// framing.protocol for each of cfg's app protocols, and speaks what the
// server selects: no Sec-WebSocket-Protocol in the answer means the legacy
// framing without an app protocol. ctx bounds the handshake only.
func Dial(ctx context.Context, url string, cfg *Config) (*Conn, error) {
	cc := cfg.withDefaults()
	// The TCP connection is only visible while the HTTP client has it, so
	// catch it (and its endpoints) with a trace.
	var mu sync.Mutex
	var local, remote net.Addr
	var netConn net.Conn // for its TCP state (dead-peer detection)
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		mu.Lock()
		netConn = info.Conn
		local, remote = info.Conn.LocalAddr(), info.Conn.RemoteAddr()
		mu.Unlock()
	}}
	ws, resp, err := websocket.Dial(httptrace.WithClientTrace(ctx, trace), url, &websocket.DialOptions{
		HTTPClient:   cc.HTTPClient,
		HTTPHeader:   cc.HTTPHeader,
		Subprotocols: clientOffers(cc.framings, cc.protocols),
	})
	if err != nil {
		err = fmt.Errorf("websocket: dial %s: %w", withoutQuery(url), err)
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			err = &HandshakeError{StatusCode: resp.StatusCode, Err: err}
		}
		return nil, err
	}
	sp := ws.Subprotocol()
	o, ok := parseOffer(sp)
	if !ok {
		o, ok = bareApp(sp, cc.framings, cc.protocols)
	}
	if sp == "" {
		o, ok = offer{framing: FramingLegacy}, true
	}
	if !ok || !slices.Contains(cc.framings, o.framing) || (o.app != "" && !slices.Contains(cc.protocols, o.app)) {
		_ = ws.Close(websocket.StatusProtocolError, "unsupported subprotocol")
		return nil, fmt.Errorf("%w: server selected %q", ErrNoProtocol, sp)
	}
	mu.Lock()
	defer mu.Unlock()
	if local == nil {
		local, remote = addr(""), addr(url)
	}
	return newConn(ws, o, sp, false, cc, local, remote, netConn), nil
}
