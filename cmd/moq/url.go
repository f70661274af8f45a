package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// kind is how an endpoint is reached.
type kind int

const (
	kindMoQL kind = iota + 1 // moql://host:port: moq-lite on raw QUIC, X.509
	kindP2P                  // a libp2p multiaddr: the moq package's P2P path
	kindWS                   // ws://host:port/path (wss:// to connect): WebSocket
	kindWT                   // https://host:port/path: WebTransport (and raw QUIC on the same port)
)

// endpoint is a parsed --listen or --connect value.
type endpoint struct {
	raw  string
	kind kind
	// hostport is the address of a moql://, ws:// or https:// endpoint (""
	// host: every interface, for --listen).
	hostport string
	// url is a ws://, wss:// or https:// endpoint as given (path included),
	// or a moql:// one with a path or query.
	url string
	// maddr is the transport part of a multiaddr (no /p2p).
	maddr ma.Multiaddr
	// peer is the /p2p/ part of a --connect multiaddr.
	peer peer.ID
	// cost is the link's route cost for moq relay (0: the default).
	cost int
}

// String is the endpoint as given, for messages and logs, with the value
// of a ?jwt= token masked: a bearer token must not reach a terminal or a
// log.
func (e endpoint) String() string {
	base, query, ok := strings.Cut(e.raw, "?")
	if !ok {
		return e.raw
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, ok := strings.Cut(p, "="); ok && k == "jwt" {
			params[i] = "jwt=…"
		}
	}
	return base + "?" + strings.Join(params, "&")
}

// addrInfo is what moq.Connect dials for a --connect multiaddr.
func (e endpoint) addrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: e.peer, Addrs: []ma.Multiaddr{e.maddr}}
}

const urlForms = "moql://host:port[/path], ws://host:port/path, https://host:port/path or a libp2p multiaddr such as /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<peer-id>"

// listenForms is urlForms for --listen, where a multiaddr has no /p2p part.
const listenForms = "moql://host:port, ws://host:port/path, https://host:port/path or a libp2p multiaddr such as /ip4/0.0.0.0/udp/4001/quic-v1"

// schemeHint suggests the URL meant by a value that has no scheme: a bare
// host:port (or :port) is most likely a moql:// address, the CLI's plainest
// form; a bare host:port/path most likely a WebSocket one.
func schemeHint(s string) string {
	hostport, path, _ := strings.Cut(s, "/")
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		return ""
	}
	if path != "" {
		return fmt.Sprintf(" (did you mean ws://%s or https://%s?)", s, s)
	}
	return fmt.Sprintf(" (did you mean moql://%s?)", s)
}

// parseEndpoint reads a --listen (listen true) or --connect value.
func parseEndpoint(s string, listen bool) (endpoint, error) {
	flagName := "--connect"
	if listen {
		flagName = "--listen"
	}
	e, err := parseEndpointRaw(s, listen)
	if err != nil {
		return endpoint{}, fmt.Errorf("%s %s: %w", flagName, s, err)
	}
	return e, nil
}

func parseEndpointRaw(s string, listen bool) (endpoint, error) {
	if strings.HasPrefix(s, "/") {
		return parseMultiaddr(s, listen)
	}
	forms := urlForms
	if listen {
		forms = listenForms
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return endpoint{}, fmt.Errorf("not a URL or multiaddr%s; want %s", schemeHint(s), forms)
	}
	switch strings.ToLower(scheme) {
	case "moql":
		return parseMoQL(s, listen)
	case "ws", "wss", "https":
		return parseWeb(s, listen)
	case "http":
		return endpoint{}, fmt.Errorf("unsupported scheme %q: a web listener's page is at http://, but sessions take https:// (WebTransport) or ws:// (WebSocket); want %s", scheme, forms)
	default:
		return endpoint{}, fmt.Errorf("unsupported scheme %q; want %s", scheme, forms)
	}
}

func parseMoQL(s string, listen bool) (endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, errors.New("malformed moql:// URL")
	}
	switch {
	case u.User != nil:
		return endpoint{}, errors.New("moql:// URLs take no user info")
	case listen && u.Path != "" && u.Path != "/":
		return endpoint{}, errors.New("moql:// --listen takes no path (a raw QUIC listener serves every path)")
	case listen && u.RawQuery != "":
		return endpoint{}, errors.New("moql:// --listen takes no query")
	case u.Fragment != "":
		return endpoint{}, errors.New("moql:// URLs take no fragment")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return endpoint{}, errors.New("moql:// needs host:port")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return endpoint{}, fmt.Errorf("bad port %q", port)
	}
	if !listen && (host == "" || p == 0) {
		return endpoint{}, errors.New("--connect needs a host and a non-zero port")
	}
	e := endpoint{raw: s, kind: kindMoQL, hostport: net.JoinHostPort(host, port)}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		// The path and query (a scope, a ?jwt= token) ride the
		// moq-lite-05 SETUP, as they ride an https:// URL's request.
		e.url = s
	}
	return e, nil
}

// parseWeb reads ws://, wss:// (connect only: a listener has no trusted
// certificate to offer) and https:// (WebTransport) URLs.
func parseWeb(s string, listen bool) (endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("malformed %s URL", strings.SplitN(s, ":", 2)[0])
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case u.User != nil:
		return endpoint{}, fmt.Errorf("%s:// URLs take no user info", scheme)
	case u.Fragment != "":
		return endpoint{}, fmt.Errorf("%s:// URLs take no fragment", scheme)
	case listen && scheme == "wss":
		return endpoint{}, errors.New("cannot listen on wss:// (the development certificate is for WebTransport); listen on ws:// or https://")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return endpoint{}, fmt.Errorf("%s:// needs host:port", scheme)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return endpoint{}, fmt.Errorf("bad port %q", port)
	}
	if !listen && (host == "" || p == 0) {
		return endpoint{}, errors.New("--connect needs a host and a non-zero port")
	}
	k := kindWS
	if scheme == "https" {
		k = kindWT
	}
	return endpoint{raw: s, kind: k, hostport: net.JoinHostPort(host, port), url: s}, nil
}

func parseMultiaddr(s string, listen bool) (endpoint, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("malformed multiaddr: %v", err)
	}
	tpt, id := peer.SplitAddr(m)
	e := endpoint{raw: s, kind: kindP2P, maddr: tpt, peer: id}
	if listen {
		if id != "" {
			return endpoint{}, errors.New("a listen multiaddr takes no /p2p/ part (this node's peer ID is its own)")
		}
		if !isQUICAddr(tpt) && !isTCPAddr(tpt) {
			return endpoint{}, errors.New("can listen on /ip4|ip6/<ip>/udp/<port>/quic-v1 or /ip4|ip6/<ip>/tcp/<port> only")
		}
		return e, nil
	}
	if id == "" {
		return endpoint{}, errors.New("the multiaddr needs a /p2p/<peer-id> part to say which peer to dial")
	}
	if tpt == nil {
		return endpoint{}, errors.New("the multiaddr needs an address before /p2p/<peer-id>")
	}
	return e, nil
}

// isQUICAddr reports whether a is /ip4|ip6/<ip>/udp/<port>/quic-v1.
func isQUICAddr(a ma.Multiaddr) bool {
	return len(a) == 3 && isIP(a[0]) && a[1].Code() == ma.P_UDP && a[2].Code() == ma.P_QUIC_V1
}

// isTCPAddr reports whether a is /ip4|ip6/<ip>/tcp/<port>.
func isTCPAddr(a ma.Multiaddr) bool {
	return len(a) == 2 && isIP(a[0]) && a[1].Code() == ma.P_TCP
}

func isIP(c ma.Component) bool { return c.Code() == ma.P_IP4 || c.Code() == ma.P_IP6 }
