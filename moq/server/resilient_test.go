package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/faults"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// restartable is a Server that can be stopped (its sessions closed, as when
// its process dies) and started again at the same addresses, with the same
// certificate.
type restartable struct {
	t        *testing.T
	n        *moq.Moq
	tc       *tls.Config
	udp, tcp string
	srv      *Server
	done     chan error
}

func startRestartable(t *testing.T, n *moq.Moq) *restartable {
	crt, err := cert.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{t: t, n: n, tc: &tls.Config{Certificates: []tls.Certificate{crt}}, udp: "127.0.0.1:0", tcp: "127.0.0.1:0"}
	r.start()
	r.udp, r.tcp = r.srv.UDPAddr().String(), r.srv.TCPAddr().String()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	srv := &Server{Moq: r.n, Logger: testLogger(), TLSConfig: r.tc, PlainHTTP: true}
	udp, err := net.ListenPacket("udp", r.udp)
	if err != nil {
		r.t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", r.tcp)
	if err != nil {
		_ = udp.Close()
		r.t.Fatal(err)
	}
	r.srv, r.done = srv, make(chan error, 1)
	go func() { r.done <- srv.Serve(udp, tcp) }()
	eventually(r.t, "server listening", func() bool { return srv.UDPAddr() != nil && srv.TCPAddr() != nil })
}

func (r *restartable) stop() {
	if r.srv == nil {
		return
	}
	_ = r.srv.Close()
	if err := <-r.done; !errors.Is(err, ErrServerClosed) {
		r.t.Errorf("Serve returned %v", err)
	}
	r.srv = nil
}

// A resilient track over a session opened by URL (ResilientOptions.Dial,
// with Dialer)
// outlives its server: when the server goes away mid-stream and comes back
// at the same address, the subscriber's node redials it, resubscribes and
// goes on at the next group; the reader sees a gap (a skipped event naming
// the groups missed), not an error, and every group is newer than those
// before the outage.
func TestResilientTrackOverOpenedSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(r *restartable) string
	}{
		{"websocket", func(r *restartable) string { return "ws://" + r.tcp + "/" }},
		{"moql", func(r *restartable) string { return "moql://" + r.udp }},
		{"webtransport", func(r *restartable) string { return "https://" + r.udp + "/" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := newNode(t)
			m := publish(t, pub, "live")
			faults.Pace(t, m.track, 15)
			r := startRestartable(t, pub)

			sub := newNode(t)
			dial, err := Dialer(tc.url(r), cert.PinnedConfig(cert.Fingerprint(r.tc.Certificates[0])))
			if err != nil {
				t.Fatal(err)
			}
			tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", moq.ResilientOptions{Dial: dial})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tr.Close)
			events := make(chan moq.TrackEvent, 64)
			go func() { // ends with the track
				for ev := range tr.Events(context.Background()) {
					select {
					case events <- ev:
					default: // not awaited: never blocks the iteration's end
					}
				}
				close(events)
			}()
			await := func(kind moq.TrackEventKind) moq.TrackEvent {
				t.Helper()
				for {
					select {
					case ev, ok := <-events:
						if !ok {
							t.Fatalf("the track ended waiting for %s", kind)
						}
						t.Logf("event %s peer=%q skipped=%d err=%v", ev.Kind, ev.Peer, ev.Skipped, ev.Err)
						if ev.Kind == kind {
							return ev
						}
					case <-testCtx(t).Done():
						t.Fatalf("no %s event", kind)
					}
				}
			}
			await(moq.TrackLive)
			rec := faults.Record(t, tr.NextGroup)
			arrived := func(what string, n int) []faults.Arrival {
				t.Helper()
				var as []faults.Arrival
				testutil.Until(t, testCtx(t), what, func() bool {
					as = rec.Between(time.Time{}, time.Now().Add(time.Hour))
					return len(as) >= n
				})
				return as
			}
			before := arrived("frames before the outage", 10)

			r.stop()
			lost := await(moq.TrackLost)
			if lost.Err == nil {
				t.Error("the lost event carries no reason")
			}
			// Groups go on being published while the server is away.
			time.Sleep(700 * time.Millisecond)
			down := len(rec.Between(time.Time{}, time.Now().Add(time.Hour)))
			r.start()
			back := time.Now()
			await(moq.TrackLive)
			resumed := await(moq.TrackResumed)
			skipped := await(moq.TrackSkipped)
			if resumed.Skipped == 0 || resumed.Outage < 700*time.Millisecond {
				t.Errorf("resumed after %v with %d groups missed: want the outage (over 700 ms) and its groups", resumed.Outage, resumed.Skipped)
			}
			after := arrived("frames after the server's restart", down+10)[down:]
			t.Logf("%d frames before the outage, %d after; back %v after the restart, %d groups skipped",
				len(before), len(after), after[0].At.Sub(back).Round(time.Millisecond), skipped.Skipped)
			if skipped.Skipped == 0 || tr.Skipped() == 0 {
				t.Errorf("skipped event %d groups, Skipped() %d: want the outage's groups counted", skipped.Skipped, tr.Skipped())
			}
			last := before[len(before)-1].Index
			for _, a := range rec.Between(time.Time{}, time.Now().Add(time.Hour))[len(before):] {
				if a.Index <= last {
					t.Errorf("frame %d after frame %d: not continuing at the next group", a.Index, last)
				}
				last = a.Index
			}
			if err := rec.Err(); err != nil {
				t.Errorf("the reader failed: %v", err)
			}
		})
	}
}

// A kept link to a server (Moq.KeepOpen) goes connecting, connected,
// reconnecting when the server stops (with why), connected again once it is
// back, and detached; a resilient track over it with a MaxOutage shorter
// than the server's absence ends with moq.ErrOutage.
func TestKeepOpenStatesAndOutage(t *testing.T) {
	pub := newNode(t)
	m := publish(t, pub, "live")
	faults.Pace(t, m.track, 15)
	r := startRestartable(t, pub)
	dial, err := Dialer("moql://"+r.udp, cert.PinnedConfig(cert.Fingerprint(r.tc.Certificates[0])))
	if err != nil {
		t.Fatal(err)
	}
	sub := newNode(t)
	l := sub.KeepOpen(dial, moq.KeepOptions{})
	changes := make(chan moq.LinkChange, 64)
	go func() {
		defer close(changes)
		for c := range l.Changes(context.Background()) {
			select {
			case changes <- c:
			default:
			}
		}
	}()
	next := func(want moq.LinkState) moq.LinkChange {
		t.Helper()
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					t.Fatalf("changes ended waiting for %v", want)
				}
				t.Logf("state %v err=%v", c.State, c.Err)
				if c.State == want {
					return c
				}
			case <-testCtx(t).Done():
				t.Fatalf("no %v (now %v)", want, l.State().State)
			}
		}
	}
	if c := next(moq.LinkConnected); c.Session == nil || c.Session.RemotePeer() != "" || l.Peer() != "" {
		t.Fatalf("connected: %+v, peer %q", c, l.Peer())
	}
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", moq.ResilientOptions{Dial: dial, MaxOutage: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.NextGroup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	r.stop()
	if c := next(moq.LinkReconnecting); c.Err == nil {
		t.Error("reconnecting without the lost session's error")
	}
	// The track gives up after its MaxOutage; the link keeps redialing.
	for {
		_, err := tr.NextGroup(testCtx(t))
		if errors.Is(err, moq.ErrOutage) {
			break
		}
		if err != nil {
			t.Fatalf("the track ended with %v, want ErrOutage", err)
		}
	}
	r.start()
	// A redial right after the loss can reach the old server while it
	// closes: that session ends at once (server closing, or QUIC's
	// CONNECTION_REFUSED for a handshake it had queued). The link must
	// then come back on the new server with a live session.
	for {
		c := next(moq.LinkConnected)
		if c.Session.Err() == nil {
			break
		}
		t.Logf("a session of the closing server: %v", c.Session.Err())
	}
	l.Detach()
	next(moq.LinkDetached)
	if _, err := l.Session(testCtx(t)); !errors.Is(err, moq.ErrDetached) {
		t.Errorf("Session after Detach: %v", err)
	}
}

// A WebSocket whose TCP connection just ends (no close frame: the reader
// sees EOF) is a lost upstream, not the publisher finishing the track: the
// resilient track redials and goes on.
func TestResilientTrackWebSocketCutIsALoss(t *testing.T) {
	pub := newNode(t)
	m := publish(t, pub, "live")
	faults.Pace(t, m.track, 15)
	srv := serve(t, pub, nil)
	var mu sync.Mutex
	var proxy *impair.TCPProxy
	reproxy := func() {
		p, err := impair.NewTCPProxy(srv.TCPAddr().String(), impair.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		mu.Lock()
		proxy = p
		mu.Unlock()
	}
	reproxy()
	dial := func(ctx context.Context) (transport.Conn, error) {
		mu.Lock()
		addr := proxy.Addr().String()
		mu.Unlock()
		c, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.Config{Logger: testLogger()})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	sub := newNode(t)
	// With back-pressure, as moq sub subscribes.
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", moq.ResilientOptions{Dial: dial,
		SubscribeOptions: moq.SubscribeOptions{Backpressure: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.NextGroup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	cut := proxy
	mu.Unlock()
	reproxy()       // the redial goes through a new proxy
	_ = cut.Close() // every proxied connection ends: EOF at both ends
	for ev := range tr.Events(testCtx(t)) {
		if ev.Kind == moq.TrackLost {
			t.Logf("lost: %v", ev.Err)
		}
		if ev.Kind == moq.TrackResumed {
			t.Logf("resumed after %v", ev.Outage)
			break
		}
	}
	for range 5 {
		if _, err := tr.NextGroup(testCtx(t)); err != nil {
			t.Fatalf("after the cut: %v", err)
		}
	}
}
