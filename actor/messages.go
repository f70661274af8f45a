package actor

import (
	"errors"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Requests from callers. Each carries a buffered reply channel, so the actor
// never blocks on a caller that gave up, and a claim that settles who owns
// the outcome when the caller's context ends as the actor answers.

// claim decides, once, whether a request is applied. The actor takes it
// before it applies the request and then always replies; a caller whose
// context ended abandons it. Whoever loses learns the other's decision: a
// caller that fails to abandon waits for the reply (it is on its way) and
// returns it, and the actor skips a request it fails to take. So a request
// is never applied behind the back of a caller that reported failure: no
// publication without a handle, no session the caller thinks it closed.
type claim struct{ v atomic.Int32 }

const (
	claimOpen int32 = iota
	claimTaken
	claimAbandoned
)

// take is the actor's side: true means apply the request and reply.
func (c *claim) take() bool { return c.v.CompareAndSwap(claimOpen, claimTaken) }

// abandon is the caller's side: true means the request will not be applied.
func (c *claim) abandon() bool { return c.v.CompareAndSwap(claimOpen, claimAbandoned) }

// abandoned reports whether the caller gave up (the actor may then forget
// the request's reply channel).
func (c *claim) abandoned() bool { return c.v.Load() == claimAbandoned }

// waiter is a caller waiting for a session (a register), or the callers of
// a connect flight.
type waiter struct {
	claim
	reply chan sessionResult
	// land, if set, takes the answer instead of reply: a flight's, which
	// wakes all of its callers at once. It runs on run's goroutine and
	// must not block.
	land func(sessionResult)
}

func newWaiter() *waiter { return &waiter{reply: make(chan sessionResult, 1)} }

// answer delivers res unless the caller gave up; false if it had.
func (w *waiter) answer(res sessionResult) bool {
	if !w.take() {
		return false
	}
	if w.land != nil {
		w.land(res)
		return true
	}
	w.reply <- res
	return true
}

// flight is one connect request that the concurrent Connect callers for a
// peer share: the first sends it to run, the others wait for its answer
// with it, so a burst of callers costs run one request and wakes at once
// (a closed channel) rather than one reply each. A caller whose context
// ends just stops waiting; the waiter is abandoned only when the request
// can no longer be answered: it was never sent, or the actor is shutting
// down (and then the flight lands with ErrShutdown).
type flight struct {
	w        *waiter
	stop     func() bool   // unhooks the shutdown hook; set before the request is sent
	done     chan struct{} // closed once res is set
	res      sessionResult
	callers  atomic.Int32 // callers waiting
	released atomic.Bool  // Config.Released was called for it
}

// errFlightAborted lands a flight whose request never reached run (its
// first caller's context ended first): its other callers try again.
var errFlightAborted = errors.New("actor: connect request not sent")

type connectReq struct {
	addr peer.AddrInfo
	w    *waiter
}

type registerReq struct {
	conn Conn
	opts RegisterOptions
	w    *waiter
}

type publishReq struct {
	cl    *claim
	name  string
	b     *broadcast.Consumer
	reply chan publishResult
}

type unpublishReq struct {
	id    uint64
	reply chan struct{}
}

type queryReq struct {
	reply chan snapshot
}

type shutdownReq struct {
	reply chan struct{} // closed when every session has closed or the grace ran out
}

type sessionResult struct {
	s   *Session
	err error
	// subs are the incoming-session subscribers when an accepted session
	// was registered: RegisterWith's caller hands it to each.
	subs []*Incoming
}

type publishResult struct {
	p   *Publication
	err error
}

type snapshot struct {
	sessions  []*Session
	published []string
	pending   int // dials in flight
	waiters   int // connect callers waiting for them
	held      int // entries in the dials' waiter lists, callers that gave up included

	subscribers int // incoming-session subscribers
	forward     ForwardStats
}

// Events from the actor's own goroutines.

type dialDone struct {
	id   uint64
	peer peer.ID
	conn Conn
	err  error
	// verdict says whether the actor kept conn: nil, or why the dial's
	// goroutine must close it (closing is network I/O, never done by run).
	verdict chan error
}

type sessionEnded struct{ id uint64 }

type publicationEnded struct{ id uint64 }
