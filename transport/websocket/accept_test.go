package websocket

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// netOffers is what @moq/net 0.3.4 offers over WebSocket
// (connection/connect.js with @moq/qmux 0.3.3's resolveSubprotocols).
const netOffers = "qmux-02.moq-lite-05, qmux-01.moq-lite-05, qmux-00.moq-lite-05, " +
	"qmux-02.moq-lite-04, qmux-01.moq-lite-04, qmux-00.moq-lite-04, " +
	"qmux-02.moq-lite-03, qmux-01.moq-lite-03, qmux-00.moq-lite-03, " +
	"qmux-02.moql, qmux-01.moql, qmux-00.moql, qmux-01.moqt-20, qmux-01.moqt-18, " +
	"qmux-02.moqt-17, qmux-01.moqt-17, qmux-00.moqt-17, qmux-02, qmux-01, qmux-00, webtransport"

func TestSelectOffer(t *testing.T) {
	both := []Framing{FramingQmux, FramingLegacy}
	apps := []string{"moq-lite-04", "moq-lite-03", "moql"}
	apps5 := []string{"moq-lite-05", "moq-lite-04", "moq-lite-03", "moql"}
	for _, c := range []struct {
		name     string
		offered  string
		framings []Framing
		apps     []string
		header   string // "" with ok: no header
		ok       bool
	}{
		{"@moq/lite default", "qmux-00, webtransport", both, apps, "qmux-00", true},
		{"@moq/qmux with an app protocol", "qmux-00, webtransport, qmux-00.moq-lite-04, webtransport.moq-lite-04", both, apps, "qmux-00.moq-lite-04", true},
		{"our framing order wins for one app protocol", "webtransport.moq-lite-04, qmux-00.moq-lite-04", both, apps, "qmux-00.moq-lite-04", true},
		{"legacy preferred by config", "qmux-00, webtransport, qmux-00.moq-lite-04, webtransport.moq-lite-04", []Framing{FramingLegacy, FramingQmux}, apps, "webtransport.moq-lite-04", true},
		{"client's app order wins", "qmux-00.moq-lite-03, qmux-00.moq-lite-04", both, apps, "qmux-00.moq-lite-03", true},
		{"unsupported app protocol skipped", "qmux-00.moq-lite-05, webtransport.moq-lite-03", both, apps, "webtransport.moq-lite-03", true},
		{"only unsupported app protocols, bare fallback", "qmux-00.moq-lite-05, webtransport", both, apps, "webtransport", true},
		{"app protocols disabled", "qmux-00, qmux-00.moq-lite-04", both, []string{}, "qmux-00", true},
		{"legacy only server", "qmux-00, webtransport", []Framing{FramingLegacy}, apps, "webtransport", true},
		{"qmux only server, legacy client", "webtransport, webtransport.moq-lite-04", []Framing{FramingQmux}, apps, "", false},
		{"@moq/web-transport-ws", "webtransport, webtransport.moq-lite-03", both, apps, "webtransport.moq-lite-03", true},
		{"nothing offered: legacy", "", both, apps, "", true},
		{"nothing offered, legacy not allowed", "", []Framing{FramingQmux}, apps, "", false},
		{"only unknown offers", "chat, superchat", both, apps, "", false},
		{"prefix without app", "qmux-00., qmux-00x", both, apps, "", false},
		{"@moq/net 0.3.4", netOffers, allFramings, apps5, "qmux-02.moq-lite-05", true},
		{"@moq/net 0.3.4, qmux-01 preferred", netOffers, []Framing{FramingQmux01, FramingQmux}, apps5, "qmux-01.moq-lite-05", true},
		{"@moq/net 0.3.4 against a lite-04 server", netOffers, allFramings, apps, "qmux-02.moq-lite-04", true},
		{"bare qmux-01 only", "qmux-01", allFramings, apps5, "qmux-01", true},
		{"bare qmux-02 only", "qmux-02", allFramings, apps5, "qmux-02", true},
		{"bare qmux-02 and qmux-01", "qmux-01, qmux-02", allFramings, apps5, "qmux-02", true},
		{"bare app protocol (QMux over WebSocket)", "moq-lite-05", allFramings, apps5, "moq-lite-05", true},
		{"bare app protocol, qmux-01 not allowed", "moq-lite-05", both, apps5, "", false},
		{"bare app protocol we do not speak", "moq-lite-06-wip", allFramings, apps5, "", false},
		{"bare framing name is no app", "qmux-00", allFramings, []string{"qmux-00"}, "qmux-00", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.offered != "" {
				h.Set("Sec-WebSocket-Protocol", c.offered)
			}
			o, header, ok := selectOffer(offeredProtocols(h), c.framings, c.apps)
			if ok != c.ok || header != c.header {
				t.Fatalf("got %q (%+v), %v; want %q, %v", header, o, ok, c.header, c.ok)
			}
			if ok && header != "" && o.String() != header && o.app != header {
				t.Fatalf("offer %v for header %q", o, header)
			}
		})
	}
}

func TestOfferedProtocolsAcrossHeaders(t *testing.T) {
	h := http.Header{}
	h.Add("Sec-WebSocket-Protocol", "qmux-00, webtransport")
	h.Add("Sec-WebSocket-Protocol", "qmux-00.moq-lite-04")
	if got := offeredProtocols(h); !slices.Equal(got, []string{"qmux-00", "webtransport", "qmux-00.moq-lite-04"}) {
		t.Fatalf("got %q", got)
	}
}

// TestClientOffers: Dial offers what @moq/qmux offers, in its order.
func TestClientOffers(t *testing.T) {
	got := clientOffers([]Framing{FramingQmux, FramingLegacy}, []string{"moq-lite-04"})
	want := []string{"qmux-00", "webtransport", "qmux-00.moq-lite-04", "webtransport.moq-lite-04"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// And a Go server picks the first app protocol of a default Dial
	// (lite-05), in the newest framing.
	c, s := dialPair(t, nil, nil)
	if c.Protocol() != "moq-lite-05" || s.Protocol() != "moq-lite-05" || c.Framing() != FramingQmux02 {
		t.Fatalf("negotiated %s/%q and %s/%q", c.Framing(), c.Protocol(), s.Framing(), s.Protocol())
	}
}

// TestAcceptAnswersJSOffers: the subprotocol a server with the default
// Config answers to @moq/lite's offers, over a real handshake.
func TestAcceptAnswersJSOffers(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, c := range []struct {
		offers []string
		want   string
		fr     Framing
		app    string
	}{
		{[]string{"qmux-00", "webtransport"}, "qmux-00", FramingQmux, ""},
		{[]string{"qmux-00", "webtransport", "qmux-00.moq-lite-04", "webtransport.moq-lite-04"}, "qmux-00.moq-lite-04", FramingQmux, "moq-lite-04"},
		{nil, "", FramingLegacy, ""},
		{strings.Split(netOffers, ", "), "qmux-02.moq-lite-05", FramingQmux02, "moq-lite-05"},
		{[]string{"qmux-01"}, "qmux-01", FramingQmux01, ""},
		{[]string{"qmux-02"}, "qmux-02", FramingQmux02, ""},
		{[]string{"moq-lite-05"}, "moq-lite-05", FramingQmux01, "moq-lite-05"},
	} {
		rc := dialRaw(t, ts.url(), c.offers...)
		s := ts.next(t)
		if rc.ws.Subprotocol() != c.want || s.Framing() != c.fr || s.Protocol() != c.app {
			t.Errorf("offers %q: client got %q, server %s/%q", c.offers, rc.ws.Subprotocol(), s.Framing(), s.Protocol())
		}
		_ = rc.ws.CloseNow()
	}
}

// TestAcceptRefusesUnknownOffers: a client offering only protocols we do not
// speak gets HTTP 400 and the server ErrNoProtocol; Dial reports a server
// that selects nothing it can use.
func TestAcceptRefusesUnknownOffers(t *testing.T) {
	ts := newTestServer(t, &Config{Framings: []Framing{FramingQmux}})
	_, resp, err := websocket.Dial(testCtx(t), ts.url(), &websocket.DialOptions{Subprotocols: []string{"webtransport"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial: %v, %v", resp, err)
	}
	if err := <-ts.errs; !errors.Is(err, ErrNoProtocol) {
		t.Fatalf("server: %v", err)
	}
	// A legacy-only client against a server answering with no header at all.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil) // selects nothing
		if err == nil {
			_ = ws.CloseNow()
		}
	}))
	defer plain.Close()
	_, err = Dial(testCtx(t), plain.URL, &Config{Framings: []Framing{FramingQmux}})
	if !errors.Is(err, ErrNoProtocol) {
		t.Fatalf("dial a silent server with qmux only: %v", err)
	}
}

func TestOrigin(t *testing.T) {
	dialOrigin := func(t *testing.T, ts *testServer, origin string) (int, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ws, resp, err := websocket.Dial(testCtx(t), ts.url(), &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"qmux-00"}})
		if err == nil {
			_ = ws.CloseNow()
			return resp.StatusCode, nil
		}
		if resp == nil {
			t.Fatal(err)
		}
		return resp.StatusCode, err
	}
	t.Run("default same-origin rule", func(t *testing.T) {
		ts := newTestServer(t, nil)
		host := strings.TrimPrefix(ts.URL, "http://")
		if code, err := dialOrigin(t, ts, ""); err != nil || code != http.StatusSwitchingProtocols {
			t.Fatalf("no Origin: %d %v", code, err)
		}
		ts.next(t)
		if code, err := dialOrigin(t, ts, "http://"+host); err != nil || code != http.StatusSwitchingProtocols {
			t.Fatalf("same origin: %d %v", code, err)
		}
		ts.next(t)
		if code, _ := dialOrigin(t, ts, "https://evil.example"); code != http.StatusForbidden {
			t.Fatalf("foreign origin: %d", code)
		}
		if err := <-ts.errs; !errors.Is(err, ErrOrigin) {
			t.Fatalf("server error %v", err)
		}
	})
	t.Run("custom check", func(t *testing.T) {
		ts := newTestServer(t, &Config{CheckOrigin: func(r *http.Request) bool {
			return r.Header.Get("Origin") == "https://app.example"
		}})
		if code, err := dialOrigin(t, ts, "https://app.example"); err != nil || code != http.StatusSwitchingProtocols {
			t.Fatalf("allowed origin: %d %v", code, err)
		}
		ts.next(t)
		if code, _ := dialOrigin(t, ts, ""); code != http.StatusForbidden {
			t.Fatalf("refused (absent) origin: %d", code)
		}
		if err := <-ts.errs; !errors.Is(err, ErrOrigin) {
			t.Fatalf("server error %v", err)
		}
	})
}

func TestIsUpgradeRequest(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/moq", nil)
	if IsUpgradeRequest(r) {
		t.Fatal("plain GET taken for an upgrade")
	}
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "WebSocket")
	if !IsUpgradeRequest(r) {
		t.Fatal("upgrade request not recognised")
	}
	r.Method = http.MethodPost
	if IsUpgradeRequest(r) {
		t.Fatal("POST taken for an upgrade")
	}
	ts := newTestServer(t, nil)
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("plain HTTP routed to Accept: %d", resp.StatusCode)
	}
}
