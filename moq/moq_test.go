package moq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// media is a published broadcast with one track, "video".
type media struct {
	b     *broadcast.Producer
	track *broadcast.TrackProducer
	pub   *Publication
}

func publish(t *testing.T, n *node, name string) *media {
	t.Helper()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	pub, err := n.Publish(testCtx(t), name, b.Consume())
	if err != nil {
		t.Fatal(err)
	}
	return &media{b: b, track: tp, pub: pub}
}

// stream writes one frame per group, each naming its index, until ctx ends.
func (m *media) stream(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		_ = m.track.WriteFrame([]byte(fmt.Sprint(i)))
		time.Sleep(2 * time.Millisecond) // a frame rate, not a wait: receivers wait for the frames they need
	}
}

// receive reads n frames from the session's subscription to name/video.
func receive(t *testing.T, s *Session, name string, n int) {
	t.Helper()
	tc, err := s.Subscribe(testCtx(t), name, "video")
	if err != nil {
		t.Fatalf("subscribe %s: %v", name, err)
	}
	defer tc.Close()
	for got := 0; got < n; {
		g, err := tc.NextGroup(testCtx(t))
		if err != nil {
			t.Fatalf("%s after %d frames: %v", name, got, err)
		}
		if _, err := g.ReadFrame(testCtx(t)); err != nil {
			t.Fatalf("%s frame: %v", name, err)
		}
		got++
	}
}

func live(t *testing.T, m *media) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.stream(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Checklist 11: a publication reaches sessions made before and after it,
// over raw QUIC on the hosts' own sockets.
func TestPublishBeforeAndAfterSession(t *testing.T) {
	a, b := newNode(t), newNode(t)
	cam := publish(t, a, "cam")
	live(t, cam)
	s := b.connect(t, a)
	if _, ok := s.s.Conn().(*p2pquic.Conn); !ok {
		t.Fatalf("session over %T, want raw QUIC (p2pquic)", s.s.Conn())
	}
	receive(t, s, "cam", 5)
	mic := publish(t, a, "mic") // after the session exists
	live(t, mic)
	receive(t, s, "mic", 5)
	if names, _ := a.PublishedBroadcasts(testCtx(t)); fmt.Sprint(names) != "[cam mic]" {
		t.Fatalf("PublishedBroadcasts = %v", names)
	}
	// The receive path counts a group's frames just after its readers can
	// have them: the counters may trail what was read by a moment.
	eventually(t, "stats with an RTT and counters", func() bool {
		st := s.Stats()
		return st.RTT > 0 && st.Media.FramesReceived >= 10 && st.Link.BytesReceived > 0
	})
}

// Checklist 16: Subscribe waits for the announcement, honours its context
// and reports a session that ends first.
func TestSubscribeWaitsForAnnounce(t *testing.T) {
	a, b := newNode(t), newNode(t)
	s := b.connect(t, a)
	got := make(chan error, 1)
	go func() {
		tc, err := s.Subscribe(testCtx(t), "later", "video")
		if err == nil {
			tc.Close()
		}
		got <- err
	}()
	eventually(t, "Subscribe waiting for the announcement", func() bool { return parkedIn("moq.(*Session).waitAnnounced") == 1 })
	later := publish(t, a, "later")
	live(t, later)
	if err := <-got; err != nil {
		t.Fatalf("subscribe waiting for the announcement: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Subscribe(ctx, "never", "video"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `announce "never"`) {
		t.Fatalf("deadline: %v; want DeadlineExceeded naming the broadcast waited for", err)
	}
	go func() {
		got <- nil // Subscribe below takes the other turn
		eventually(t, "Subscribe waiting for the announcement", func() bool { return parkedIn("moq.(*Session).waitAnnounced") == 1 })
		_ = s.Close(broadcast.CodeCancel, "bye")
	}()
	<-got
	_, err := s.Subscribe(testCtx(t), "never", "video")
	if !errors.Is(err, ErrNotAnnounced) {
		t.Fatalf("session ended first: %v, want ErrNotAnnounced", err)
	}
	// The error says why the session ended: the close above, with its code.
	if ce, ok := errors.AsType[*transport.ConnError](err); !ok || ce.Code != uint32(broadcast.CodeCancel) {
		t.Fatalf("session ended first: %v, want it to wrap the close with code Cancel", err)
	}
}

// Session.Announced yields what the peer announces, then (path, nil) when
// the peer withdraws it, and ends by itself when the session ends.
func TestSessionAnnounced(t *testing.T) {
	a, b := newNode(t), newNode(t)
	cam := publish(t, a, "room/cam")
	s := b.connect(t, a)

	type change struct {
		path string
		live bool
	}
	changes := make(chan change, 8)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for path, bc := range s.Announced(context.Background(), "room") {
			changes <- change{path, bc != nil}
		}
	}()
	next := func() change {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-testCtx(t).Done():
			t.Fatal("no announcement")
			return change{}
		}
	}
	if c := next(); c != (change{"room/cam", true}) {
		t.Fatalf("first: %+v, want room/cam announced", c)
	}
	cam.pub.Unpublish()
	if c := next(); c != (change{"room/cam", false}) {
		t.Fatalf("after unpublish: %+v, want room/cam withdrawn (nil broadcast)", c)
	}
	_ = s.Close(broadcast.CodeCancel, "bye")
	select {
	case <-ended:
	case <-testCtx(t).Done():
		t.Fatal("Announced went on after the session ended")
	}
}

// Checklists 13–15: one name holds one publication; unpublish withdraws it
// from the peer; a broadcast that ends frees its name.
func TestUnpublishAndBroadcastEnd(t *testing.T) {
	a, b := newNode(t), newNode(t)
	cam := publish(t, a, "cam")
	if _, err := a.Publish(testCtx(t), "cam", broadcast.New(broadcast.Config{}).Consume()); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second publish: %v, want ErrDuplicate", err)
	}
	s := b.connect(t, a)
	eventually(t, "cam announced", func() bool { return s.s.Remote().Get("cam") != nil })
	cam.pub.Unpublish()
	eventually(t, "cam withdrawn", func() bool { return s.s.Remote().Get("cam") == nil })

	mic := publish(t, a, "mic")
	eventually(t, "mic announced", func() bool { return s.s.Remote().Get("mic") != nil })
	mic.b.Finish()
	eventually(t, "mic withdrawn after its end", func() bool { return s.s.Remote().Get("mic") == nil })
	eventually(t, "the name mic freed", func() bool {
		p, err := a.Publish(testCtx(t), "mic", broadcast.New(broadcast.Config{}).Consume())
		if err == nil {
			p.Unpublish()
		}
		return err == nil
	})
}

// Checklists 1, 2, 8: concurrent connects share one dial and one session;
// the acceptor sees it in IncomingSessions with Dialed() false.
func TestConnectDedupAndIncomingSessions(t *testing.T) {
	a, b := newNode(t), newNode(t)
	incoming := make(chan *Session, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for s := range a.IncomingSessions() {
			incoming <- s
			if ctx.Err() != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	sessions := make([]*Session, 20)
	for i := range sessions {
		wg.Go(func() { sessions[i] = b.connect(t, a) })
	}
	wg.Wait()
	for _, s := range sessions {
		if s.s != sessions[0].s {
			t.Fatal("concurrent connects produced different sessions")
		}
	}
	if !sessions[0].Dialed() || sessions[0].RemotePeer() != a.h.ID() {
		t.Fatal("dialer's view of the session")
	}
	select {
	case s := <-incoming:
		if s.Dialed() || s.RemotePeer() != b.h.ID() {
			t.Fatalf("incoming session: dialed=%v peer=%s", s.Dialed(), s.RemotePeer())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no incoming session")
	}
	if list, _ := a.Sessions(testCtx(t)); len(list) != 1 {
		t.Fatalf("a has %d sessions, want exactly one handshake's worth", len(list))
	}
	select {
	case s := <-incoming:
		t.Fatalf("a second incoming session from %s", s.RemotePeer())
	case <-time.After(100 * time.Millisecond):
	}
}

// Admission runs before anything is offered; a rejected
// peer's session closes with the chosen code and never sees a broadcast.
func TestAdmission(t *testing.T) {
	var mu sync.Mutex
	allowed := map[peer.ID]bool{}
	a := newNode(t, WithAdmission(func(_ context.Context, p peer.ID) error {
		mu.Lock()
		defer mu.Unlock()
		if allowed[p] {
			return nil
		}
		return broadcast.AppError(7, "not on the list")
	}))
	publish(t, a, "secret")
	friend, stranger := newNode(t), newNode(t)
	mu.Lock()
	allowed[friend.h.ID()] = true
	mu.Unlock()

	// The rejection may land while Connect registers the session (Connect
	// then fails with it) or just after (the session closes with it).
	s, err := stranger.Connect(testCtx(t), a.info())
	if err == nil {
		select {
		case <-s.Closed():
		case <-time.After(5 * time.Second):
			t.Fatal("a rejected session stayed open")
		}
		if s.s.Remote().Get("secret") != nil {
			t.Fatal("a rejected peer saw a broadcast")
		}
		err = s.Err()
	}
	var ce *transport.ConnError
	if !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeApp+7) || ce.Reason != "not on the list" {
		t.Fatalf("rejection: %v, want code %d with the reason alone", err, broadcast.CodeApp+7)
	}
	fs := friend.connect(t, a)
	eventually(t, "the friend sees the broadcast", func() bool { return fs.s.Remote().Get("secret") != nil })
}

// Shutdown closes sessions, refuses new work, ends
// IncomingSessions and is idempotent; the host stays usable.
func TestShutdown(t *testing.T) {
	a, b := newNode(t), newNode(t)
	s := b.connect(t, a)
	ended := make(chan struct{})
	go func() {
		for range a.IncomingSessions() {
		}
		close(ended)
	}()
	if err := a.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("IncomingSessions did not end")
	}
	select {
	case <-s.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("the peer's session outlived the shutdown")
	}
	if _, err := a.Connect(testCtx(t), b.info()); !errors.Is(err, ErrShutdown) {
		t.Errorf("connect after shutdown: %v", err)
	}
	if _, err := a.Publish(testCtx(t), "x", broadcast.New(broadcast.Config{}).Consume()); !errors.Is(err, ErrShutdown) {
		t.Errorf("publish after shutdown: %v", err)
	}
	if err := a.Shutdown(testCtx(t)); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	if list, _ := a.Sessions(testCtx(t)); len(list) != 0 {
		t.Errorf("%d sessions after shutdown", len(list))
	}
}

// A TCP-only peer is reached over libp2p streams.
func TestTCPPeerUsesStreams(t *testing.T) {
	a, b := newTCPNode(t), newTCPNode(t)
	cam := publish(t, a, "cam")
	live(t, cam)
	s := b.connect(t, a)
	if _, ok := s.s.Conn().(*p2pstream.Conn); !ok {
		t.Fatalf("session over %T, want libp2p streams", s.s.Conn())
	}
	receive(t, s, "cam", 5)
	// TCP hides the link's counters: only the transport's name, and media
	// (counted just after readers see a batch: wait for it).
	eventually(t, "5 frames counted", func() bool { return s.Stats().Media.FramesReceived >= 5 })
	if st := s.Stats(); st.Link.Transport != "p2pstream" || st.Link.BytesReceived != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Connect to the node's own peer ID is refused at once, however the
// addresses are given, and leaves no session behind.
func TestConnectSelf(t *testing.T) {
	a := newNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Connect(ctx, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}); !errors.Is(err, ErrSelfConnect) {
		t.Fatalf("connect to self: %v, want ErrSelfConnect", err)
	}
	if ss, err := a.Sessions(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("sessions after a self connect: %d (%v), want none", len(ss), err)
	}
}

// Connect to a peer the host is not connected to, with its QUIC address:
// raw QUIC straight to that address (one handshake), then the host connects
// to the peer in the background as before.
func TestConnectDialsQUICDirectly(t *testing.T) {
	a, b := newNode(t), newNode(t)
	cam := publish(t, a, "cam")
	live(t, cam)
	s := b.connect(t, a)
	if _, ok := s.s.Conn().(*p2pquic.Conn); !ok {
		t.Fatalf("session over %T, want raw QUIC", s.s.Conn())
	}
	if n := b.directDials.Load(); n != 1 {
		t.Fatalf("%d direct dials, want 1", n)
	}
	receive(t, s, "cam", 5)
	eventually(t, "the host connected in the background", func() bool {
		return b.h.Network().Connectedness(a.h.ID()) == network.Connected
	})
}

// A QUIC address that does not answer (nothing listens there) costs the
// direct dial its head start, then the libp2p path connects with the
// addresses the host knows; an answering address among dead ones wins.
func TestConnectDirectDialFallsBack(t *testing.T) {
	a, b := newNode(t), newNode(t)
	dead := ma.StringCast("/ip4/127.0.0.1/udp/9/quic-v1") // discard: nothing answers QUIC there
	b.h.Peerstore().AddAddrs(a.h.ID(), a.h.Addrs(), peerstore.TempAddrTTL)
	s, err := b.Connect(testCtx(t), peer.AddrInfo{ID: a.h.ID(), Addrs: []ma.Multiaddr{dead}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.s.Conn().(*p2pquic.Conn); !ok {
		t.Fatalf("session over %T, want raw QUIC on the host connection's path", s.s.Conn())
	}
	if b.h.Network().Connectedness(a.h.ID()) != network.Connected || b.directDials.Load() != 0 {
		t.Fatalf("connected through %d direct dials; want the libp2p path", b.directDials.Load())
	}

	c := newNode(t)
	s, err = c.Connect(testCtx(t), peer.AddrInfo{ID: a.h.ID(), Addrs: append([]ma.Multiaddr{dead}, a.h.Addrs()...)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.s.Conn().(*p2pquic.Conn); !ok || c.directDials.Load() != 1 {
		t.Fatalf("session over %T after %d direct dials, want raw QUIC dialed directly", s.s.Conn(), c.directDials.Load())
	}
}

// Per-session publish offers a broadcast to one peer only.
func TestPerSessionPublish(t *testing.T) {
	a, b, c := newNode(t), newNode(t), newNode(t)
	toB, toC := a.connect(t, b), a.connect(t, c)
	call := broadcast.New(broadcast.Config{})
	unpublish, err := toB.Publish("call", call.Consume())
	if err != nil {
		t.Fatal(err)
	}
	// What b and c see of a.
	bs, cs := b.connect(t, a), c.connect(t, a)
	eventually(t, "b sees the call", func() bool { return bs.s.Remote().Get("call") != nil })
	// Announcements to c travel in order on one stream, but one batch may
	// hold several: a second marker, offered once c has the first, comes in
	// a later batch than a wrong offer of the call could have. The markers
	// are offered node-wide: c may hold a second session with a, from its own
	// dial, and cs is either.
	for _, marker := range []string{"marker1", "marker2"} {
		pub, err := a.Publish(testCtx(t), marker, broadcast.New(broadcast.Config{}).Consume())
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Unpublish()
		eventually(t, "c sees "+marker, func() bool { return cs.s.Remote().Get(marker) != nil })
	}
	if cs.s.Remote().Get("call") != nil {
		t.Fatal("c saw a broadcast offered to b alone")
	}
	unpublish()
	eventually(t, "the call withdrawn", func() bool { return bs.s.Remote().Get("call") == nil })
	_ = toC
}

// A slow IncomingSessions reader with a tiny queue gets
// every session; admitting waits for it instead of dropping one.
func TestIncomingSessionsNeverDrop(t *testing.T) {
	a := newNode(t, WithIncomingQueue(2))
	const peers = 8
	got := make(chan peer.ID, peers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for s := range a.IncomingSessions() {
			time.Sleep(20 * time.Millisecond) // a slow application
			got <- s.RemotePeer()
			if ctx.Err() != nil {
				return
			}
		}
	}()
	want := connectPeers(t, a, peers)
	for range peers {
		select {
		case p := <-got:
			if !want[p] {
				t.Fatalf("unexpected or repeated peer %s", p)
			}
			delete(want, p)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d sessions never reached IncomingSessions", len(want))
		}
	}
}

// parkedIn counts the goroutines blocked in a select or channel operation
// (parked, not running) with fn on their stack.
func parkedIn(fn string) int { return testutil.Goroutines(fn, true) }

// runningIn counts the goroutines, parked or not, with fn on their stack.
func runningIn(fn string) int { return testutil.Goroutines(fn, false) }

// connectPeers connects n new nodes to a at once and returns their IDs.
func connectPeers(t *testing.T, a *node, n int) map[peer.ID]bool {
	t.Helper()
	ids := map[peer.ID]bool{}
	var wg sync.WaitGroup
	for range n {
		c := newNode(t)
		ids[c.h.ID()] = true
		wg.Go(func() { c.connect(t, a) })
	}
	wg.Wait()
	return ids
}
