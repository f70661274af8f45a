package interop

// moqp2p's Server against @moq/net 0.3.4 (moq-lite-05, the version moq-dev's
// stack now prefers): in Node over WebSocket (QMux) and in headless Chromium
// over native WebTransport, publishing to it and subscribing from it, every
// byte checked against internal/pattern, lite-05 asserted on both sides.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/jspeer"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
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
	n := newJSNode(t, websocket.Config{})
	mixedVersionRelay(t, n, n.nodePeer(jspeer.LibNet, ""), 120*time.Second)
}

// TestMixedVersionRelayChromium is TestMixedVersionRelay with the lite-05
// publisher in headless Chromium over native WebTransport: a browser
// publishes, a lite-03 gomoqt subscriber receives through one node.
func TestMixedVersionRelayChromium(t *testing.T) {
	jspeer.RequireChromium(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	n := newJSNode(t, websocket.Config{})
	mixedVersionRelay(t, n, n.chromiumPeer(t, jspeer.LibNet, nil), 180*time.Second)
}

// mixedVersionRelay runs p as netRun's lite-05 publisher against n,
// republishes its broadcast at /relay and has a gomoqt v0.12.2 subscriber
// (lite-03) receive every frame from n; the JS publisher stays until then
// (a publisher that left earlier would unannounce the broadcast
// mid-transfer on a loaded machine), then is told to end by a subscription
// to its stop track (Chromium reports a WebTransport session we close as
// lost), and its run must have succeeded, on lite-05, all within d.
func mixedVersionRelay(t *testing.T, n *jsNode, p jsPeer, d time.Duration) {
	t.Helper()
	sc := netRun
	sc.Role, sc.Broadcast = jspeer.RolePub, "js/bcast"
	sc.Linger, sc.StopTrack, sc.Timeout = d, "stop", d // the stop ends the linger
	sc.Fetch = true                                    // a track to FETCH from

	bin := peerBinary(t, "gomoqt-lite03")
	wait, err := p.start(ctxFor(t, d), sc)
	if err != nil {
		t.Fatal(err)
	}
	js := n.session(t)
	if v := js.Version(); v != "moq-lite-05" {
		t.Fatalf("the JS publisher negotiated %s, want moq-lite-05", v)
	}
	ctx := ctxFor(t, d)
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
	// Our FETCH against @moq/net's publisher, from its retained copy of
	// the run: the first and the last group, whole, byte-exact, with
	// their timestamps.
	for _, g := range []uint64{0, uint64(sc.Groups - 1)} {
		fetchFromJS(t, ctx, js, sc, sc.Track+"-kept", g)
	}
	if tc, err := js.Subscribe(ctx, sc.Broadcast, sc.StopTrack); err == nil { // refused: that is the signal
		tc.Close()
		t.Fatal("the JS publisher served its stop track")
	}
	res, err := wait(ctxFor(t, 60*time.Second))
	if err != nil {
		t.Fatalf("@moq/net publisher: %v\n%s", err, tailLines(res.Stderr, 20))
	}
	if res.Version != "moq-lite-05" {
		t.Fatalf("the JS publisher reports %s, want moq-lite-05", res.Version)
	}
	if e, _ := res.Event("done"); !strings.Contains(string(e.Raw), `"ended_by":"stopped"`) {
		t.Fatalf("the JS publisher did not end at the stop: %s", e.Raw)
	}
}

// fetchFromJS fetches group g of track from the JS publisher of sc on s
// and checks its frames against pattern and their timestamps (i×stampStep
// ms).
func fetchFromJS(t *testing.T, ctx context.Context, s *moq.Session, sc jspeer.Scenario, track string, g uint64) {
	t.Helper()
	grp, err := s.Fetch(ctx, sc.Broadcast, track, g)
	if err != nil {
		t.Fatalf("FETCH of group %d from @moq/net: %v", g, err)
	}
	f := 0
	for ; ; f++ {
		p, ts, err := grp.ReadFrameAt(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("FETCH of group %d, frame %d: %v", g, f, err)
		}
		i := g*uint64(sc.Frames) + uint64(f)
		if !bytes.Equal(p, pattern.Payload(i, sc.Size)) || ts != i*stampStep {
			t.Fatalf("FETCH of group %d: frame %d wrong (%d bytes at %d ms)", g, f, len(p), ts)
		}
	}
	if f != sc.Frames || grp.Sequence() != g {
		t.Fatalf("FETCH of group %d: group %d with %d frames, want %d", g, grp.Sequence(), f, sc.Frames)
	}
}

// TestJSNetNodeDatagramTrack: a track that asks for datagrams, served to
// @moq/net in Node over WebSocket on lite-05, goes on streams (QMux carries
// no datagrams): every group reaches the JS subscriber, byte-exact with its
// timestamp, and our session sent no datagram.
func TestJSNetNodeDatagramTrack(t *testing.T) {
	jspeer.RequireNode(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	n := newJSNode(t, websocket.Config{})
	sc := jspeer.Scenario{Role: jspeer.RoleSub, Broadcast: "bench", Track: "audio", Groups: 200, Frames: 1, Size: 100, Timeout: 90 * time.Second, Timestamps: true, Datagrams: true}
	n.publishWorkload(t, sc) // a datagram track: single-frame groups of 100 bytes
	js := sc
	js.Datagrams = false // the JS side reads the groups as streams bring them
	wait, err := n.nodePeer(jspeer.LibNet, "").start(ctxFor(t, 120*time.Second), js)
	if err != nil {
		t.Fatal(err)
	}
	s := n.session(t)
	res, err := wait(ctxFor(t, 120*time.Second))
	if err != nil {
		t.Fatalf("@moq/net subscriber: %v\n%s", err, tailLines(res.Stderr, 20))
	}
	if res.Version != "moq-lite-05" || s.Version() != "moq-lite-05" {
		t.Fatalf("negotiated %s (JS) and %s (ours), want moq-lite-05", res.Version, s.Version())
	}
	if got, want := res.Summary(), js.Expect(); got != want {
		t.Fatalf("JS received %+v, want %+v", got, want)
	}
	if st := s.Stats().Media; st.DatagramsSent != 0 || st.GroupsSent != uint64(sc.Groups) {
		t.Fatalf("we sent %d groups, %d of them as datagrams; want %d, none", st.GroupsSent, st.DatagramsSent, sc.Groups)
	}
}

// TestJSNetNodeFinishedTrack: a track we finish reaches @moq/net in Node
// over WebSocket whole and ends cleanly there (its recvGroup returns
// nothing, no error), subscription after subscription, on lite-05: our
// publisher sends END (exclusive) and then FINs the subscribe stream once
// the groups in flight had time to land, as @moq/net ignores END and
// forgets a subscription at its FIN.
func TestJSNetNodeFinishedTrack(t *testing.T) {
	jspeer.RequireNode(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	for _, c := range finishedCases {
		t.Run(fmt.Sprintf("%dx%d", c.groups, c.frames), func(t *testing.T) {
			t.Parallel() // most of a case is waiting: each FIN lingers
			n := newJSNode(t, websocket.Config{})
			sc := jspeer.Scenario{Role: jspeer.RoleSub, Broadcast: "fin", Track: "data", Groups: c.groups, Frames: c.frames, Size: c.size, Repeat: finishedReps, Timeout: 150 * time.Second}
			n.publishFinished(t, sc)
			res, err := jspeer.RunNode(ctxFor(t, 180*time.Second), jspeer.Options{Lib: jspeer.LibNet, URL: "http://" + n.srv.TCPAddr().String() + "/", Scenario: sc})
			checkFinished(t, sc, res, err)
			if res.Version != "moq-lite-05" {
				t.Fatalf("@moq/net negotiated %s, want moq-lite-05", res.Version)
			}
		})
	}
}

// TestJSNetChromiumFinishedTrack is TestJSNetNodeFinishedTrack with @moq/net
// in headless Chromium over native WebTransport.
func TestJSNetChromiumFinishedTrack(t *testing.T) {
	jspeer.RequireChromium(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	for _, c := range finishedCases {
		t.Run(fmt.Sprintf("%dx%d", c.groups, c.frames), func(t *testing.T) {
			t.Parallel() // see TestJSChromiumFinishedTrack
			n := newJSNode(t, websocket.Config{})
			fp, err := cert.ParseFingerprint(n.srv.CertificateHash())
			if err != nil {
				t.Fatal(err)
			}
			sc := jspeer.Scenario{Role: jspeer.RoleSub, Broadcast: "fin", Track: "data", Groups: c.groups, Frames: c.frames, Size: c.size, Repeat: finishedReps, Timeout: 150 * time.Second}
			n.publishFinished(t, sc)
			res, err := jspeer.Chromium(ctxFor(t, 180*time.Second), jspeer.BrowserOptions{Lib: jspeer.LibNet, Scenario: sc, URL: "https://" + n.srv.UDPAddr().String() + "/", CertHash: fp[:]})
			checkFinished(t, sc, res, err)
			if res.Version != "moq-lite-05" {
				t.Fatalf("@moq/net negotiated %s, want moq-lite-05", res.Version)
			}
		})
	}
}

// TestJSNetChromiumDatagrams: a datagram track both ways with @moq/net in
// Chromium over WebTransport, through moq.Server: 200 single-frame groups
// of 100 bytes, each a QUIC datagram, paced. Our publishing side must get
// all 200 to Chromium. Datagrams Chromium publishes are lost even on
// loopback when the machine is loaded: Chromium drops one it could not
// send within its datagram queue's expiry (about a round trip, so a few
// milliseconds here) when its processes are starved of CPU, and
// webtransport-go drops one that finds 32 waiting for our session's reader.
// So a qlog trace of our QUIC connection counts the DATAGRAM frames that
// reached it (and those quic-go's own queue dropped), and the test asserts
// what is ours: every datagram our session was handed went into the track
// (none dropped: not malformed, not for an unknown or ended subscription,
// not refused), each reached the application byte-exact with its
// timestamp, as a datagram, never more than the connection received, and
// at least half of them were sent at all.
func TestJSNetChromiumDatagrams(t *testing.T) {
	jspeer.RequireChromium(t)
	if err := jspeer.EnsureLib(ctxFor(t, 5*time.Minute), jspeer.LibNet); err != nil {
		t.Fatal(err)
	}
	dg := jspeer.Scenario{Broadcast: "bench", Track: "audio", Groups: 200, Frames: 1, Size: 100, Timeout: 30 * time.Second, Datagrams: true}
	t.Run("js-sub", func(t *testing.T) {
		n := newJSNode(t, websocket.Config{})
		sc := dg
		sc.Role = jspeer.RoleSub
		n.run(t, n.chromiumPeer(t, jspeer.LibNet, nil), sc, "", 60*time.Second)
	})
	t.Run("js-pub", func(t *testing.T) {
		var trace datagramTrace
		n := newJSNode(t, websocket.Config{}, func(s *server.Server) {
			s.QUICConfig = webtransport.QUICConfig()
			s.QUICConfig.Tracer = trace.tracer
		})
		sc := dg
		sc.Role, sc.Broadcast, sc.Linger = jspeer.RolePub, "js/bcast", 2*time.Second
		wait, err := n.chromiumPeer(t, jspeer.LibNet, nil).start(ctxFor(t, 60*time.Second), sc)
		if err != nil {
			t.Fatal(err)
		}
		s := n.session(t)
		got := receiveDatagrams(t, s, sc)
		if res, err := wait(ctxFor(t, 60*time.Second)); err != nil {
			t.Fatalf("JS publisher: %v\n%s", err, tailLines(res.Stderr, 20))
		}
		arrived, dropped := trace.counts()
		st := s.Stats().Media
		t.Logf("%d of %d datagrams reached our QUIC connection, quic-go dropped %d, %d were lost on their way to our session, %d reached the application",
			arrived, sc.Groups, dropped, int(arrived)-int(dropped)-got-int(st.DatagramsDropped), got)
		switch {
		case st.DatagramsDropped != 0:
			t.Fatalf("our session dropped %d of the datagrams it was handed", st.DatagramsDropped)
		case st.DatagramsReceived != uint64(got):
			t.Fatalf("%d groups came as datagrams, the application got %d", st.DatagramsReceived, got)
		case uint64(got)+dropped > arrived:
			t.Fatalf("our QUIC connection received %d datagrams and quic-go dropped %d, but the application got %d", arrived, dropped, got)
		case got < sc.Groups/2:
			t.Fatalf("only %d of %d datagrams were sent", got, sc.Groups)
		}
	})
}

// receiveDatagrams subscribes to sc's track of the JS publisher on s and
// reads it to its end: single-frame groups, each sc's pattern frame for its
// sequence with its timestamp, none twice. It returns how many came.
func receiveDatagrams(t *testing.T, s *moq.Session, sc jspeer.Scenario) int {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	tc, err := s.Subscribe(ctx, sc.Broadcast, sc.Track)
	if err != nil {
		t.Fatalf("subscribe to the JS broadcast: %v", err)
	}
	defer tc.Close()
	seen := map[uint64]bool{}
	for {
		g, err := tc.RecvGroup(ctx)
		if errors.Is(err, io.EOF) {
			return len(seen)
		}
		if err != nil {
			t.Fatalf("after %d groups: %v", len(seen), err)
		}
		seq := g.Sequence()
		p, ts, err := g.ReadFrameAt(ctx)
		if err != nil {
			t.Fatalf("group %d: %v", seq, err)
		}
		if _, _, err := g.ReadFrameAt(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("group %d: a second frame, or %v", seq, err)
		}
		switch {
		case seq >= uint64(sc.Groups) || seen[seq]:
			t.Fatalf("group %d unexpected (or twice)", seq)
		case !bytes.Equal(p, pattern.Payload(seq, sc.Size)) || ts != seq*stampStep:
			t.Fatalf("group %d: wrong frame or timestamp %d", seq, ts)
		}
		seen[seq] = true
	}
}

// datagramTrace counts, from the qlog events of the QUIC connections it
// traces (a quic.Config's Tracer), the DATAGRAM frames received and those
// quic-go dropped for a full receive queue.
type datagramTrace struct {
	arrived, dropped atomic.Uint64
}

func (d *datagramTrace) tracer(context.Context, bool, quic.ConnectionID) qlogwriter.Trace { return d }

// AddProducer implements qlogwriter.Trace.
func (d *datagramTrace) AddProducer() qlogwriter.Recorder { return datagramRecorder{d} }

// SupportsSchemas implements qlogwriter.Trace.
func (d *datagramTrace) SupportsSchemas(string) bool { return true }

func (d *datagramTrace) counts() (arrived, dropped uint64) {
	return d.arrived.Load(), d.dropped.Load()
}

type datagramRecorder struct{ d *datagramTrace }

func (r datagramRecorder) RecordEvent(e qlogwriter.Event) {
	switch e := e.(type) {
	case qlog.PacketReceived:
		for _, f := range e.Frames {
			if _, ok := f.Frame.(*qlog.DatagramFrame); ok {
				r.d.arrived.Add(1)
			}
		}
	case qlog.DatagramDropped:
		if e.Direction == qlog.DirectionReceiving {
			r.d.dropped.Add(1)
		}
	}
}

func (datagramRecorder) Close() error { return nil }
