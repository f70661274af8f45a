package websocket

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/coder/websocket"
)

// IsUpgradeRequest reports whether r asks for a WebSocket upgrade, so one
// handler can serve both WebSocket sessions and plain HTTP.
func IsUpgradeRequest(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Accept upgrades an HTTP request to a WebSocket moq-lite connection. It
// checks the origin (HTTP 403 and ErrOrigin if refused) and selects the
// subprotocol from the client's offers (HTTP 400 and ErrNoProtocol if none
// fits; see Config and the package documentation for the rule). On
// success the response has been sent and the handler may return; the
// Conn lives on without the request.
func Accept(w http.ResponseWriter, r *http.Request, cfg *Config) (*Conn, error) {
	cc := cfg.withDefaults()
	check := cc.CheckOrigin
	if check == nil {
		check = sameOrigin
	}
	if !check(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return nil, fmt.Errorf("%w: %q for host %q", ErrOrigin, r.Header.Get("Origin"), r.Host)
	}
	offered := offeredProtocols(r.Header)
	o, header, ok := selectOffer(offered, cc.framings, cc.protocols)
	if !ok {
		http.Error(w, "no supported WebSocket subprotocol", http.StatusBadRequest)
		return nil, fmt.Errorf("%w: client offered %q", ErrNoProtocol, offered)
	}
	opts := &websocket.AcceptOptions{InsecureSkipVerify: true} // origin checked above
	if header != "" {
		opts.Subprotocols = []string{header}
	}
	// Keep the connection coder/websocket hijacks: the Conn reads its TCP
	// state for dead-peer detection.
	rw := http.ResponseWriter(w)
	rec := recordHijack(w)
	if rec != nil {
		rw = rec
	}
	ws, err := websocket.Accept(rw, r, opts)
	if err != nil {
		return nil, fmt.Errorf("websocket: accept: %w", err)
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local == nil {
		local = addr("")
	}
	var netConn net.Conn
	if rec != nil {
		netConn = rec.conn
	}
	return newConn(ws, o, header, true, cc, local, parseAddr(r.RemoteAddr), netConn), nil
}

// sameOrigin is coder/websocket's default rule: no Origin header (not a
// browser) or an Origin whose host is the request's Host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
