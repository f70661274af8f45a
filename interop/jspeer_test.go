package interop

// moqp2p's Server against @moq/lite 0.2.2, kixelated's JavaScript
// implementation: in Node over WebSocket (both framings × lite-02 via SETUP,
// lite-03, lite-04) and in headless Chromium over native WebTransport, in
// both directions, with every byte checked against internal/pattern.

import (
	"context"
	"fmt"
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
// Server takes sessions) and its Server on 127.0.0.1.
func newJSNode(t *testing.T, ws websocket.Config) *jsNode {
	t.Helper()
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

// receiveWorkload waits for the JS client's session, subscribes to its
// broadcast and collects sc's frames, then, with hangUp, closes the session
// (which is what ends a JS publisher's run unless it lingers).
func (n *jsNode) receiveWorkload(t *testing.T, sc jspeer.Scenario, hangUp bool) pattern.Summary {
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
	return collect(t, ctx, tc, uint64(sc.Groups*sc.Frames))
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
			url := "http://" + n.srv.TCPAddr().String() + "/"
			if c.role == jspeer.RoleSub {
				n.publishWorkload(t, sc)
				res, err := jspeer.RunNode(ctxFor(t, 60*time.Second), jspeer.Options{URL: url, Protocol: c.protocol, Scenario: sc})
				if err != nil {
					t.Fatalf("JS subscriber: %v", err)
				}
				if res.Version != c.version() {
					t.Fatalf("negotiated %s, want %s", res.Version, c.version())
				}
				if got, want := res.Summary(), sc.Expect(); got != want {
					t.Fatalf("JS received %+v, want %+v", got, want)
				}
				return
			}
			sc.Broadcast = "js/bcast"
			node, err := jspeer.Start(ctxFor(t, 60*time.Second), jspeer.Options{URL: url, Protocol: c.protocol, Scenario: sc})
			if err != nil {
				t.Fatal(err)
			}
			got := n.receiveWorkload(t, sc, true)
			res, err := node.Wait(ctxFor(t, 30*time.Second))
			if err != nil {
				t.Fatalf("JS publisher: %v", err)
			}
			if res.Version != c.version() {
				t.Fatalf("negotiated %s, want %s", res.Version, c.version())
			}
			if want := sc.Expect(); got != want {
				t.Fatalf("we received %+v, want %+v", got, want)
			}
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
				fp, err := cert.ParseFingerprint(n.srv.CertificateHash())
				if err != nil {
					t.Fatal(err)
				}
				sc := jspeer.Scenario{Role: role, Broadcast: "bench", Track: "data", Groups: 10, Frames: 100, Size: 1024, Timeout: 45 * time.Second}
				opts := jspeer.BrowserOptions{URL: "https://" + n.srv.UDPAddr().String() + "/", CertHash: fp[:], Protocols: protocols}
				if role == jspeer.RoleSub {
					n.publishWorkload(t, sc)
					opts.Scenario = sc
					res, err := jspeer.Chromium(ctxFor(t, 60*time.Second), opts)
					if err != nil {
						t.Fatalf("Chromium subscriber: %v\n%s", err, tailLines(res.Stderr, 20))
					}
					if res.Version != version {
						t.Fatalf("negotiated %s, want %s", res.Version, version)
					}
					if got, want := res.Summary(), sc.Expect(); got != want {
						t.Fatalf("Chromium received %+v, want %+v", got, want)
					}
					return
				}
				sc.Broadcast = "js/bcast"
				// Chromium sometimes reports a WebTransport session we close as
				// "Connection lost" (about 1 run in 12 here), so the page ends
				// by itself once its frames are out instead.
				sc.Linger = 500 * time.Millisecond
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
				got := n.receiveWorkload(t, sc, false)
				r := <-ch
				if r.err != nil {
					t.Fatalf("Chromium publisher: %v\n%s", r.err, tailLines(r.res.Stderr, 20))
				}
				if r.res.Version != version {
					t.Fatalf("negotiated %s, want %s", r.res.Version, version)
				}
				if want := sc.Expect(); got != want {
					t.Fatalf("we received %+v, want %+v", got, want)
				}
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
