package interop

// moqp2p's Server against @moq/net 0.3.4 (moq-lite-05, the version moq-dev's
// stack now prefers): in Node over WebSocket (QMux) and in headless Chromium
// over native WebTransport, publishing to it and subscribing from it, every
// byte checked against internal/pattern, lite-05 asserted on both sides.

import (
	"strconv"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/jspeer"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// netRun is 10 000 frames: 100 groups of 100 frames of 64 bytes.
// Every frame carries a timestamp (frame i at i×33 ms, in milliseconds),
// checked on the receiving side either way.
var netRun = jspeer.Scenario{Broadcast: "bench", Track: "data", Groups: 100, Frames: 100, Size: 64, Timeout: 60 * time.Second, Timestamps: true}

// TestJSNetNode runs @moq/net in Node over WebSocket: its own offers
// (qmux-02/01/00 × moq-lite-05, -04, …) against the default Server, and
// qmux-01 and qmux-00 forced on our side.
func TestJSNetNode(t *testing.T) {
	jspeer.RequireNode(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		framing []websocket.Framing // nil: the default (qmux-02 first)
	}{
		{"qmux-02", nil},
		{"qmux-01", []websocket.Framing{websocket.FramingQmux01}},
		{"qmux-00", []websocket.Framing{websocket.FramingQmux}},
	} {
		for _, role := range []jspeer.Role{jspeer.RoleSub, jspeer.RolePub} {
			t.Run(c.name+"/js-"+string(role), func(t *testing.T) {
				n := newJSNode(t, websocket.Config{Framings: c.framing})
				n.run(t, n.nodePeer(jspeer.LibNet, ""), netScenario(role, 0), "moq-lite-05", 90*time.Second)
			})
		}
	}
}

// TestJSNetChromium runs @moq/net in headless Chromium over native
// WebTransport.
func TestJSNetChromium(t *testing.T) {
	jspeer.RequireChromium(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	for _, role := range []jspeer.Role{jspeer.RoleSub, jspeer.RolePub} {
		t.Run("js-"+string(role), func(t *testing.T) {
			n := newJSNode(t, websocket.Config{})
			// see TestJSChromium; 10 000 frames take longer to land
			n.run(t, n.chromiumPeer(t, jspeer.LibNet, nil), netScenario(role, 3*time.Second), "moq-lite-05", 90*time.Second)
		})
	}
}

// netScenario is netRun in role: a subscriber also FETCHes group 0 again
// afterwards; a publisher publishes js/bcast and, as a page, lingers
// linger after its frames are out.
func netScenario(role jspeer.Role, linger time.Duration) jspeer.Scenario {
	sc := netRun
	sc.Role = role
	if role == jspeer.RoleSub {
		sc.Fetch = true
	} else {
		sc.Broadcast, sc.Linger = "js/bcast", linger
	}
	return sc
}

// A mixed-version path through one node: @moq/net publishes over
// WebSocket on lite-05, the node republishes that broadcast, and a gomoqt
// v0.12.2 subscriber (lite-03, raw QUIC) receives all 10 000 frames
// byte-exact (lite-03 carries no timestamps: they are left behind).
func TestMixedVersionRelay(t *testing.T) {
	jspeer.RequireNode(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	bin := peerBinary(t, "gomoqt-lite03")
	n := newJSNode(t, websocket.Config{})
	sc := netRun
	sc.Role, sc.Broadcast = jspeer.RolePub, "js/bcast"
	node, err := jspeer.Start(ctxFor(t, 90*time.Second), jspeer.Options{Lib: jspeer.LibNet, URL: "http://" + n.srv.TCPAddr().String() + "/", Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	js := n.session(t)
	if v := js.Version(); v != "moq-lite-05" {
		t.Fatalf("the JS publisher negotiated %s, want moq-lite-05", v)
	}
	ctx := ctxFor(t, 60*time.Second)
	var b *broadcast.Consumer
	for path, c := range js.Announced(ctx, "") {
		if path == sc.Broadcast && c != nil {
			b = c
			break
		}
	}
	if b == nil {
		t.Fatal("the JS broadcast was never announced")
	}
	if _, err := n.m.Publish(ctx, "relay", b); err != nil {
		t.Fatal(err)
	}
	client := startPeer(t, bin, "-role", "client", "-mode", "sub", "-addr", n.srv.UDPAddr().String(),
		"-broadcast", "/relay", "-track", sc.Track, "-announce", "-count", strconv.Itoa(sc.Groups*sc.Frames))
	got := client.summary(t)
	if want := sc.Expect(); got.Frames != want.Frames || got.Bytes != want.Bytes || got.SHA256 != want.SHA256 {
		t.Fatalf("gomoqt (lite-03) received %+v through the node, want %+v", got, want)
	}
	_ = js.Close(broadcast.CodeCancel, "test done")
	if res, err := node.Wait(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatalf("@moq/net publisher: %v\n%s", err, tailLines(res.Stderr, 20))
	}
}

// TestJSNetChromiumDatagrams: a datagram track both ways with @moq/net in
// Chromium over WebTransport, through moq.Server: 200 single-frame groups
// of 100 bytes, each a QUIC datagram (paced, on loopback: none is expected
// to be lost).
func TestJSNetChromiumDatagrams(t *testing.T) {
	jspeer.RequireChromium(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	dg := jspeer.Scenario{Broadcast: "bench", Track: "audio", Groups: 200, Frames: 1, Size: 100, Timeout: 30 * time.Second, Datagrams: true}
	for _, role := range []jspeer.Role{jspeer.RoleSub, jspeer.RolePub} {
		t.Run("js-"+string(role), func(t *testing.T) {
			n := newJSNode(t, websocket.Config{})
			sc := dg
			sc.Role = role
			if role == jspeer.RolePub {
				sc.Broadcast, sc.Linger = "js/bcast", 2*time.Second
			}
			_, s := n.run(t, n.chromiumPeer(t, jspeer.LibNet, nil), sc, "", 60*time.Second)
			if s == nil {
				return
			}
			if st := s.Stats().Media; st.DatagramsReceived != uint64(sc.Groups) {
				t.Fatalf("%d of %d groups came as datagrams", st.DatagramsReceived, sc.Groups)
			}
		})
	}
}
