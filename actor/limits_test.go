package actor

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// racingCtx returns a context that ends at a random point within d,
// racing whatever the caller does with it.
func racingCtx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), rand.N(d))
	go func() { <-ctx.Done(); cancel() }()
	return ctx
}

// A Publish whose context ends as the actor applies it either returns the
// publication or leaves nothing published: never an error for a broadcast
// that is offered to every peer with no handle to withdraw it.
func TestCancelledPublishLeavesNoOrphan(t *testing.T) {
	nw := newNetwork(t)
	a := nw.add(t)
	const n = 2000
	var mu sync.Mutex
	var got []string
	var failed int
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := "b" + strconv.Itoa(i)
			_, err := a.a.Publish(racingCtx(time.Millisecond), name, broadcast.New(broadcast.Config{}).Consume())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				got = append(got, name)
			case errors.Is(err, context.DeadlineExceeded):
				failed++
			default:
				t.Errorf("publish %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	published, err := a.a.Published(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	t.Logf("%d publications returned, %d cancelled", len(got), failed)
	if !slices.Equal(published, got) {
		t.Fatalf("%d names published but %d publications returned to their callers: orphans", len(published), len(got))
	}
}

// acceptedConns makes n real QUIC connections to a fresh listener and
// returns the listener's ends, as a server hands them to RegisterWith.
func acceptedConns(t *testing.T, nw *network, from *rawquic.Endpoint, n int) []transport.Conn {
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{nw.cert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var out []transport.Conn
	for range n {
		cc, err := from.Dial(testCtx(t), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.CloseWithError(0, "") })
		sc, err := ln.Accept(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sc)
	}
	return out
}

// A RegisterWith whose context ends as the actor registers either returns
// the session (tracked, closed at shutdown) or closes the connection: a
// session the caller never saw must not escape it.
func TestCancelledRegisterLeavesNoOrphan(t *testing.T) {
	nw := newNetwork(t)
	a := nw.add(t)
	conns := acceptedConns(t, nw, a.ln, 64)
	results := make([]*Session, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			s, err := a.a.RegisterWith(racingCtx(5*time.Millisecond), peerConn{c, ""}, RegisterOptions{})
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("register: %v", err)
			}
			results[i] = s
		})
	}
	wg.Wait()
	live, err := a.a.Sessions(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var returned []*Session
	for i, s := range results {
		if s != nil {
			returned = append(returned, s)
			continue
		}
		// Refused: the caller's goroutine closed it before returning (the
		// rawquic wrapper's context follows quic-go's on a goroutine of
		// its own, a moment later).
		select {
		case <-conns[i].Context().Done():
		case <-time.After(5 * time.Second):
			t.Errorf("connection %d: RegisterWith failed but left it open", i)
		}
	}
	t.Logf("%d sessions returned, %d refused", len(returned), len(conns)-len(returned))
	slices.SortFunc(returned, func(x, y *Session) int { return int(x.ID()) - int(y.ID()) })
	if !slices.Equal(live, returned) {
		t.Fatalf("the actor holds %d sessions but returned %d to their callers: orphans", len(live), len(returned))
	}
}

// Callers that give up on a pending connect are forgotten: a caller that
// keeps retrying with short contexts while a dial hangs does not grow the
// dial's waiter list.
func TestAbandonedConnectWaitersAreForgotten(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	hold := make(chan struct{})
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		select {
		case <-hold:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for range 500 {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		_, err := a.a.Connect(ctx, peer.AddrInfo{ID: b.id})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	snap, err := a.a.query(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// The list is compacted when it doubles: it holds at most twice the
	// live waiters plus minCompact entries.
	if snap.pending != 1 || snap.waiters > 1 || snap.held > 2+minCompact {
		t.Fatalf("%d dials with %d waiters (%d entries) after 500 abandoned connects; want 1 dial, at most 1 waiter and %d entries",
			snap.pending, snap.waiters, snap.held, 2+minCompact)
	}
	close(hold)
	a.connect(t, b)
}

// MaxPendingDials bounds the dials in flight: one connect too many fails at
// once instead of starting a goroutine and a connection attempt.
func TestMaxPendingDials(t *testing.T) {
	nw := newNetwork(t)
	const limit = 3
	a := nw.addWith(t, func(c *Config) { c.MaxPendingDials = limit })
	hold := make(chan struct{})
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		select {
		case <-hold:
		case <-ctx.Done():
		}
		return errors.New("unreachable")
	}
	errs := make(chan error, limit)
	for range limit {
		p := newPeerID(t)
		go func() {
			_, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: p})
			errs <- err
		}()
	}
	eventually(t, "the dials to start", func() bool { return a.dials.Load() == limit })
	for range 10 {
		if _, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: newPeerID(t)}); !errors.Is(err, ErrTooManyDials) {
			t.Fatalf("connect beyond the limit: %v, want ErrTooManyDials", err)
		}
	}
	if n := a.dials.Load(); n != limit {
		t.Fatalf("%d dials started, want %d", n, limit)
	}
	close(hold)
	for range limit {
		<-errs
	}
	// The slots are free again.
	b := nw.add(t)
	a.dialHook = nil
	a.connect(t, b)
}

// hostileClient opens n QUIC connections to n's listener, all claiming to be
// peer id, and returns their client ends and how many the node refused
// before the dial returned (its close with BoundsExceeded can overtake the
// end of the handshake on a loaded machine).
func hostileClient(t *testing.T, nw *network, to *node, id peer.ID, n int) (_ []transport.Conn, refused int) {
	ep, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{nw.cert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	var out []transport.Conn
	for range n {
		c, err := ep.Dial(testCtx(t), to.ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: id.String()})
		var ce *transport.ConnError
		switch {
		case errors.As(err, &ce) && ce.Remote && ce.Code == uint32(broadcast.CodeBoundsExceeded):
			refused++
			continue
		case err != nil:
			t.Fatal(err)
		}
		out = append(out, c) // closed with ep
	}
	return out, refused
}

// One peer ID holds at most MaxSessionsPerPeer sessions: the rest are closed
// with BoundsExceeded, and what the node holds for the peer stays within the
// budget of that many sessions.
func TestMaxSessionsPerPeer(t *testing.T) {
	nw := newNetwork(t)
	a := nw.add(t) // the default limit
	hostile := newPeerID(t)
	goroutines, heap := runtime.NumGoroutine(), testutil.HeapAlloc()
	const n = 40
	conns, refused := hostileClient(t, nw, a, hostile, n)
	eventually(t, "every extra connection refused", func() bool {
		closed := refused
		for _, c := range conns {
			if c.Context().Err() != nil {
				closed++
			}
		}
		return closed == n-DefaultMaxSessionsPerPeer
	})
	for _, c := range conns {
		if c.Context().Err() == nil {
			continue
		}
		var ce *transport.ConnError
		if err := context.Cause(c.Context()); !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeBoundsExceeded) || !ce.Remote {
			t.Errorf("refused connection ended with %v, want BoundsExceeded from the node", err)
		}
	}
	if got := len(a.sessionsTo(t, hostile)); got != DefaultMaxSessionsPerPeer {
		t.Fatalf("%d sessions with one peer ID, want %d", got, DefaultMaxSessionsPerPeer)
	}
	conns = slices.DeleteFunc(conns, func(c transport.Conn) bool { return c.Context().Err() != nil })
	// Budget per kept session, both ends of it (the hostile client runs in
	// this process too): a dozen goroutines (the session's accept loops,
	// quic-go's) and 512 KiB; about 125 KiB are measured. Without the
	// limit, 40 sessions would be ten times that.
	dg, dh := runtime.NumGoroutine()-goroutines, testutil.HeapAlloc()-heap
	t.Logf("%d connections from one peer ID: %d sessions kept, +%d goroutines, %+d KiB heap", n, DefaultMaxSessionsPerPeer, dg, dh>>10)
	if maxG := DefaultMaxSessionsPerPeer * 12; dg > maxG {
		t.Errorf("+%d goroutines, budget %d", dg, maxG)
	}
	if maxH := int64(DefaultMaxSessionsPerPeer) * 512 << 10; dh > maxH {
		t.Errorf("%+d KiB heap, budget %d KiB", dh>>10, maxH>>10)
	}
	// Another peer is not affected, and a freed slot can be used again.
	b := nw.add(t)
	b.connect(t, a)
	_ = a.sessionsTo(t, hostile)[0].Close(broadcast.CodeCancel, "make room")
	eventually(t, "the slot freed", func() bool { return len(a.sessionsTo(t, hostile)) == DefaultMaxSessionsPerPeer-1 })
	fresh, refused := hostileClient(t, nw, a, hostile, 1)
	if refused > 0 {
		t.Fatal("the dial into the freed slot was refused")
	}
	again := fresh[0]
	eventually(t, "a new session in the freed slot", func() bool {
		return len(a.sessionsTo(t, hostile)) == DefaultMaxSessionsPerPeer
	})
	if again.Context().Err() != nil {
		t.Fatal("the session in the freed slot was refused")
	}
}

// stallConn is a real connection whose close hangs until released, like a
// peer that stopped reading while we write CLOSE.
type stallConn struct {
	Conn
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func newStallConn(c Conn) *stallConn {
	return &stallConn{Conn: c, entered: make(chan struct{}), release: make(chan struct{})}
}

func (c *stallConn) CloseWithError(code uint32, reason string) error {
	c.once.Do(func() { close(c.entered) })
	<-c.release
	return c.Conn.CloseWithError(code, reason)
}

// A connection whose close stalls never stalls the actor: while a refused
// session's close hangs, the node still publishes and connects.
func TestStalledCloseDoesNotBlockActor(t *testing.T) {
	nw := newNetwork(t)
	a := nw.addWith(t, func(c *Config) { c.MaxSessionsPerPeer = 1 })
	b, c := nw.add(t), nw.add(t)
	a.connect(t, b) // b's one session
	// b dials again: a refuses it, and closing it hangs.
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{nw.cert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	cc, err := b.ln.Dial(testCtx(t), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.CloseWithError(0, "") })
	sc, err := ln.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	stalled := newStallConn(peerConn{sc, b.id})
	refused := make(chan error, 1)
	go func() {
		_, err := a.a.Register(testCtx(t), stalled, false)
		refused <- err
	}()
	<-stalled.entered // the close is under way and hangs
	if _, err := a.a.Publish(testCtx(t), "cam", broadcast.New(broadcast.Config{}).Consume()); err != nil {
		t.Fatal(err)
	}
	a.connect(t, c)
	select {
	case <-stalled.release:
		t.Fatal("unreachable")
	default: // the close is provably still hanging
	}
	close(stalled.release)
	if err := <-refused; !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("register: %v, want ErrTooManySessions", err)
	}

	// The same for a dial whose connection the actor refuses: b's slot is
	// taken by the time a's dial returns, so the dial's goroutine closes it.
	d := nw.addWith(t, func(c *Config) { c.MaxSessionsPerPeer = 1 })
	dialedc := make(chan *stallConn, 1)
	hold := make(chan struct{})
	d.dialHook = func(ctx context.Context, _ peer.ID) error { <-hold; return nil }
	d.wrapDialed = func(c Conn) Conn {
		if c.RemotePeer() != b.id {
			return c
		}
		sc := newStallConn(c)
		dialedc <- sc
		return sc
	}
	got := make(chan *Session, 1)
	go func() {
		s, _ := d.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id})
		got <- s
	}()
	eventually(t, "d's dial to start", func() bool { return d.dials.Load() == 1 })
	b.connect(t, d) // fills d's one slot for b and answers the pending connect
	if s := <-got; s == nil || s.Dialed() {
		t.Fatalf("pending connect got %v, want b's incoming session", s)
	}
	close(hold)
	dialed := <-dialedc
	<-dialed.entered // the dial's goroutine is closing it, and hangs
	if _, err := d.a.Publish(testCtx(t), "cam", broadcast.New(broadcast.Config{}).Consume()); err != nil {
		t.Fatal(err)
	}
	d.connect(t, c)
	if len(d.sessionsTo(t, b.id)) != 1 {
		t.Fatal("the refused dial's session was kept")
	}
	close(dialed.release)
}
