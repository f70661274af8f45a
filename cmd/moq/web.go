package main

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/quic-go/quic-go"

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
		n.trackWT(wt)
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

// trackWT keeps a dialed WebTransport session's QUIC connection until it
// has closed, for close to wait on: the connection is released a moment
// after its session ends, and a process that exits first never tells the
// server, which counts the connection against our address (its bound of
// sessions waiting for admission) until its idle timeout.
func (n *node) trackWT(c *webtransport.Conn) {
	q := c.QUICConn()
	n.dialMu.Lock()
	if n.dialWT == nil {
		n.dialWT = map[*quic.Conn]struct{}{}
	}
	n.dialWT[q] = struct{}{}
	n.dialMu.Unlock()
	context.AfterFunc(q.Context(), func() {
		n.dialMu.Lock()
		delete(n.dialWT, q)
		n.dialMu.Unlock()
	})
}

// awaitWT waits, at most wtReleaseWait in all, for the QUIC connections of
// dialed WebTransport sessions to close; the node has closed the sessions.
func (n *node) awaitWT() {
	n.dialMu.Lock()
	conns := slices.Collect(maps.Keys(n.dialWT))
	n.dialMu.Unlock()
	t := time.NewTimer(wtReleaseWait)
	defer t.Stop()
	for _, q := range conns {
		select {
		case <-q.Context().Done():
		case <-t.C:
			return
		}
	}
}

// wtReleaseWait bounds awaitWT: a session closed by us lingers up to a
// second (webtransport.Conn) so that its close reaches the server first.
const wtReleaseWait = 1500 * time.Millisecond
