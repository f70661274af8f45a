package actor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"

	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// loopConns makes real QUIC connections on loopback for a test to register by
// hand, each labelled with a fresh peer ID.
type loopConns struct {
	ln, dialer *rawquic.Endpoint
}

func newLoopConns(t *testing.T, nw *network) *loopConns {
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{nw.cert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := rawquic.NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(); _ = ln.Close() })
	return &loopConns{ln: ln, dialer: d}
}

// accepted is the listening side of a new connection.
func (w *loopConns) accepted(t *testing.T) Conn {
	t.Helper()
	c, err := w.dialer.Dial(testCtx(t), w.ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "") })
	sc, err := w.ln.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return peerConn{sc, newPeerID(t)}
}

func register(t *testing.T, a *Actor, c Conn) *Session {
	t.Helper()
	s, err := a.Register(testCtx(t), c, false)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func subscribe(t *testing.T, a *Actor, queue int) *Incoming {
	t.Helper()
	in, err := a.Incoming(testCtx(t), queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

// drain reads in until it closes, sending each session's ID on the result.
func drain(in *Incoming) <-chan uint64 {
	out := make(chan uint64, 64)
	go func() {
		defer close(out)
		for {
			s, err := in.Next(context.Background())
			if err != nil {
				return
			}
			out <- s.ID()
		}
	}()
	return out
}

// recv receives from c, failing the test if nothing comes in time.
func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-testCtx(t).Done():
		t.Fatal("nothing received")
		panic("unreachable")
	}
}

func subscribers(t *testing.T, a *Actor) int {
	snap, err := a.query(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return snap.subscribers
}

// Every concurrent subscriber receives every accepted session registered
// while it is subscribed, through a queue of one: the subscribers do not
// share them out. Sessions this node dialed go to no one.
func TestIncomingEverySubscriberSeesEverySession(t *testing.T) {
	for _, subs := range []int{2, 10} {
		t.Run(fmt.Sprint(subs), func(t *testing.T) {
			nw := newNetwork(t)
			n, other := nw.add(t), nw.add(t)
			w := newLoopConns(t, nw)
			var got []<-chan uint64
			var ins []*Incoming
			for range subs {
				in := subscribe(t, n.a, 1)
				ins = append(ins, in)
				got = append(got, drain(in))
			}
			n.connect(t, other) // dialed: not an incoming session
			const sessions = 6
			want := map[uint64]bool{}
			for range sessions {
				want[register(t, n.a, w.accepted(t)).ID()] = true
			}
			for _, in := range ins {
				in.Close()
			}
			for i, c := range got {
				seen := map[uint64]bool{}
				for id := range c {
					if !want[id] || seen[id] {
						t.Fatalf("subscriber %d got session %d: not an accepted one, or twice", i, id)
					}
					seen[id] = true
				}
				if len(seen) != sessions {
					t.Fatalf("subscriber %d saw %d of %d sessions", i, len(seen), sessions)
				}
			}
			if k := subscribers(t, n.a); k != 0 {
				t.Fatalf("%d subscribers left after every one closed", k)
			}
		})
	}
}

// A subscriber that starts late gets the accepted sessions still open,
// oldest first, then the ones registered after it: none twice, none
// dialed, none that ended before it started, and none is missed between
// the two (a registration racing the subscription lands on one side).
func TestIncomingBacklog(t *testing.T) {
	nw := newNetwork(t)
	n, other := nw.add(t), nw.add(t)
	w := newLoopConns(t, nw)
	n.connect(t, other) // dialed: not an incoming session
	s1 := register(t, n.a, w.accepted(t))
	gone := register(t, n.a, w.accepted(t))
	s2 := register(t, n.a, w.accepted(t))
	gone.Close(0, "gone")
	eventually(t, "the closed session gone", func() bool {
		l, _ := n.a.Sessions(testCtx(t))
		for _, s := range l {
			if s == gone {
				return false
			}
		}
		return true
	})
	// Registrations race the subscription: each session comes once,
	// from the backlog or from the queue.
	var conns []Conn
	for range 4 {
		conns = append(conns, w.accepted(t))
	}
	racing := make(chan uint64, 4)
	go func() {
		defer close(racing)
		for _, c := range conns {
			s, err := n.a.Register(testCtx(t), c, false)
			if err != nil {
				return // the count below comes up short
			}
			racing <- s.ID()
		}
	}()
	in := subscribe(t, n.a, 8)
	for _, want := range []*Session{s1, s2} {
		s, err := in.Next(testCtx(t))
		if err != nil || s != want {
			t.Fatalf("backlog: got %v, %v; want session %d", s, err, want.ID())
		}
	}
	want := map[uint64]bool{}
	for id := range racing {
		want[id] = true
	}
	if len(want) != len(conns) {
		t.Fatalf("%d of %d racing registrations", len(want), len(conns))
	}
	later := register(t, n.a, w.accepted(t))
	want[later.ID()] = true
	for len(want) > 0 {
		s, err := in.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !want[s.ID()] {
			t.Fatalf("session %d: not expected, or twice (waiting for %v)", s.ID(), want)
		}
		delete(want, s.ID())
	}
	last := register(t, n.a, w.accepted(t)) // nothing extra before it
	if s, err := in.Next(testCtx(t)); err != nil || s != last {
		t.Fatalf("got %v, %v; want the last session %d", s, err, last.ID())
	}
}

// A subscriber that stops reading holds up the registrations that reach it
// with its queue full, and only those: the other subscriber receives each
// session at once, and closing the stalled one releases the registration
// that waits for it and every later one.
func TestIncomingStalledSubscriber(t *testing.T) {
	nw := newNetwork(t)
	n := nw.add(t)
	w := newLoopConns(t, nw)
	stalled := subscribe(t, n.a, 1)
	reader := drain(subscribe(t, n.a, 1))

	s1 := register(t, n.a, w.accepted(t)) // fills stalled's queue
	if id := recv(t, reader); id != s1.ID() {
		t.Fatalf("reader got session %d, want %d", id, s1.ID())
	}

	c2 := w.accepted(t)
	returned := make(chan *Session, 1)
	go func() {
		s, _ := n.a.Register(context.Background(), c2, false)
		returned <- s
	}()
	id2 := recv(t, reader) // the reader is not held up by the stalled subscriber
	select {
	case <-returned:
		t.Fatal("registration returned although a subscriber's queue is full")
	default:
	}

	stalled.Close()
	if s2 := recv(t, returned); s2 == nil || s2.ID() != id2 {
		t.Fatalf("held registration returned %v, want session %d", s2, id2)
	}
	if _, err := stalled.Next(testCtx(t)); !errors.Is(err, ErrIncomingClosed) {
		t.Fatalf("Next after Close: %v, want ErrIncomingClosed", err)
	}
	s3 := register(t, n.a, w.accepted(t)) // nothing waits for the closed one
	if id := recv(t, reader); id != s3.ID() {
		t.Fatalf("reader got session %d, want %d", id, s3.ID())
	}
}

// A registration waiting for a full queue gives up on it when its context
// ends: the session is registered and returned all the same.
func TestIncomingRegistrationContextEnds(t *testing.T) {
	nw := newNetwork(t)
	n := nw.add(t)
	w := newLoopConns(t, nw)
	stalled := subscribe(t, n.a, 1)
	register(t, n.a, w.accepted(t))

	ctx, cancel := context.WithCancel(testCtx(t))
	c := w.accepted(t)
	returned := make(chan error, 1)
	go func() {
		_, err := n.a.Register(ctx, c, false)
		returned <- err
	}()
	eventually(t, "the second session registered", func() bool { l, _ := n.a.Sessions(testCtx(t)); return len(l) == 2 })
	cancel()
	if err := recv(t, returned); err != nil {
		t.Fatalf("Register after its context ended while announcing: %v, want the session", err)
	}
	if l, _ := n.a.Sessions(testCtx(t)); len(l) != 2 {
		t.Fatalf("%d sessions, want 2", len(l))
	}
	if s, err := stalled.Next(testCtx(t)); err != nil || s == nil {
		t.Fatalf("the queued session: %v %v", s, err)
	}
}

// With no subscriber nothing is queued and registration never waits: 100
// accepted sessions register one after another.
func TestIncomingNoSubscriberNeverStalls(t *testing.T) {
	nw := newNetwork(t)
	n := nw.add(t)
	w := newLoopConns(t, nw)
	in := subscribe(t, n.a, 1) // one that came and went holds nothing
	in.Close()
	for range 100 {
		register(t, n.a, w.accepted(t))
	}
	if l, _ := n.a.Sessions(testCtx(t)); len(l) != 100 {
		t.Fatalf("%d sessions, want 100", len(l))
	}
}

// Shutdown ends every subscriber, releases a registration waiting for one,
// and refuses new subscribers.
func TestIncomingShutdown(t *testing.T) {
	nw := newNetwork(t)
	n := nw.add(t)
	w := newLoopConns(t, nw)
	in := subscribe(t, n.a, 1)
	register(t, n.a, w.accepted(t))
	c := w.accepted(t)
	returned := make(chan struct{})
	go func() {
		_, _ = n.a.Register(context.Background(), c, false)
		close(returned)
	}()
	eventually(t, "the second session registered", func() bool { l, _ := n.a.Sessions(testCtx(t)); return len(l) == 2 })
	if err := n.a.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	recv(t, returned)
	if _, err := in.Next(testCtx(t)); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Next at shutdown: %v, want ErrShutdown", err)
	}
	if _, err := n.a.Incoming(testCtx(t), 1); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Incoming after shutdown: %v, want ErrShutdown", err)
	}
}
