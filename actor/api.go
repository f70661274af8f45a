package actor

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// send delivers a request to run, or fails with ErrShutdown once the actor is
// shutting down or gone, or with ctx's error.
func send[T any](ctx context.Context, a *Actor, c chan<- T, req T) error {
	select {
	case <-a.shutting:
		return ErrShutdown
	default:
	}
	select {
	case c <- req:
		return nil
	case <-a.shutting:
		return ErrShutdown
	case <-ctx.Done():
		return ctx.Err()
	}
}

// await waits for run's reply to a request guarded by cl. If ctx ends (or
// the actor stops) first, the caller abandons the request; when the actor
// took it first, the request was applied and its reply is on its way, so
// await returns that instead of an error that would orphan the result.
func await[T any](ctx context.Context, a *Actor, cl *claim, reply <-chan T) (T, error) {
	var zero T
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		if cl.abandon() {
			return zero, ctx.Err()
		}
	case <-a.stopped:
		if cl.abandon() {
			return zero, ErrShutdown
		}
	}
	return <-reply, nil // taken: run sends right after taking
}

// Connect returns the session to addr.ID: the oldest live one if any,
// otherwise the outcome of one dial that every concurrent caller shares. A
// failed dial fails every waiter with the same error, and the next call dials
// again. An incoming session from the peer answers a pending connect. When
// Config.MaxPendingDials dials to other peers are in flight, a connect that
// needs a new dial fails at once with ErrTooManyDials.
//
// A caller whose ctx ends stops waiting; the dial goes on (other callers may
// share it) and its session, if any, is kept like any other.
func (a *Actor) Connect(ctx context.Context, addr peer.AddrInfo) (*Session, error) {
	for {
		f, first := a.joinFlight(addr.ID)
		if first {
			// The flight lands however the actor ends: a request still
			// in connectc's buffer when run stops would otherwise never
			// be answered. So its callers wait on the flight and their
			// own context only: a burst of them parks on two channels
			// each, not also on one they all share.
			f.stop = context.AfterFunc(a.lifetime, func() {
				if f.w.abandon() {
					a.land(addr.ID, f, sessionResult{err: ErrShutdown})
				}
			})
			if err := send(ctx, a, a.connectc, connectReq{addr: addr, w: f.w}); err != nil {
				if f.w.abandon() { // never sent: only the shutdown hook can have landed it
					f.stop()
					a.land(addr.ID, f, sessionResult{err: errFlightAborted})
				}
				return nil, err
			}
		}
		f.callers.Add(1)
		select {
		case <-f.done:
			a.leave(addr.ID, f)
			if f.res.err == errFlightAborted {
				continue // its first caller gave up before sending: send ours
			}
			return f.res.s, f.res.err
		case <-ctx.Done():
			a.leave(addr.ID, f)
			return nil, ctx.Err()
		}
	}
}

// leave counts a caller out of a flight; the last one out of a landed
// flight releases it (Config.Released).
func (a *Actor) leave(p peer.ID, f *flight) {
	if f.callers.Add(-1) != 0 {
		return
	}
	select {
	case <-f.done:
		a.release(p, f)
	default: // land releases it
	}
}

// release calls Config.Released once per flight. Both land (after closing
// done, it finds no caller) and the last caller to leave (after counting
// itself out, it finds done closed) may get here: whichever comes second
// sees what the other did, so one of them always does.
func (a *Actor) release(p peer.ID, f *flight) {
	if a.cfg.Released != nil && f.released.CompareAndSwap(false, true) {
		go a.cfg.Released(p)
	}
}

// joinFlight returns the connect flight under way for p, or a new one
// (first: the caller sends its request). Joining takes no lock: a burst of
// callers for one peer does not queue on a mutex.
func (a *Actor) joinFlight(p peer.ID) (*flight, bool) {
	if f, ok := a.flights.Load(p); ok {
		return f.(*flight), false
	}
	f := &flight{done: make(chan struct{})}
	f.w = &waiter{land: func(res sessionResult) {
		f.stop() // the request was sent, so stop is set
		a.land(p, f, res)
	}}
	if cur, loaded := a.flights.LoadOrStore(p, f); loaded {
		return cur.(*flight), false
	}
	return f, true
}

// land ends a flight with res and wakes its callers (one close, however
// many wait); later callers start a new one. Whoever took the flight's
// claim lands it, once.
func (a *Actor) land(p peer.ID, f *flight, res sessionResult) {
	a.flights.CompareAndDelete(p, f)
	f.res = res
	close(f.done)
	if f.callers.Load() == 0 {
		a.release(p, f)
	}
}

// connectCallers is how many Connect callers wait for p (tests).
func (a *Actor) connectCallers(p peer.ID) int {
	if f, ok := a.flights.Load(p); ok {
		return int(f.(*flight).callers.Load())
	}
	return 0
}

// Register starts a session on an accepted (dialed = false) or otherwise
// established connection and offers it every publication.
func (a *Actor) Register(ctx context.Context, conn Conn, dialed bool) (*Session, error) {
	return a.RegisterWith(ctx, conn, RegisterOptions{Dialed: dialed})
}

// RegisterOptions describe a session being registered.
type RegisterOptions struct {
	// Dialed: this node opened the connection.
	Dialed bool
	// Scope, if set, confines the session to the publications under this
	// path, offered relative to it (a browser session accepted at URL path
	// /room sees room/clock as clock), as moq-relay scopes by URL path.
	Scope string
	// Client: this node is the connection's client, which matters only for
	// the compat SETUP (see session.Config.Client).
	Client bool
	// PeerSetup is the client's lite-05 SETUP, read before registering to
	// route the session by its path (session.AcceptSetup); see
	// session.Config.PeerSetup.
	PeerSetup *wire.Setup
	// Cost ranks the routes learnt over this session when forwarding
	// (Config.Forward): lower is preferred. 0 means DefaultLinkCost (a
	// direct link); a relayed link is conventionally 10.
	Cost int
}

// RegisterWith is Register with options. The actor owns conn from the call
// on: whenever RegisterWith returns an error, conn has been closed (with
// BoundsExceeded when the peer already holds Config.MaxSessionsPerPeer
// sessions, wrapping ErrTooManySessions), and whenever it returns a
// session, the actor tracks it and closes it at Shutdown, even if ctx ended
// meanwhile. The close runs on the caller's goroutine, never the actor's:
// a peer that stalls its close delays only this call.
//
// An accepted session (opts.Dialed false) is handed to every Incoming
// subscriber there was when it was registered before RegisterWith returns:
// with a subscriber's queue full, it waits for room, for that subscriber to
// close, for Shutdown, or for ctx to end (then the subscribers still
// waiting miss this session, which stays registered all the same). With no
// subscriber it never waits.
func (a *Actor) RegisterWith(ctx context.Context, conn Conn, opts RegisterOptions) (*Session, error) {
	opts.Scope = broadcast.CleanPath(opts.Scope)
	if err := checkProtocol(conn.Protocol()); err != nil {
		refuse(conn, err)
		return nil, err
	}
	w := newWaiter()
	if err := send(ctx, a, a.registerc, registerReq{conn: conn, opts: opts, w: w}); err != nil {
		refuse(conn, err)
		return nil, err
	}
	r, err := await(ctx, a, &w.claim, w.reply)
	if err == nil {
		err = r.err
	}
	if err != nil {
		refuse(conn, err)
		return nil, err
	}
	if len(r.subs) > 0 {
		a.announce(ctx, r.s, r.subs)
	}
	return r.s, nil
}

// checkProtocol refuses, before the actor sees it, a connection whose
// protocol no session can speak (session.New would close it itself, which
// is network I/O the actor must not do).
func checkProtocol(alpn string) error {
	if wire.NeedsSetup(alpn) {
		return nil
	}
	if _, ok := wire.VersionForALPN(alpn); ok { // lite-03, -04, -05
		return nil
	}
	return fmt.Errorf("moq: unsupported protocol %q", alpn)
}

// refuse closes a connection the actor did not register, with a code that
// says why.
func refuse(conn Conn, err error) {
	code, reason := broadcast.CodeCancel, "not registered"
	switch {
	case errors.Is(err, ErrTooManySessions):
		code, reason = broadcast.CodeBoundsExceeded, "too many sessions"
	case errors.Is(err, ErrShutdown):
		reason = "shutting down"
	case checkProtocol(conn.Protocol()) != nil:
		code, reason = broadcast.CodeVersion, "unsupported protocol"
	}
	_ = conn.CloseWithError(uint32(code), reason)
}

// Publish offers b at name to every current and future session until it is
// unpublished or b ends. A name that is taken returns ErrDuplicate; one
// whose broadcast has ended is free, even before the actor has heard of
// the end (Publish withdraws that publication then). A nil b returns
// ErrNilBroadcast. If ctx ends as the actor publishes, Publish returns the
// publication all the same: it never returns an error for a broadcast it
// published.
func (a *Actor) Publish(ctx context.Context, name string, b *broadcast.Consumer) (*Publication, error) {
	if b == nil { // checked here: the actor's goroutine would panic on it
		return nil, ErrNilBroadcast
	}
	req := publishReq{cl: new(claim), name: name, b: b, reply: make(chan publishResult, 1)}
	if err := send(ctx, a, a.publishc, req); err != nil {
		return nil, err
	}
	r, err := await(ctx, a, req.cl, req.reply)
	if err != nil {
		return nil, err
	}
	return r.p, r.err
}

// Local is the origin of the broadcasts this node publishes, by name: what
// Publish offers every session, for the node's own subscribers to read
// (Get, Announced) without a session. Safe for concurrent use; publish
// through Publish only.
func (a *Actor) Local() *broadcast.Origin { return a.own }

// Published lists the names of the current publications.
func (a *Actor) Published(ctx context.Context) ([]string, error) {
	s, err := a.query(ctx)
	return s.published, err
}

// Sessions lists the live sessions in registration order.
func (a *Actor) Sessions(ctx context.Context) ([]*Session, error) {
	s, err := a.query(ctx)
	return s.sessions, err
}

func (a *Actor) query(ctx context.Context) (snapshot, error) {
	reply := make(chan snapshot, 1)
	if err := send(ctx, a, a.queryc, queryReq{reply: reply}); err != nil {
		if errors.Is(err, ErrShutdown) {
			return snapshot{}, nil // nothing is published and no session lives
		}
		return snapshot{}, err
	}
	// A query changes nothing: the actor never takes its claim, so giving
	// up always succeeds.
	return await(ctx, a, new(claim), reply)
}

// Shutdown refuses new connects and publishes (ErrShutdown), fails pending
// connects, unpublishes everything and closes every session, waiting for
// them up to the configured grace, and returns once the actor has stopped.
// It returns ctx's error if ctx ends first (or had ended), though the
// shutdown begins and goes on all the same; a later call waits again, so a
// caller that gave up can still wait for the stop, as with net/http's
// Server.Shutdown.
func (a *Actor) Shutdown(ctx context.Context) error {
	req := shutdownReq{reply: make(chan struct{})}
	select {
	case a.shutdownc <- req:
	case <-a.stopped:
		return nil
	case <-ctx.Done():
		// Handed over on a goroutine that lasts until run takes it: the
		// shutdown must begin even for a caller that cannot wait.
		go func() {
			select {
			case a.shutdownc <- req:
			case <-a.stopped:
			}
		}()
		return ctx.Err()
	}
	select {
	case <-req.reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	// run replies just before it returns: wait for that too.
	select {
	case <-a.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ShuttingDown is closed once Shutdown has begun.
func (a *Actor) ShuttingDown() <-chan struct{} { return a.shutting }

// Stopped is closed once the actor has finished shutting down.
func (a *Actor) Stopped() <-chan struct{} { return a.stopped }
