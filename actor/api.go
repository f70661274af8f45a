package actor

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
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

// await waits for run's reply.
func await[T any](ctx context.Context, a *Actor, reply <-chan T) (T, error) {
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	case <-a.stopped:
		select {
		case r := <-reply: // answered as the actor stopped
			return r, nil
		default:
		}
		var zero T
		return zero, ErrShutdown
	}
}

// Connect returns the session to addr.ID: the oldest live one if any,
// otherwise the outcome of one dial that every concurrent caller shares. A
// failed dial fails every waiter with the same error, and the next call dials
// again. An incoming session from the peer answers a pending connect.
func (a *Actor) Connect(ctx context.Context, addr peer.AddrInfo) (*Session, error) {
	reply := make(chan sessionResult, 1)
	if err := send(ctx, a, a.connectc, connectReq{addr: addr, reply: reply}); err != nil {
		return nil, err
	}
	r, err := await(ctx, a, reply)
	if err != nil {
		return nil, err
	}
	return r.s, r.err
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
}

// RegisterWith is Register with options.
func (a *Actor) RegisterWith(ctx context.Context, conn Conn, opts RegisterOptions) (*Session, error) {
	opts.Scope = broadcast.CleanPath(opts.Scope)
	reply := make(chan sessionResult, 1)
	if err := send(ctx, a, a.registerc, registerReq{conn: conn, opts: opts, reply: reply}); err != nil {
		_ = conn.CloseWithError(uint32(broadcast.CodeCancel), "not registered")
		return nil, err
	}
	r, err := await(ctx, a, reply)
	if err != nil {
		return nil, err // the actor closes the session itself at shutdown
	}
	return r.s, r.err
}

// Publish offers b at name to every current and future session until it is
// unpublished or b ends. A name that is taken returns ErrDuplicate.
func (a *Actor) Publish(ctx context.Context, name string, b *broadcast.Consumer) (*Publication, error) {
	reply := make(chan publishResult, 1)
	if err := send(ctx, a, a.publishc, publishReq{name: name, b: b, reply: reply}); err != nil {
		return nil, err
	}
	r, err := await(ctx, a, reply)
	if err != nil {
		return nil, err
	}
	return r.p, r.err
}

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
		if err == ErrShutdown {
			return snapshot{}, nil // nothing is published and no session lives
		}
		return snapshot{}, err
	}
	return await(ctx, a, reply)
}

// Shutdown refuses new connects and publishes (ErrShutdown), fails pending
// connects, unpublishes everything and closes every session, waiting for
// them up to the configured grace. It is idempotent; it returns ctx's error
// if ctx ends first, though the shutdown goes on.
func (a *Actor) Shutdown(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case a.shutdownc <- shutdownReq{reply: reply}:
	case <-a.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ShuttingDown is closed once Shutdown has begun.
func (a *Actor) ShuttingDown() <-chan struct{} { return a.shutting }

// Stopped is closed once the actor has finished shutting down.
func (a *Actor) Stopped() <-chan struct{} { return a.stopped }
