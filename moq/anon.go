package moq

// Sessions with clients without a libp2p identity: browsers, Node and
// moql:// clients a listener accepts (package moq/server's Server, or the
// caller's own) and servers this node dials (Open).

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// ErrTooManyPending refuses a connection whose peer (or, for a server's
// clients, source address) already has its bound of sessions waiting for
// admission; the code travels to the peer as the close code.
var ErrTooManyPending = &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many sessions waiting for admission"}

// Open runs a moq-lite session over a connection this node dialed to a
// server without a libp2p identity: moql:// (rawquic.Dial), WebTransport
// (webtransport.Dial) or WebSocket (websocket.Dial). The session is the
// node's like Connect's: offered every publication, listed by Sessions,
// with an empty peer ID, and it never answers a Connect. This node is the
// client of the compat SETUP if the connection needs one. The node owns c
// from the call on: it is closed if the session cannot start.
func (m *Moq) Open(ctx context.Context, c transport.Conn) (*Session, error) {
	return m.OpenWith(ctx, c, OpenOptions{})
}

// Admission is one of the node's admission slots (WithPendingAdmissions,
// shared with the node's libp2p transports), held by a listener of clients
// without a libp2p identity for one connection: taken before the listener
// accepts it, so that a flood waits in the listener's own bounded queue
// rather than in goroutines, and given back once the connection is refused
// or its session has reached every IncomingSessions iteration, so that an
// iteration that stopped reading pauses these listeners too. Package
// moq/server uses it; so can a listener of the caller's own.
type Admission struct {
	m    *Moq
	used atomic.Bool
}

// Admission waits for one of the node's admission slots. It fails with
// ctx's error, or ErrShutdown once the node shuts down.
func (m *Moq) Admission(ctx context.Context) (*Admission, error) {
	if err := m.acquireAdmission(ctx); err != nil {
		return nil, err
	}
	return &Admission{m: m}, nil
}

// Release gives the slot back unused. It does nothing after Accept or an
// earlier Release.
func (a *Admission) Release() {
	if a.used.CompareAndSwap(false, true) {
		a.m.releaseAdmission()
	}
}

// Accept makes c, a connection from a client without a libp2p identity,
// one of the node's sessions: it runs the node's admission (WithAdmission,
// with the empty peer ID), then registers the session confined to scope (a
// broadcast path prefix, "" for everything: names on the session are
// relative to it) and hands it to every IncomingSessions iteration, then
// gives the slot back. ctx bounds it all: an admission still running when
// ctx ends (or the node shuts down) is a refusal with code Cancel, and an
// iteration whose queue is full is waited for until ctx ends (the session
// is registered all the same; that iteration misses it). The node owns c
// from the call on: a refused connection is closed with the refusal's code
// (a *broadcast.Error's own, Unauthorized for other errors), and the
// error is returned. An Admission accepts one connection; a second Accept
// closes c and fails.
func (a *Admission) Accept(ctx context.Context, c transport.Conn, scope string) (*Session, error) {
	return a.AcceptWith(ctx, c, AcceptOptions{Scope: scope})
}

// AcceptOptions are AcceptWith's options.
type AcceptOptions struct {
	// Scope confines the session, as Accept's scope.
	Scope string
	// PeerSetup is the client's lite-05 SETUP when the listener read it
	// first (session.AcceptSetup) to route a raw QUIC session by its
	// path; the session takes it as read.
	PeerSetup *wire.Setup
}

// AcceptWith is Accept with options.
func (a *Admission) AcceptWith(ctx context.Context, c transport.Conn, opts AcceptOptions) (*Session, error) {
	if !a.used.CompareAndSwap(false, true) {
		_ = c.CloseWithError(uint32(broadcast.CodeCancel), "no session")
		return nil, errors.New("moq: Admission used twice")
	}
	m := a.m
	defer m.releaseAdmission()
	// Admission also ends with the node's shutdown, so a slow admission
	// never holds Shutdown up.
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	conn := anonConn{c}
	if err := m.admitted(actx, conn); err != nil {
		return nil, err
	}
	s, err := m.a.RegisterWith(ctx, conn, actor.RegisterOptions{Scope: opts.Scope, PeerSetup: opts.PeerSetup})
	if err != nil {
		return nil, err
	}
	return &Session{s: s, m: m}, nil
}

// anonConn is a connection to or from a peer without a libp2p identity.
type anonConn struct{ transport.Conn }

func (anonConn) RemotePeer() peer.ID { return "" }

// Unwrap gives the session the transport's connection, for its optional
// interfaces (datagrams: transport.AsDatagramConn).
func (c anonConn) Unwrap() transport.Conn { return c.Conn }

// Stats forwards the transport's counters (zero where it has none).
func (c anonConn) Stats() transport.Stats {
	if sc, ok := c.Conn.(transport.StatsConn); ok {
		return sc.Stats()
	}
	return transport.Stats{}
}

// refusal is the close code and reason for an admission error: a
// *broadcast.Error's own (the code travels on its own), else Unauthorized
// with the error's text.
func refusal(err error) (broadcast.Code, string) {
	var e *broadcast.Error
	if errors.As(err, &e) {
		return e.Code, e.Reason
	}
	return broadcast.CodeUnauthorized, err.Error()
}
