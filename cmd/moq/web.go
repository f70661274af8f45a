package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// dialWeb connects over WebSocket (ws://, wss://) or WebTransport (https://).
func (n *node) dialWeb(ctx context.Context, e endpoint) (c transport.Conn, via string, err error) {
	via = "WebTransport"
	if e.kind == kindWT {
		d := webtransport.Dialer{TLSConfig: n.clientTLS(e), QUICConfig: n.dialQUICConfig()}
		wt, werr := d.Dial(ctx, e.url)
		if werr != nil {
			return nil, via, werr // not a nil *webtransport.Conn in the interface
		}
		c = wt
	} else {
		via = "WebSocket"
		cfg := &websocket.Config{Logger: n.log, DeadPeerTimeout: n.cfg.net.deadPeer}
		if strings.HasPrefix(strings.ToLower(e.url), "wss:") {
			cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: n.clientTLS(e)}}
		}
		ws, werr := websocket.Dial(ctx, e.url, cfg)
		if werr != nil {
			return nil, via, werr // not a nil *websocket.Conn in the interface
		}
		c = ws
	}
	return c, via, err
}

// pathOf is the path of a URL as given, "/" if none.
func pathOf(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return "/"
}
