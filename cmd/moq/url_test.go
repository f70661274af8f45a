package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseEndpoint(t *testing.T) {
	const id = "12D3KooWQKek73nvLcpRcUUWyFz8dC3m1DTNnKpkyirxaPoo7ygQ"
	for _, c := range []struct {
		in     string
		listen bool
		kind   kind
		host   string // hostport for moql, transport multiaddr for p2p
		err    string
	}{
		{in: "moql://127.0.0.1:4443", kind: kindMoQL, host: "127.0.0.1:4443"},
		{in: "moql://[::1]:4443/", kind: kindMoQL, host: "[::1]:4443"},
		{in: "MOQL://localhost:1", kind: kindMoQL, host: "localhost:1"},
		{in: "moql://:4443", listen: true, kind: kindMoQL, host: ":4443"},
		{in: "moql://127.0.0.1:0", listen: true, kind: kindMoQL, host: "127.0.0.1:0"},
		{in: "moql://:4443", err: "needs a host and a non-zero port"},
		{in: "moql://127.0.0.1:0", err: "needs a host and a non-zero port"},
		{in: "moql://127.0.0.1", err: "needs host:port"},
		{in: "moql://127.0.0.1:99999", err: "bad port"},
		{in: "moql://127.0.0.1:1/room", kind: kindMoQL, host: "127.0.0.1:1"},
		{in: "moql://127.0.0.1:1/room?jwt=x", kind: kindMoQL, host: "127.0.0.1:1"},
		{in: "moql://127.0.0.1:1/room#x", err: "no fragment"},
		{in: "moql://127.0.0.1:1/bench", listen: true, err: "--listen takes no path"},
		{in: "moql://127.0.0.1:1?x=1", listen: true, err: "--listen takes no query"},
		{in: "moql://u@127.0.0.1:1", err: "no user info"},
		{in: "ws://127.0.0.1:1/moq", kind: kindWS, host: "127.0.0.1:1"},
		{in: "wss://example.test:443/room", kind: kindWS, host: "example.test:443"},
		{in: "ws://127.0.0.1:0", listen: true, kind: kindWS, host: "127.0.0.1:0"},
		{in: "wss://127.0.0.1:0/moq", listen: true, err: "cannot listen on wss://"},
		{in: "https://127.0.0.1:0/moq", listen: true, kind: kindWT, host: "127.0.0.1:0"},
		{in: "https://[::1]:4443/", kind: kindWT, host: "[::1]:4443"},
		{in: "https://127.0.0.1/moq", err: "needs host:port"},
		{in: "https://127.0.0.1:0/moq", err: "needs a host and a non-zero port"},
		{in: "ws://u@127.0.0.1:1", err: "no user info"},
		{in: "http://127.0.0.1:1", err: `unsupported scheme "http"`},
		{in: "127.0.0.1:4443", err: "not a URL or multiaddr (did you mean moql://127.0.0.1:4443?)"},
		{in: "localhost:4443", listen: true, err: "(did you mean moql://localhost:4443?); want moql://host:port, ws://host:port/path, https://host:port/path or a libp2p multiaddr such as /ip4/0.0.0.0/udp/4001/quic-v1"},
		{in: "127.0.0.1:8080/room", err: "did you mean ws://127.0.0.1:8080/room or https://127.0.0.1:8080/room?"},
		{in: "http://127.0.0.1:1/", err: "sessions take https:// (WebTransport) or ws:// (WebSocket)"},
		{in: "demo", err: "not a URL or multiaddr; want"},
		{in: "", err: "not a URL or multiaddr"},
		{in: "/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + id, kind: kindP2P, host: "/ip4/127.0.0.1/udp/1/quic-v1"},
		{in: "/ip4/127.0.0.1/tcp/1/p2p/" + id, kind: kindP2P, host: "/ip4/127.0.0.1/tcp/1"},
		{in: "/ip4/127.0.0.1/udp/1/quic-v1", err: "needs a /p2p/<peer-id>"},
		{in: "/p2p/" + id, err: "needs an address before"},
		{in: "/ip4/1.2.3/udp", err: "malformed multiaddr"},
		{in: "/ip4/0.0.0.0/udp/0/quic-v1", listen: true, kind: kindP2P, host: "/ip4/0.0.0.0/udp/0/quic-v1"},
		{in: "/ip6/::1/tcp/0", listen: true, kind: kindP2P, host: "/ip6/::1/tcp/0"},
		{in: "/ip4/127.0.0.1/udp/0/quic-v1/p2p/" + id, listen: true, err: "takes no /p2p/"},
		{in: "/ip4/127.0.0.1/udp/0/quic-v1/webtransport", listen: true, err: "can listen on"},
		{in: "/dns4/localhost/udp/1/quic-v1", listen: true, err: "can listen on"},
	} {
		e, err := parseEndpoint(c.in, c.listen)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseEndpoint(%q, listen=%v) = %v; want an error containing %q", c.in, c.listen, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseEndpoint(%q, listen=%v): %v", c.in, c.listen, err)
			continue
		}
		host := e.hostport
		if e.kind == kindP2P {
			host = e.maddr.String()
			if !c.listen && e.peer.String() != id {
				t.Errorf("parseEndpoint(%q): peer %s", c.in, e.peer)
			}
		}
		if e.kind != c.kind || host != c.host {
			t.Errorf("parseEndpoint(%q, listen=%v) = kind %d %q; want kind %d %q", c.in, c.listen, e.kind, host, c.kind, c.host)
		}
	}
}

func TestPlanListen(t *testing.T) {
	must := func(s string, listen bool) endpoint {
		e, err := parseEndpoint(s, listen)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// A QUIC address goes to moq.NewHost as given (it binds the wildcard
	// for p2pquic and gates loopback: moq.TestNewHostQUICOnLoopback); one
	// on a specific public IP is reported as widened.
	p, err := planListen([]endpoint{must("/ip4/127.0.0.1/udp/0/quic-v1", true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.bind) != 1 || p.bind[0].String() != "/ip4/127.0.0.1/udp/0/quic-v1" || !p.quic || p.gate.refuseAll || p.widened {
		t.Errorf("loopback plan: bind %v quic %v gate %+v widened %v", p.bind, p.quic, p.gate, p.widened)
	}
	if p, err = planListen([]endpoint{must("/ip4/192.0.2.1/udp/4001/quic-v1", true)}, nil); err != nil || !p.widened {
		t.Errorf("public IP plan: %+v, %v; want widened", p, err)
	}
	// TCP on a specific IP is bound as given.
	p, err = planListen([]endpoint{must("/ip4/127.0.0.1/tcp/0", true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.bind) != 1 || p.bind[0].String() != "/ip4/127.0.0.1/tcp/0" || p.quic || p.gate.refuseAll {
		t.Errorf("tcp plan: bind %v quic %v gate %+v", p.bind, p.quic, p.gate)
	}
	// Dialing only: an ephemeral wildcard QUIC socket that accepts nothing.
	p, err = planListen(nil, []endpoint{must("/ip6/::1/udp/1/quic-v1/p2p/12D3KooWQKek73nvLcpRcUUWyFz8dC3m1DTNnKpkyirxaPoo7ygQ", false)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.bind) != 1 || p.bind[0].String() != "/ip6/::/udp/0/quic-v1" || !p.gate.refuseAll || p.advertise(p.bind) != nil {
		t.Errorf("dial plan: bind %v gate %+v", p.bind, p.gate)
	}
	// Nobody to dial yet (sub --mdns finds its peers later): IPv4.
	p, err = planListen(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.bind) != 1 || p.bind[0].String() != "/ip4/0.0.0.0/udp/0/quic-v1" || !p.gate.refuseAll {
		t.Errorf("discovery-only plan: bind %v gate %+v", p.bind, p.gate)
	}
}

// TestBootstrapFlag: --bootstrap takes multiaddrs with /p2p/, grouped by
// peer, and makes a node that must be dialable listen by default.
func TestBootstrapFlag(t *testing.T) {
	const a, b = "12D3KooWQKek73nvLcpRcUUWyFz8dC3m1DTNnKpkyirxaPoo7ygQ", "12D3KooWKBQbiYbJ8ohhRDjc3C8xfeRioPpzugXnB6jF8v3Qrkh9"
	nf := netFlags{timeout: time.Second, bootstrap: stringList{
		"/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + a, "/ip6/::1/udp/1/quic-v1/p2p/" + a, "/ip4/127.0.0.1/tcp/2/p2p/" + b,
	}}
	if _, _, err := nf.endpoints(1); err != nil {
		t.Fatal(err)
	}
	infos, names := addrInfos(nf.boot)
	if len(infos) != 2 || infos[0].ID.String() != a || len(infos[0].Addrs) != 2 || infos[1].ID.String() != b ||
		names[0] != nf.bootstrap[0] || names[1] != nf.bootstrap[2] {
		t.Errorf("bootstrap peers %v, names %v", infos, names)
	}
	if !nf.discovers() {
		t.Error("--bootstrap given, but the node does not discover")
	}
	listens := nf.reachable(nil)
	if len(listens) != 1 || listens[0].raw != defaultP2PListen {
		t.Errorf("reachable(nil) = %v; want %s", listens, defaultP2PListen)
	}
	moql, _ := parseEndpoint("moql://127.0.0.1:0", true)
	if got := nf.reachable([]endpoint{moql}); len(got) != 2 {
		t.Errorf("reachable(moql only) = %v; want a libp2p address added", got)
	}
	quic, _ := parseEndpoint("/ip4/127.0.0.1/udp/0/quic-v1", true)
	if got := nf.reachable([]endpoint{quic}); len(got) != 1 {
		t.Errorf("reachable(a multiaddr) = %v; want it alone", got)
	}
	if got := (&netFlags{}).reachable(nil); got != nil {
		t.Errorf("without discovery, reachable(nil) = %v; want nothing", got)
	}
}

func TestStatsSource(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9464":                "http://127.0.0.1:9464/stats",
		"http://127.0.0.1:9464/metrics": "http://127.0.0.1:9464/stats",
		"http://[::1]:9464/":            "http://[::1]:9464/stats",
		"https://127.0.0.1:4443/":       "https://127.0.0.1:4443/stats",
		"https://relay.example/room":    "https://relay.example/stats",
		"/ip4/127.0.0.1/tcp/9464":       "http://127.0.0.1:9464/stats",
		"/ip6/::1/tcp/9464":             "http://[::1]:9464/stats",
	} {
		if got, err := statsSource(in); err != nil || got.url != want || got.p2p != nil {
			t.Errorf("statsSource(%q) = %+v, %v; want %q", in, got, err, want)
		}
	}
	p2p := "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWEWUQ7Mupb7tpCideXSA6taRVXYmdUuVErv7rqjSkpSWK"
	if got, err := statsSource(p2p); err != nil || got.url != "" || got.p2p.String() != p2p {
		t.Errorf("statsSource(%q) = %+v, %v; want the multiaddr", p2p, got, err)
	}
	for _, bad := range []string{"/ip4/127.0.0.1/udp/9464/quic-v1", "/nonsense", "https:///stats"} {
		if got, err := statsSource(bad); err == nil {
			t.Errorf("statsSource(%q) = %+v, want an error", bad, got)
		}
	}
}

// TestEndpointStringMasksToken: messages and logs name an endpoint
// without the bearer token its URL carries.
func TestEndpointStringMasksToken(t *testing.T) {
	for in, want := range map[string]string{
		"moql://127.0.0.1:1/room?jwt=secret":         "moql://127.0.0.1:1/room?jwt=…",
		"https://127.0.0.1:1/room?cost=2&jwt=secret": "https://127.0.0.1:1/room?cost=2&jwt=…",
		"ws://127.0.0.1:1/room?x=1":                  "ws://127.0.0.1:1/room?x=1",
		"moql://127.0.0.1:1":                         "moql://127.0.0.1:1",
	} {
		e, err := parseEndpoint(in, false)
		if err != nil {
			t.Fatalf("parseEndpoint(%q): %v", in, err)
		}
		if got := e.String(); got != want {
			t.Errorf("endpoint(%q).String() = %q, want %q", in, got, want)
		}
	}
}
