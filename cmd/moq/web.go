package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// The CLI is a development tool: browsers from any page may connect.
func anyOrigin(*http.Request) bool { return true }

// listenWS serves moq-lite over WebSocket (both framings, any app protocol
// or the compat SETUP) on e's TCP address; other requests get the
// certificate hash, if there is one, or 404.
func (n *node) listenWS(e endpoint) error {
	ln, err := net.Listen("tcp", e.hostport)
	if err != nil {
		return err
	}
	cfg := &websocket.Config{CheckOrigin: anyOrigin, Logger: n.log}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsUpgradeRequest(r) {
			n.serveCertificate(w, r)
			return
		}
		c, err := websocket.Accept(w, r, cfg)
		if err != nil {
			n.log.Warn("refused a WebSocket session", "remote", r.RemoteAddr, "err", err)
			return
		}
		n.accepted(c, "ws://"+r.RemoteAddr)
	})}
	n.webClosers = append(n.webClosers, srv)
	n.wg.Go(func() { _ = srv.Serve(ln) })
	n.listening = append(n.listening, "ws://"+listenAddr(e.hostport, ln.Addr())+pathOf(e.url))
	return nil
}

// listenWT serves WebTransport on e's UDP address, and raw QUIC moql:// on
// the same socket.
func (n *node) listenWT(e endpoint, tc *tls.Config) error {
	pc, err := net.ListenPacket("udp", e.hostport)
	if err != nil {
		return err
	}
	srv := webtransport.NewServer(tc, nil, webtransport.Config{
		CheckOrigin: anyOrigin,
		Handler:     http.HandlerFunc(n.serveCertificate),
		Logger:      n.log,
	})
	n.webClosers = append(n.webClosers, srv)
	n.wg.Go(func() { _ = srv.Serve(pc) })
	n.wg.Go(func() {
		for {
			c, req, err := srv.Accept(n.ctx)
			if err != nil {
				return
			}
			peer := "moql://" + c.RemoteAddr().String()
			if req != nil {
				peer = "https://" + c.RemoteAddr().String()
			}
			n.accepted(c, peer)
		}
	})
	addr := listenAddr(e.hostport, pc.LocalAddr())
	n.listening = append(n.listening, "https://"+addr+pathOf(e.url), "moql://"+addr)
	return nil
}

// accepted starts a session on an accepted web connection.
func (n *node) accepted(c transport.Conn, peer string) {
	s, err := session.New(c, n.sessionConfig())
	if err != nil {
		n.log.Warn("refused a session", "remote", peer, "err", err)
		return
	}
	ms := n.track(s, peer)
	n.log.Debug("session accepted", "peer", peer, "protocol", c.Protocol())
	n.offer(ms)
}

// serveCertificate answers /certificate.sha256 (moq-relay's convention for
// browsers given an http:// URL) when this node has a certificate.
func (n *node) serveCertificate(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/certificate.sha256" || n.fingerprint == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = fmt.Fprint(w, n.fingerprint)
}

// dialWeb connects over WebSocket (ws://, wss://) or WebTransport (https://).
func (n *node) dialWeb(ctx context.Context, e endpoint) (peerSession, error) {
	var c transport.Conn
	var err error
	if e.kind == kindWT {
		c, err = webtransport.Dial(ctx, e.url, n.clientTLS(e), nil)
	} else {
		cfg := &websocket.Config{Logger: n.log}
		if strings.HasPrefix(strings.ToLower(e.url), "wss:") {
			cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: n.clientTLS(e)}}
		}
		c, err = websocket.Dial(ctx, e.url, cfg)
	}
	if err != nil {
		if strings.Contains(err.Error(), "x509:") {
			return nil, fmt.Errorf("%w (pin the server with --fingerprint HEX, or use --insecure)", err)
		}
		return nil, err
	}
	cfg := n.sessionConfig()
	cfg.Client = true
	s, err := session.New(c, cfg)
	if err != nil {
		return nil, err
	}
	return n.track(s, e.raw), nil
}

// pathOf is the path of a URL as given, "/" if none.
func pathOf(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return "/"
}
