package actor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// Checklist 1: two sequential connects return the same session.
func TestSequentialConnectsReuseSession(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	s1, s2 := a.connect(t, b), a.connect(t, b)
	if s1 != s2 || a.dials.Load() != 1 {
		t.Fatalf("got sessions %d and %d after %d dials; want one session, one dial", s1.ID(), s2.ID(), a.dials.Load())
	}
	if !s1.Dialed() {
		t.Error("a dialed session must say so")
	}
}

// Checklist 2: concurrent connects share one dial.
func TestConcurrentConnectsShareOneDial(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	var wg sync.WaitGroup
	got := make([]*Session, 50)
	for i := range got {
		wg.Go(func() { got[i] = a.connect(t, b) })
	}
	wg.Wait()
	for _, s := range got {
		if s != got[0] {
			t.Fatal("concurrent connects returned different sessions")
		}
	}
	if n := a.dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

// Checklist 3: a failed dial fails every waiter with the same error, and the
// next connect dials again.
func TestFailedDialFailsAllWaitersThenRedials(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	boom := errors.New("unreachable")
	release := make(chan struct{})
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		<-release
		return boom
	}
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id})
			errs <- err
		}()
	}
	eventually(t, "the dial to start", func() bool { return a.dials.Load() == 1 })
	eventually(t, "all ten callers queued on the one dial", func() bool {
		snap, err := a.a.query(testCtx(t))
		return err == nil && snap.pending == 1 && a.a.connectCallers(b.id) == 10
	})
	close(release)
	for range 10 {
		if err := <-errs; !errors.Is(err, boom) {
			t.Fatalf("waiter got %v, want the dial's error", err)
		}
	}
	a.dialHook = nil
	if s := a.connect(t, b); s == nil || a.dials.Load() < 2 {
		t.Fatal("the next connect must dial again")
	}
}

// Concurrent callers share one connect request (a flight): the caller that
// sent it may give up, and the others still get the session.
func TestConnectFlightOutlivesItsFirstCaller(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	release := make(chan struct{})
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	firstCtx, cancelFirst := context.WithCancel(testCtx(t))
	firstErr := make(chan error, 1)
	go func() {
		_, err := a.a.Connect(firstCtx, peer.AddrInfo{ID: b.id})
		firstErr <- err
	}()
	eventually(t, "the first caller's dial", func() bool { return a.dials.Load() == 1 && a.a.connectCallers(b.id) == 1 })
	second := make(chan *Session, 1)
	go func() {
		s, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id})
		if err != nil {
			t.Error(err)
		}
		second <- s
	}()
	eventually(t, "the second caller joining", func() bool { return a.a.connectCallers(b.id) == 2 })
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want its context's end", err)
	}
	close(release)
	if s := <-second; s == nil || !s.live() || a.dials.Load() != 1 {
		t.Fatalf("second caller got %v after %d dials; want the one dial's live session", s, a.dials.Load())
	}
}

// A dial that fails returning a typed nil connection beside its error is a
// failed dial: its callers get the error and its goroutine ends (it used to
// wait for a verdict on that "connection" forever).
func TestFailedDialWithTypedNilConn(t *testing.T) {
	nw := newNetwork(t)
	var a *node
	boom := errors.New("unreachable")
	a = nw.addWith(t, func(c *Config) {
		c.Dial = func(context.Context, peer.AddrInfo) (Conn, error) {
			var none *peerConnPtr
			return none, boom
		}
	})
	b := nw.add(t)
	g0 := runtime.NumGoroutine()
	if _, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the dial's error", err)
	}
	eventually(t, "the dial's goroutine to end", func() bool { return runtime.NumGoroutine() <= g0 })
}

// peerConnPtr is a Conn with pointer methods, for a typed nil.
type peerConnPtr struct{ peerConn }

// A dial that panics answers every waiter, and later connects work.
func TestPanickingDialAnswersWaiters(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	a.dialHook = func(context.Context, peer.ID) error { panic("dialer bug") }
	if _, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id}); !errors.Is(err, ErrDialPanic) {
		t.Fatalf("got %v, want ErrDialPanic", err)
	}
	a.dialHook = nil
	a.connect(t, b)
}

// A connect after a close never returns the closing session.
func TestConnectAfterCloseDialsAnew(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	first := a.connect(t, b)
	_ = first.Close(broadcast.CodeCancel, "bye")
	second := a.connect(t, b) // immediately: the actor may not have seen the end yet
	if second == first || !second.live() {
		t.Fatal("connect handed out the closed session")
	}
}

// When both ends dial at once, both sessions are kept,
// Connect returns the oldest live one, and when it ends the other takes over
// without a new dial. A late end of the old session never removes the new.
func TestSimultaneousDialKeepsBoth(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	// Each dial waits until the other has started, so both actors have
	// decided to dial before either sees the other's connection (under load,
	// one Connect could otherwise arrive after the peer's session and reuse it).
	var started sync.WaitGroup
	started.Add(2)
	meet := func(ctx context.Context, _ peer.ID) error {
		started.Done()
		done := make(chan struct{})
		go func() { started.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.dialHook, b.dialHook = meet, meet
	var wg sync.WaitGroup
	wg.Go(func() { a.connect(t, b) })
	wg.Go(func() { b.connect(t, a) })
	wg.Wait()
	a.dialHook, b.dialHook = nil, nil
	eventually(t, "two sessions on each side", func() bool {
		return len(a.sessionsTo(t, b.id)) == 2 && len(b.sessionsTo(t, a.id)) == 2
	})
	both := a.sessionsTo(t, b.id)
	// A publication made now reaches both sessions; neither replaced the other.
	cam := broadcast.New(broadcast.Config{})
	if _, err := a.a.Publish(testCtx(t), "cam", cam.Consume()); err != nil {
		t.Fatal(err)
	}
	for _, s := range b.sessionsTo(t, a.id) {
		eventually(t, "cam on both of b's sessions", func() bool { return announced(s, "cam") })
	}
	oldest := both[0]
	if got := a.connect(t, b); got != oldest {
		t.Fatalf("Connect returned session %d, want the oldest %d", got.ID(), oldest.ID())
	}
	_ = oldest.Close(broadcast.CodeCancel, "one goes")
	eventually(t, "the closed session to go", func() bool { return len(a.sessionsTo(t, b.id)) == 1 })
	dials := a.dials.Load()
	if got := a.connect(t, b); got != both[1] || a.dials.Load() != dials {
		t.Fatal("the remaining live session must be handed out without a new dial")
	}
}

// Checklist 7: an incoming session from X completes a pending connect to X.
func TestIncomingSessionCompletesPendingConnect(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	hold := make(chan struct{})
	defer close(hold)
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		select { // a's own dial hangs until the test ends
		case <-hold:
		case <-ctx.Done():
		}
		return errors.New("gave up")
	}
	got := make(chan *Session, 1)
	go func() {
		s, _ := a.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id})
		got <- s
	}()
	eventually(t, "a's dial to start", func() bool { return a.dials.Load() == 1 })
	b.connect(t, a) // b reaches a first
	select {
	case s := <-got:
		if s == nil || s.Dialed() || s.RemotePeer() != b.id {
			t.Fatalf("pending connect got %v, want the incoming session from b", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the incoming session did not answer the pending connect")
	}
}

// A publication reaches sessions made before and after it; unpublishing
// withdraws it; a broadcast that ends is unpublished and its name freed.
func TestPublishReachesEverySession(t *testing.T) {
	nw := newNetwork(t)
	a, b, c := nw.add(t), nw.add(t), nw.add(t)
	toA := b.connect(t, a) // session exists before the publish
	cam := broadcast.New(broadcast.Config{})
	pub, err := a.a.Publish(testCtx(t), "cam", cam.Consume())
	if err != nil {
		t.Fatal(err)
	}
	fromC := c.connect(t, a) // and one made after
	for _, s := range []*Session{toA, fromC} {
		eventually(t, "cam announced", func() bool { return announced(s, "cam") })
	}
	if names, _ := a.a.Published(testCtx(t)); len(names) != 1 || names[0] != "cam" {
		t.Fatalf("Published = %v", names)
	}
	pub.Unpublish()
	pub.Unpublish() // idempotent
	for _, s := range []*Session{toA, fromC} {
		eventually(t, "cam withdrawn", func() bool { return !announced(s, "cam") })
	}
	if cam.Consume().Err() != nil {
		t.Fatal("unpublish must not end the broadcast")
	}

	mic := broadcast.New(broadcast.Config{})
	if _, err := a.a.Publish(testCtx(t), "mic", mic.Consume()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mic announced", func() bool { return announced(toA, "mic") })
	mic.Finish()
	eventually(t, "mic unannounced after its end", func() bool { return !announced(toA, "mic") })
	eventually(t, "the name mic freed", func() bool {
		_, err := a.a.Publish(testCtx(t), "mic", broadcast.New(broadcast.Config{}).Consume())
		return err == nil
	})
}

// One name holds one publication; the old publication's
// end never removes a newer one.
func TestDuplicatePublishAndRepublish(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	old := broadcast.New(broadcast.Config{})
	oldPub, _ := a.a.Publish(testCtx(t), "cam", old.Consume())
	_, err := a.a.Publish(testCtx(t), "cam", broadcast.New(broadcast.Config{}).Consume())
	if !errors.Is(err, ErrDuplicate) || !errors.Is(err, broadcast.ErrDuplicate) || broadcast.CodeOf(err) != broadcast.CodeDuplicate {
		t.Fatalf("second publish: %v (code %v), want ErrDuplicate matching broadcast.ErrDuplicate", err, broadcast.CodeOf(err))
	}
	if _, err := a.a.Publish(testCtx(t), "mic", nil); !errors.Is(err, ErrNilBroadcast) {
		t.Fatalf("publish of nil: %v, want ErrNilBroadcast", err)
	}
	oldPub.Unpublish()
	fresh := broadcast.New(broadcast.Config{})
	if _, err := a.a.Publish(testCtx(t), "cam", fresh.Consume()); err != nil {
		t.Fatal(err)
	}
	old.Finish() // the old broadcast ends later: it must not take the new publication down
	s := b.connect(t, a)
	eventually(t, "the new cam announced", func() bool {
		got := s.Remote().Get("cam")
		return got != nil
	})
	// The old broadcast's watcher either stopped at Unpublish or, if it
	// wrongly still watched, handed its end to the actor on an unbuffered
	// channel before exiting. Once it is gone the actor has handled that end,
	// so the query below is answered after any wrong removal.
	eventually(t, "the old publication's watcher gone", func() bool { return publicationWatchers() == 1 })
	if names, _ := a.a.Published(testCtx(t)); len(names) != 1 {
		t.Fatalf("published %v after the old broadcast ended, want [cam]", names)
	}
}

// A broadcast that ended frees its name at once: publishing the next one
// right after Finish succeeds, though the actor has yet to hear of the
// end, and that late news leaves the new publication alone.
func TestPublishRightAfterBroadcastEnds(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	s := b.connect(t, a)
	for i := range 20 { // the end's report races the next Publish: try it often
		old := broadcast.New(broadcast.Config{})
		if _, err := a.a.Publish(testCtx(t), "cam", old.Consume()); err != nil {
			t.Fatalf("round %d: publish: %v", i, err)
		}
		old.Finish()
		fresh := broadcast.New(broadcast.Config{})
		if _, err := a.a.Publish(testCtx(t), "cam", fresh.Consume()); err != nil {
			t.Fatalf("round %d: publish right after the old broadcast's Finish: %v", i, err)
		}
		eventually(t, "the old publication's watcher gone", func() bool { return publicationWatchers() == 1 })
		if names, _ := a.a.Published(testCtx(t)); len(names) != 1 {
			t.Fatalf("round %d: published %v after the old broadcast's end was handled, want [cam]", i, names)
		}
		eventually(t, "the new cam announced", func() bool {
			got := s.Remote().Get("cam")
			return got != nil && got.Err() == nil
		})
		fresh.Finish()
	}
}

// Local holds what is published, for the node's own subscribers: until
// Unpublish, until the broadcast ends, and until Shutdown.
func TestLocalHoldsThePublications(t *testing.T) {
	nw := newNetwork(t)
	a := nw.add(t)
	cam, mic, tv := broadcast.New(broadcast.Config{}), broadcast.New(broadcast.Config{}), broadcast.New(broadcast.Config{})
	camPub, _ := a.a.Publish(testCtx(t), "cam", cam.Consume())
	_, _ = a.a.Publish(testCtx(t), "mic", mic.Consume())
	_, _ = a.a.Publish(testCtx(t), "tv", tv.Consume())
	for _, name := range []string{"cam", "/mic/", "tv"} {
		if a.a.Local().Get(name) == nil {
			t.Fatalf("%q not in Local while published", name)
		}
	}
	camPub.Unpublish()
	if a.a.Local().Get("cam") != nil {
		t.Fatal("cam in Local after Unpublish")
	}
	mic.Finish()
	if a.a.Local().Get("mic") != nil {
		t.Fatal("mic in Local after its broadcast ended")
	}
	if err := a.a.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if a.a.Local().Get("tv") != nil {
		t.Fatal("tv in Local after Shutdown")
	}
}

// Shutdown closes sessions, fails pending connects,
// refuses new work, is idempotent and leaves nothing behind.
func TestShutdown(t *testing.T) {
	nw := newNetwork(t)
	a, b, c := nw.add(t), nw.add(t), nw.add(t)
	s := a.connect(t, b)
	hold := make(chan struct{})
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		select {
		case <-hold:
		case <-ctx.Done():
		}
		return ctx.Err()
	}
	pending := make(chan error, 1)
	go func() {
		_, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: c.id})
		pending <- err
	}()
	eventually(t, "the pending dial", func() bool { return a.dials.Load() == 2 })
	if err := a.a.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	close(hold)
	if err := <-pending; !errors.Is(err, ErrShutdown) {
		t.Errorf("pending connect: %v, want ErrShutdown", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("a session outlived shutdown")
	}
	if _, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id}); !errors.Is(err, ErrShutdown) {
		t.Errorf("connect after shutdown: %v", err)
	}
	if _, err := a.a.Publish(testCtx(t), "x", broadcast.New(broadcast.Config{}).Consume()); !errors.Is(err, ErrShutdown) {
		t.Errorf("publish after shutdown: %v", err)
	}
	if got, _ := a.a.Sessions(testCtx(t)); len(got) != 0 {
		t.Errorf("sessions after shutdown: %d", len(got))
	}
	if err := a.a.Shutdown(testCtx(t)); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	<-a.a.Stopped()
}

// Sessions without a libp2p identity (browsers) may be confined to a scope:
// they see only the publications under it, named relative to it, and several
// of them live side by side.
func TestScopedAnonymousSessions(t *testing.T) {
	nw := newNetwork(t)
	a := nw.add(t)
	for _, name := range []string{"room/a", "room/b/c", "room", "other"} {
		if _, err := a.a.Publish(testCtx(t), name, broadcast.New(broadcast.Config{}).Consume()); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{nw.cert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	client := func(scope string) *session.Session {
		cc, err := a.ln.Dial(testCtx(t), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.a.RegisterWith(testCtx(t), peerConn{sc, ""}, RegisterOptions{Scope: scope}); err != nil {
			t.Fatal(err)
		}
		s, err := session.New(cc, session.Config{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(0, "") })
		return s
	}
	scoped, whole := client("/room/"), client("")
	eventually(t, "scoped view", func() bool {
		return scoped.Remote().Get("a") != nil && scoped.Remote().Get("b/c") != nil
	})
	eventually(t, "whole view", func() bool { return whole.Remote().Get("other") != nil && whole.Remote().Get("room") != nil })
	for _, p := range []string{"room/a", "room", "other", ""} {
		if scoped.Remote().Get(p) != nil {
			t.Errorf("scoped session sees %q", p)
		}
	}
	anon := a.sessionsTo(t, "")
	if len(anon) != 2 || anon[0].Scope() != "room" || anon[1].Scope() != "" {
		t.Fatalf("anonymous sessions %v", anon)
	}
	// A publication made later reaches the scoped session too.
	if _, err := a.a.Publish(testCtx(t), "room/late", broadcast.New(broadcast.Config{}).Consume()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "late publication in scope", func() bool { return scoped.Remote().Get("late") != nil })
}

// publicationWatchers counts the goroutines watching a publication's end.
func publicationWatchers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "actor.(*Actor).publish.func")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// A peer that subscribes the moment its session is up, without waiting for
// an announcement (gomoqt does), finds every publication: the actor offers
// them before the session starts serving.
func TestSubscribeAtOnceFindsPublications(t *testing.T) {
	nw := newNetwork(t)
	a := nw.add(t)
	b := broadcast.New(broadcast.Config{})
	if _, err := b.CreateTrack(broadcast.Track{Name: "video"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.a.Publish(testCtx(t), "cam", b.Consume()); err != nil {
		t.Fatal(err)
	}
	// Many other publications make offering take a while, and cam is offered
	// at a random place among them (map order).
	for i := range 2000 {
		if _, err := a.a.Publish(testCtx(t), fmt.Sprint("other/", i), broadcast.New(broadcast.Config{}).Consume()); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{nw.cert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	for round := range 10 {
		cc, err := a.ln.Dial(testCtx(t), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		client, err := session.New(cc, session.Config{Logger: quiet(), Interest: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		// The SUBSCRIBE is on its way before the server side is registered.
		subscribed := make(chan error, 1)
		go func() {
			tc, err := client.Subscribe(testCtx(t), "cam", "video", session.SubscribeOptions{})
			if err == nil {
				tc.Close()
			}
			subscribed <- err
		}()
		s, err := a.a.RegisterWith(testCtx(t), peerConn{sc, ""}, RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-subscribed; err != nil {
			t.Fatalf("round %d: a subscription sent at once: %v", round, err)
		}
		_ = client.Close(0, "")
		<-s.Context().Done()
	}
}
