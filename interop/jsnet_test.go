package interop

// moqp2p's Server against @moq/net 0.3.4 (moq-lite-05, the version moq-dev's
// stack now prefers): in Node over WebSocket (QMux) and in headless Chromium
// over native WebTransport, publishing to it and subscribing from it, every
// byte checked against internal/pattern, lite-05 asserted on both sides.

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/jspeer"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// netRun is 10 000 frames: 100 groups of 100 frames of 64 bytes.
// Every frame carries a timestamp (frame i at i×33 ms, in milliseconds),
// checked on the receiving side either way.
var netRun = jspeer.Scenario{Broadcast: "bench", Track: "data", Groups: 100, Frames: 100, Size: 64, Timeout: 60 * time.Second, Timestamps: true}

// collectStamped is collect that also checks every frame's timestamp is
// i×stampStep ms; it returns how many were not.
func collectStamped(t *testing.T, ctx context.Context, tc *broadcast.TrackConsumer, groups, frames int) (pattern.Summary, int) {
	t.Helper()
	var c pattern.Collector
	bad := 0
	for c.Frames() < uint64(frames*groups) {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("after %d frames: %v", c.Frames(), err)
		}
		for f := uint64(0); ; f++ {
			p, ts, err := g.ReadFrameAt(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("group %d after %d frames: %v", g.Sequence(), c.Frames(), err)
			}
			if ts != (g.Sequence()*uint64(frames)+f)*stampStep {
				bad++
			}
			c.Add(g.Sequence(), p)
		}
	}
	if tc.Info().Scale() != broadcast.DefaultTimescale {
		t.Fatalf("track timescale %d", tc.Info().Scale())
	}
	return c.Summary(uint64(frames * groups)), bad
}

// receiveStamped is receiveWorkload with collectStamped.
func (n *jsNode) receiveStamped(t *testing.T, sc jspeer.Scenario, hangUp bool) (pattern.Summary, int) {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	var s *moq.Session
	testutil.Until(t, ctx, "the JS client's session", func() bool {
		all, err := n.m.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) > 0 {
			s = all[0]
		}
		return s != nil
	})
	if hangUp {
		defer func() { _ = s.Close(broadcast.CodeCancel, "test done") }()
	}
	tc, err := s.Subscribe(ctx, sc.Broadcast, sc.Track)
	if err != nil {
		t.Fatalf("subscribe to the JS broadcast: %v", err)
	}
	defer tc.Close()
	return collectStamped(t, ctx, tc, sc.Groups, sc.Frames)
}

// sessionVersion waits for the node's session (the JS client's) to have
// negotiated its version and returns it.
func (n *jsNode) sessionVersion(t *testing.T) string {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	var v string
	testutil.Until(t, ctx, "the JS client's session", func() bool {
		all, err := n.m.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) > 0 {
			v = all[0].Version()
		}
		return v != ""
	})
	return v
}

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
				sc := netRun
				sc.Role = role
				url := "http://" + n.srv.TCPAddr().String() + "/"
				if role == jspeer.RoleSub {
					sc.Fetch = true // and FETCH group 0 again afterwards
					n.publishWorkload(t, sc)
					res, err := jspeer.RunNode(ctxFor(t, 90*time.Second), jspeer.Options{Lib: jspeer.LibNet, URL: url, Scenario: sc})
					if err != nil {
						t.Fatalf("@moq/net subscriber: %v\n%s", err, tailLines(res.Stderr, 20))
					}
					if res.Version != "moq-lite-05" {
						t.Fatalf("negotiated %s, want moq-lite-05", res.Version)
					}
					if got, want := res.Summary(), sc.Expect(); got != want {
						t.Fatalf("@moq/net received %+v, want %+v", got, want)
					}
					if e, ok := res.Event("fetched"); !ok || !e.OK {
						t.Fatalf("@moq/net FETCH of group 0: %s", e.Raw)
					}
					return
				}
				sc.Broadcast = "js/bcast"
				node, err := jspeer.Start(ctxFor(t, 90*time.Second), jspeer.Options{Lib: jspeer.LibNet, URL: url, Scenario: sc})
				if err != nil {
					t.Fatal(err)
				}
				v := n.sessionVersion(t)
				got, bad := n.receiveStamped(t, sc, true)
				res, err := node.Wait(ctxFor(t, 30*time.Second))
				if err != nil {
					t.Fatalf("@moq/net publisher: %v\n%s", err, tailLines(res.Stderr, 20))
				}
				if res.Version != "moq-lite-05" || v != "moq-lite-05" {
					t.Fatalf("negotiated %s (JS) / %s (ours), want moq-lite-05", res.Version, v)
				}
				if want := sc.Expect(); got != want || bad != 0 {
					t.Fatalf("we received %+v (%d timestamps wrong), want %+v", got, bad, want)
				}
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
			fp, err := cert.ParseFingerprint(n.srv.CertificateHash())
			if err != nil {
				t.Fatal(err)
			}
			sc := netRun
			sc.Role = role
			opts := jspeer.BrowserOptions{Lib: jspeer.LibNet, URL: "https://" + n.srv.UDPAddr().String() + "/", CertHash: fp[:]}
			if role == jspeer.RoleSub {
				sc.Fetch = true // and FETCH group 0 again afterwards
				n.publishWorkload(t, sc)
				opts.Scenario = sc
				res, err := jspeer.Chromium(ctxFor(t, 90*time.Second), opts)
				if err != nil {
					t.Fatalf("Chromium subscriber: %v\n%s", err, tailLines(res.Stderr, 20))
				}
				if res.Version != "moq-lite-05" {
					t.Fatalf("negotiated %s, want moq-lite-05", res.Version)
				}
				if got, want := res.Summary(), sc.Expect(); got != want {
					t.Fatalf("Chromium received %+v, want %+v", got, want)
				}
				if e, ok := res.Event("fetched"); !ok || !e.OK {
					t.Fatalf("Chromium FETCH of group 0: %s", e.Raw)
				}
				return
			}
			sc.Broadcast = "js/bcast"
			sc.Linger = 3 * time.Second // see TestJSChromium; 10 000 frames take longer to land
			opts.Scenario = sc
			type result struct {
				res jspeer.Result
				err error
			}
			ch := make(chan result, 1)
			go func() {
				res, err := jspeer.Chromium(ctxFor(t, 90*time.Second), opts)
				ch <- result{res, err}
			}()
			v := n.sessionVersion(t)
			got, bad := n.receiveStamped(t, sc, false)
			r := <-ch
			if r.err != nil {
				t.Fatalf("Chromium publisher: %v\n%s", r.err, tailLines(r.res.Stderr, 20))
			}
			if r.res.Version != "moq-lite-05" || v != "moq-lite-05" {
				t.Fatalf("negotiated %s (JS) / %s (ours), want moq-lite-05", r.res.Version, v)
			}
			if want := sc.Expect(); got != want || bad != 0 {
				t.Fatalf("we received %+v (%d timestamps wrong), want %+v", got, bad, want)
			}
		})
	}
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
	if v := n.sessionVersion(t); v != "moq-lite-05" {
		t.Fatalf("the JS publisher negotiated %s, want moq-lite-05", v)
	}
	ctx := ctxFor(t, 60*time.Second)
	all, err := n.m.Sessions(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("sessions %d %v", len(all), err)
	}
	js := all[0]
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
			fp, err := cert.ParseFingerprint(n.srv.CertificateHash())
			if err != nil {
				t.Fatal(err)
			}
			sc := dg
			sc.Role = role
			opts := jspeer.BrowserOptions{Lib: jspeer.LibNet, URL: "https://" + n.srv.UDPAddr().String() + "/", CertHash: fp[:]}
			if role == jspeer.RoleSub {
				n.publishWorkload(t, sc)
				opts.Scenario = sc
				res, err := jspeer.Chromium(ctxFor(t, 60*time.Second), opts)
				if err != nil {
					t.Fatalf("Chromium subscriber: %v\n%s", err, tailLines(res.Stderr, 20))
				}
				if got, want := res.Summary(), sc.Expect(); got != want {
					t.Fatalf("Chromium received %+v, want %+v", got, want)
				}
				return
			}
			sc.Broadcast, sc.Linger = "js/bcast", 2*time.Second
			opts.Scenario = sc
			type result struct {
				res jspeer.Result
				err error
			}
			ch := make(chan result, 1)
			go func() {
				res, err := jspeer.Chromium(ctxFor(t, 60*time.Second), opts)
				ch <- result{res, err}
			}()
			n.sessionVersion(t)
			all, err := n.m.Sessions(ctxFor(t, 10*time.Second))
			if err != nil || len(all) == 0 {
				t.Fatal("no session")
			}
			got, bad := n.receiveStamped(t, sc, false)
			r := <-ch
			if r.err != nil {
				t.Fatalf("Chromium publisher: %v\n%s", r.err, tailLines(r.res.Stderr, 20))
			}
			if want := sc.Expect(); got != want || bad != 0 {
				t.Fatalf("we received %+v (%d timestamps wrong), want %+v", got, bad, want)
			}
			if st := all[0].Stats().Media; st.DatagramsReceived != uint64(sc.Groups) {
				t.Fatalf("%d of %d groups came as datagrams", st.DatagramsReceived, sc.Groups)
			}
		})
	}
}
