package moq

import (
	"errors"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/session"
)

// Errors. They match with errors.Is.
var (
	// ErrShutdown: the Moq is shut down (or shutting down).
	ErrShutdown = actor.ErrShutdown
	// ErrDuplicate: the broadcast name is already published. It matches
	// broadcast.ErrDuplicate too.
	ErrDuplicate = actor.ErrDuplicate
	// ErrSelfConnect: Connect was given the node's own peer ID.
	ErrSelfConnect = errors.New("moq: connect to this node's own peer ID")
	// ErrNilBroadcast: Publish was given a nil broadcast.
	ErrNilBroadcast = actor.ErrNilBroadcast
	// ErrTooManyDials: a connect needed a new dial while PeerLimits.PendingDials
	// dials were in flight.
	ErrTooManyDials = actor.ErrTooManyDials
	// ErrNotAnnounced: the session ended before the peer announced the
	// broadcast that Session.Subscribe (or SubscribeTicket) was waiting for;
	// the error returned wraps why the session ended when that is known.
	ErrNotAnnounced = errors.New("moq: broadcast not announced before the session ended")
	// ErrNoProviders: Moq.Subscribe found no session or DHT provider that
	// served the broadcast before its context ended; the error returned
	// matches ctx's error too.
	ErrNoProviders = discovery.ErrNoProviders
	// ErrNoGoaway: Session.Goaway on a moq-lite version without GOAWAY
	// (before lite-04).
	ErrNoGoaway = session.ErrNoGoaway
	// ErrNoFetch: Session.Fetch on a moq-lite version without FETCH
	// (before lite-05).
	ErrNoFetch = session.ErrNoFetch
	// ErrLimitedCircuit: a subscription made on a session through a
	// limited circuit relay (Path.Limited) ended because that session did,
	// typically when the relay cut the circuit after its data or time limit,
	// and neither a direct path nor the node's PathFallback took over. The
	// track's error wraps it and the session's own error.
	ErrLimitedCircuit = errors.New("moq: the limited circuit relay carrying the subscription ended it (its data or time limit), and neither a direct path nor a fallback took over")
)
