package interop

// moqp2p's Server against @moq/lite 0.2.2, kixelated's JavaScript
// implementation: in Node over WebSocket (both framings × lite-02 via SETUP,
// lite-03, lite-04) and in headless Chromium over native WebTransport, in
// both directions, with every byte checked against internal/pattern.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/jspeer"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// jsNode is a moqp2p node serving JS clients on loopback.
type jsNode struct {
	m   *moq.Moq
	srv *server.Server
}

// newJSNode starts a node (a libp2p host without listeners: only the
// Server takes sessions) and its Server on 127.0.0.1, set up further by
// each of with before it serves.
func newJSNode(t *testing.T, ws websocket.Config, with ...func(*server.Server)) *jsNode {
	t.Helper()
	if ws.DeadPeerTimeout == 0 {
		// The JS peers are processes of their own (Node, Chromium) that a
		// loaded 2-core CI runner has stalled past the 3 s default, and
		// these tests are about interop, not dead-peer detection (which
		// transport/websocket's own tests cover).
		ws.DeadPeerTimeout = 20 * time.Second
	}
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	m, err := moq.New(h, moq.WithLogger(logger()), moq.WithShutdownGrace(time.Second))
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	// The test pages come from the harness's own HTTP server, another origin.
	srv := &server.Server{Moq: m, WebSocket: ws, Logger: logger(), CheckOrigin: webtransport.AllowOrigins("*")}
	for _, f := range with {
		f(srv)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(udp, tcp) }()
	testutil.Until(t, ctxFor(t, 10*time.Second), "the server to listen", func() bool { return srv.UDPAddr() != nil && srv.TCPAddr() != nil })
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
		_ = m.Shutdown(context.Background())
		_ = h.Close()
	})
	return &jsNode{m: m, srv: srv}
}

// publishWorkload publishes sc's groups at sc.Broadcast/sc.Track once the
// track is first subscribed (moq-lite subscribers join at the latest group).
func (n *jsNode) publishWorkload(t *testing.T, sc jspeer.Scenario) {
	t.Helper()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: sc.Track, Datagrams: sc.Datagrams})
	if _, err := n.m.Publish(ctxFor(t, 10*time.Second), sc.Broadcast, b.Consume()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-tp.Used():
		case <-time.After(60 * time.Second):
			return
		}
		writePattern(tp, sc)
	}()
	t.Cleanup(func() { b.Finish(); <-done })
}

// jsPeer is a JS peer of a library, in Node or Chromium, against a jsNode.
type jsPeer struct {
	lib jspeer.Lib
	// start starts the peer running sc; wait waits for its result.
	start func(ctx context.Context, sc jspeer.Scenario) (wait func(context.Context) (jspeer.Result, error), err error)
}

// nodePeer is lib's peer in Node over WebSocket, offering protocol (""
// for the library's own offer).
func (n *jsNode) nodePeer(lib jspeer.Lib, protocol string) jsPeer {
	return jsPeer{lib, func(ctx context.Context, sc jspeer.Scenario) (func(context.Context) (jspeer.Result, error), error) {
		p, err := jspeer.Start(ctx, jspeer.Options{Lib: lib, URL: "http://" + n.srv.TCPAddr().String() + "/", Protocol: protocol, Scenario: sc})
		if err != nil {
			return nil, err
		}
		return p.Wait, nil
	}}
}

// chromiumPeer is lib's peer in headless Chromium over native
// WebTransport, the certificate pinned with serverCertificateHashes,
// offering protocols (see jspeer.BrowserOptions).
func (n *jsNode) chromiumPeer(t *testing.T, lib jspeer.Lib, protocols []string) jsPeer {
	fp, err := cert.ParseFingerprint(n.srv.CertificateHash())
	if err != nil {
		t.Fatal(err)
	}
	return jsPeer{lib, func(ctx context.Context, sc jspeer.Scenario) (func(context.Context) (jspeer.Result, error), error) {
		type result struct {
			res jspeer.Result
			err error
		}
		ch := make(chan result, 1)
		opts := jspeer.BrowserOptions{Lib: lib, URL: "https://" + n.srv.UDPAddr().String() + "/", CertHash: fp[:], Protocols: protocols, Scenario: sc}
		go func() {
			res, err := jspeer.Chromium(ctx, opts)
			ch <- result{res, err}
		}()
		return func(ctx context.Context) (jspeer.Result, error) {
			select {
			case r := <-ch:
				return r.res, r.err
			case <-ctx.Done():
				return jspeer.Result{}, ctx.Err()
			}
		}, nil
	}}
}

// run runs sc with p against n within d and checks it: a JS subscriber
// must receive what n publishes (and, with sc.Fetch, FETCH group 0 whole
// again); n subscribes to a JS publisher's broadcast, closing the session
// once it has every frame unless sc.Linger lets the peer end by itself.
// Every frame is checked both ways, and the timestamps of a library that
// stamps them (@moq/net); version, if not "", is what the JS peer (and, as
// a publisher, our session) must have negotiated. It returns the JS
// peer's result and, for a JS publisher, our session with it.
func (n *jsNode) run(t *testing.T, p jsPeer, sc jspeer.Scenario, version string, d time.Duration) (jspeer.Result, *moq.Session) {
	t.Helper()
	if sc.Role == jspeer.RoleSub {
		n.publishWorkload(t, sc)
	}
	wait, err := p.start(ctxFor(t, d), sc)
	if err != nil {
		t.Fatal(err)
	}
	var s *moq.Session
	var got pattern.Summary
	bad := 0
	if sc.Role == jspeer.RolePub {
		s = n.session(t)
		if v := s.Version(); version != "" && v != version {
			t.Fatalf("our session negotiated %s, want %s", v, version)
		}
		got, bad = n.receiveWorkload(t, s, sc, p.lib == jspeer.LibNet)
	}
	res, err := wait(ctxFor(t, d))
	if err != nil {
		t.Fatalf("JS %s (%s): %v\n%s", sc.Role, p.lib, err, tailLines(res.Stderr, 20))
	}
	if version != "" && res.Version != version {
		t.Fatalf("the JS peer negotiated %s, want %s", res.Version, version)
	}
	want := sc.Expect()
	if sc.Role == jspeer.RoleSub {
		if got := res.Summary(); got != want {
			t.Fatalf("JS received %+v, want %+v", got, want)
		}
		if e, ok := res.Event("fetched"); sc.Fetch && (!ok || !e.OK) {
			t.Fatalf("JS FETCH of group 0: %s", e.Raw)
		}
		return res, nil
	}
	if got != want || bad != 0 {
		t.Fatalf("we received %+v (%d timestamps wrong), want %+v", got, bad, want)
	}
	return res, s
}

// session waits for the JS client's session with the node, once it has
// negotiated its version.
func (n *jsNode) session(t *testing.T) *moq.Session {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	var s *moq.Session
	testutil.Until(t, ctx, "the JS client's session", func() bool {
		all, err := n.m.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) > 0 && all[0].Version() != "" {
			s = all[0]
		}
		return s != nil
	})
	return s
}

// receiveWorkload subscribes to the JS client's broadcast on s and
// collects sc's frames, then, unless sc.Linger has the JS publisher end by
// itself, closes the session (which is what ends its run). With stamped,
// every frame's timestamp must be i×stampStep ms: it returns how many were
// not.
func (n *jsNode) receiveWorkload(t *testing.T, s *moq.Session, sc jspeer.Scenario, stamped bool) (pattern.Summary, int) {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	if sc.Linger == 0 {
		defer func() { _ = s.Close(broadcast.CodeCancel, "test done") }()
	}
	tc, err := s.Subscribe(ctx, sc.Broadcast, sc.Track)
	if err != nil {
		t.Fatalf("subscribe to the JS broadcast: %v", err)
	}
	defer tc.Close()
	var c pattern.Collector
	bad := 0
	for c.Frames() < uint64(sc.Frames*sc.Groups) {
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
			if stamped && ts != (g.Sequence()*uint64(sc.Frames)+f)*stampStep {
				bad++
			}
			c.Add(g.Sequence(), p)
		}
	}
	if stamped && tc.Info().Scale() != broadcast.DefaultTimescale {
		t.Fatalf("track timescale %d", tc.Info().Scale())
	}
	return c.Summary(uint64(sc.Frames * sc.Groups)), bad
}

// jsCase is one run of the JS peer against a fresh node.
type jsCase struct {
	framing  websocket.Framing
	protocol string // "" → SETUP → lite-02
	role     jspeer.Role
	groups   int
	frames   int
	size     int
}

func (c jsCase) name() string {
	v := c.protocol
	if v == "" {
		v = "setup-lite-02"
	}
	return fmt.Sprintf("%s/%s/js-%s/%dx%dx%d", c.framing, v, c.role, c.groups, c.frames, c.size)
}

func (c jsCase) version() string {
	if c.protocol == "" {
		return "moq-lite-02"
	}
	return c.protocol
}

// TestJSNode runs @moq/lite in Node 20 over WebSocket against our Server.
func TestJSNode(t *testing.T) {
	jspeer.RequireNode(t)
	var cases []jsCase
	for _, f := range []websocket.Framing{websocket.FramingQmux, websocket.FramingLegacy} {
		for _, p := range []string{"", "moq-lite-03", "moq-lite-04"} {
			for _, r := range []jspeer.Role{jspeer.RoleSub, jspeer.RolePub} {
				cases = append(cases, jsCase{f, p, r, 10, 100, 1024}) // 1 000 frames
			}
		}
	}
	cases = append(cases,
		// 100 KB frames: chunked to 16 KiB STREAM frames, through qmux credit.
		jsCase{websocket.FramingQmux, "moq-lite-04", jspeer.RoleSub, 2, 5, 100_000},
		jsCase{websocket.FramingLegacy, "moq-lite-04", jspeer.RoleSub, 2, 5, 100_000},
		jsCase{websocket.FramingQmux, "", jspeer.RolePub, 2, 5, 100_000},
		// More groups (uni streams) than JS's 100-stream credit.
		jsCase{websocket.FramingQmux, "moq-lite-04", jspeer.RoleSub, 300, 1, 100},
	)
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			n := newJSNode(t, websocket.Config{Framings: []websocket.Framing{c.framing}})
			sc := jspeer.Scenario{Role: c.role, Broadcast: "bench", Track: "data", Groups: c.groups, Frames: c.frames, Size: c.size, Timeout: 45 * time.Second}
			if c.role == jspeer.RolePub {
				sc.Broadcast = "js/bcast"
			}
			n.run(t, n.nodePeer(jspeer.LibLite, c.protocol), sc, c.version(), 60*time.Second)
		})
	}
}

// A JS subscription to a broadcast nobody publishes is refused (reset), and
// the JS client reports it instead of hanging.
func TestJSNodeUnknownBroadcast(t *testing.T) {
	jspeer.RequireNode(t)
	n := newJSNode(t, websocket.Config{})
	sc := jspeer.Scenario{Role: jspeer.RoleSub, Broadcast: "nobody", Track: "data", NoAnnounce: true, Timeout: 20 * time.Second}
	start := time.Now()
	res, err := jspeer.RunNode(ctxFor(t, 30*time.Second), jspeer.Options{URL: "http://" + n.srv.TCPAddr().String() + "/", Protocol: "moq-lite-04", Scenario: sc})
	if err == nil {
		t.Fatalf("JS subscribed to a broadcast that does not exist: %+v", res.Summary())
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("the refusal took %v (JS timed out instead of seeing the reset): %v", time.Since(start), err)
	}
	if res.Version != "moq-lite-04" {
		t.Fatalf("session not established (%v): the refusal must be per subscription", err)
	}
}

// TestJSChromium runs @moq/lite in headless Chromium over native
// WebTransport, the certificate pinned with serverCertificateHashes.
func TestJSChromium(t *testing.T) {
	jspeer.RequireChromium(t)
	for _, protocols := range [][]string{{"moq-lite-04"}, {"moq-lite-03"}, {}} {
		for _, role := range []jspeer.Role{jspeer.RoleSub, jspeer.RolePub} {
			version := "moq-lite-02"
			if len(protocols) > 0 {
				version = protocols[0]
			}
			t.Run(version+"/js-"+string(role), func(t *testing.T) {
				n := newJSNode(t, websocket.Config{})
				sc := jspeer.Scenario{Role: role, Broadcast: "bench", Track: "data", Groups: 10, Frames: 100, Size: 1024, Timeout: 45 * time.Second}
				if role == jspeer.RolePub {
					sc.Broadcast = "js/bcast"
					// Chromium sometimes reports a WebTransport session we
					// close as "Connection lost" (about 1 run in 12 here), so
					// the page ends by itself once its frames are out instead.
					sc.Linger = 500 * time.Millisecond
				}
				n.run(t, n.chromiumPeer(t, jspeer.LibLite, protocols), sc, version, 60*time.Second)
			})
		}
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// publishFinished publishes sc.Repeat tracks sc.Track-0, sc.Track-1, … at
// sc.Broadcast; each, once subscribed, gets sc's groups and is finished
// right after them, as `moq pub --frames N` ends its track.
func (n *jsNode) publishFinished(t *testing.T, sc jspeer.Scenario) {
	t.Helper()
	b := broadcast.New(broadcast.Config{})
	var tracks []*broadcast.TrackProducer
	for i := range sc.Repeat {
		tp, err := b.CreateTrack(broadcast.Track{Name: fmt.Sprintf("%s-%d", sc.Track, i)})
		if err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, tp)
	}
	if _, err := n.m.Publish(ctxFor(t, 10*time.Second), sc.Broadcast, b.Consume()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, tp := range tracks {
			select {
			case <-tp.Used():
			case <-stop:
				return
			}
			writePattern(tp, sc)
			_ = tp.Finish()
		}
	}()
	t.Cleanup(func() { close(stop); <-done; b.Finish() })
}

// finishedCases are the finished tracks a JS subscriber must get whole: one
// short group (all of it used to go missing) and 10 000 frames in 100 groups.
var finishedCases = []struct{ groups, frames, size int }{{1, 6, 100}, {100, 100, 64}}

// finishedReps is how many finished tracks each case subscribes to in turn,
// in one JS process or page.
const finishedReps = 20

// checkFinished checks a Scenario.Repeat run: every subscription got the
// whole track before it ended.
func checkFinished(t *testing.T, sc jspeer.Scenario, res jspeer.Result, err error) {
	t.Helper()
	reps := res.All("rep")
	for _, r := range reps {
		if !r.OK || r.Summary != sc.Expect() {
			t.Errorf("subscription %d got %+v before the track ended, want %+v (%s)", r.Rep, r.Summary, sc.Expect(), r.Error)
		}
	}
	if err != nil {
		t.Fatalf("JS subscriber: %v\n%s", err, tailLines(res.Stderr, 20))
	}
	if len(reps) != sc.Repeat {
		t.Fatalf("%d subscriptions reported, want %d", len(reps), sc.Repeat)
	}
}

// TestJSNodeFinishedTrack: a track we finish reaches @moq/lite whole. It
// forgets a subscription when we FIN its subscribe stream, dropping group
// streams still arriving, so the FIN must wait for them.
func TestJSNodeFinishedTrack(t *testing.T) {
	jspeer.RequireNode(t)
	for _, f := range []websocket.Framing{websocket.FramingQmux, websocket.FramingLegacy} {
		for _, p := range []string{"", "moq-lite-03", "moq-lite-04"} {
			for _, c := range finishedCases {
				name := fmt.Sprintf("%s/%s/%dx%d", f, jsCase{protocol: p}.version(), c.groups, c.frames)
				t.Run(name, func(t *testing.T) {
					t.Parallel() // most of a case is waiting: each FIN lingers
					n := newJSNode(t, websocket.Config{Framings: []websocket.Framing{f}})
					sc := jspeer.Scenario{Role: jspeer.RoleSub, Broadcast: "fin", Track: "data", Groups: c.groups, Frames: c.frames, Size: c.size, Repeat: finishedReps, Timeout: 90 * time.Second}
					n.publishFinished(t, sc)
					res, err := jspeer.RunNode(ctxFor(t, 120*time.Second), jspeer.Options{URL: "http://" + n.srv.TCPAddr().String() + "/", Protocol: p, Scenario: sc})
					checkFinished(t, sc, res, err)
				})
			}
		}
	}
}

// TestJSChromiumFinishedTrack is TestJSNodeFinishedTrack in Chromium over
// WebTransport.
func TestJSChromiumFinishedTrack(t *testing.T) {
	jspeer.RequireChromium(t)
	for _, protocols := range [][]string{{"moq-lite-04"}, {"moq-lite-03"}, {}} {
		version := "moq-lite-02"
		if len(protocols) > 0 {
			version = protocols[0]
		}
		for _, c := range finishedCases {
			t.Run(fmt.Sprintf("%s/%dx%d", version, c.groups, c.frames), func(t *testing.T) {
				// Most of a case is waiting (each FIN lingers): two at a
				// time (go test's -parallel is GOMAXPROCS) halve the
				// package's time, which neared go test's 10-minute limit
				// on a loaded two-core machine.
				t.Parallel()
				n := newJSNode(t, websocket.Config{})
				fp, err := cert.ParseFingerprint(n.srv.CertificateHash())
				if err != nil {
					t.Fatal(err)
				}
				sc := jspeer.Scenario{Role: jspeer.RoleSub, Broadcast: "fin", Track: "data", Groups: c.groups, Frames: c.frames, Size: c.size, Repeat: finishedReps, Timeout: 90 * time.Second}
				n.publishFinished(t, sc)
				res, err := jspeer.Chromium(ctxFor(t, 120*time.Second), jspeer.BrowserOptions{Scenario: sc, URL: "https://" + n.srv.UDPAddr().String() + "/", CertHash: fp[:], Protocols: protocols})
				checkFinished(t, sc, res, err)
			})
		}
	}
}

// stampStep is the timestamp step between frames of a stamped run, in
// milliseconds (interop/jsnet/scenario.mjs's TS_STEP).
const stampStep = 33

// writePattern writes the scenario's groups of test-pattern frames into tp.
func writePattern(tp *broadcast.TrackProducer, sc jspeer.Scenario) {
	for g := range sc.Groups {
		if sc.Datagrams { // whole single-frame groups, finished when seen, paced: datagram-sized
			if g > 0 {
				time.Sleep(2 * time.Millisecond)
			}
			_ = tp.WriteGroupAt(uint64(g), []uint64{uint64(g) * stampStep}, pattern.Payload(uint64(g), sc.Size))
			continue
		}
		gp, err := tp.AppendGroup()
		if err != nil {
			return
		}
		for f := range sc.Frames {
			i := uint64(g*sc.Frames + f)
			if sc.Timestamps { // what a stamping JS subscriber (jsnet) checks: frame i at i×33 ms
				_ = gp.WriteFrameAt(i*stampStep, pattern.Payload(i, sc.Size))
				continue
			}
			_ = gp.WriteFrame(pattern.Payload(i, sc.Size))
		}
		_ = gp.Finish()
	}
}
