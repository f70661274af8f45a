package actor

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
)

// ErrIncomingClosed is returned by Incoming.Next after Close.
var ErrIncomingClosed = errors.New("moq: incoming-session subscription closed")

// Incoming is one subscriber to the sessions peers open to this node: it
// receives every accepted session (RegisterOptions.Dialed false) that is
// live when Actor.Incoming returns, oldest first, then every one registered
// from then on until Close, in a queue of its own. Subscribers do not share
// sessions: each sees all of them. So a subscriber misses no session
// accepted before it started that is still open, and sees none twice.
//
// Nothing is dropped: RegisterWith hands the new session to every
// subscriber before it returns, waiting for room in a full queue. So a
// subscriber that stops reading (without closing) holds up the admissions
// that reach it once its queue is full, until it reads again, closes, its
// RegisterWith caller's context ends or Shutdown begins; other subscribers
// still receive each session as soon as it is registered. A closed
// subscriber holds up nothing, not even a RegisterWith already waiting for
// it, and with no subscriber nothing is queued and nothing waits. The
// sessions live at the start are handed over as a list, outside the queue:
// they cost one pointer each (bounded by the node's session limits) and
// hold up no admission.
type Incoming struct {
	a       *Actor
	backlog []*Session    // live at the start, not yet returned; only Next's goroutine touches it
	c       chan *Session // the bounded queue
	done    chan struct{} // closed by Close: deliverers stop waiting
	once    sync.Once
}

// subscribeReq starts an Incoming; run replies with the accepted sessions
// live at that moment (those registered before it, which it will not be
// handed).
type subscribeReq struct {
	in    *Incoming
	reply chan []*Session // buffered: run never waits on it
}

// Incoming subscribes to the accepted sessions live now and registered
// from now on, queueing at most queue of the latter (at least 1) for Next.
// It fails with ErrShutdown once Shutdown has begun. The caller must Close
// it.
func (a *Actor) Incoming(ctx context.Context, queue int) (*Incoming, error) {
	in := &Incoming{a: a, c: make(chan *Session, max(queue, 1)), done: make(chan struct{})}
	reply := make(chan []*Session, 1)
	// Once run has received it, in is registered: run handles every later
	// registration after this one, and replies at once with the earlier
	// ones still live.
	if err := send(ctx, a, a.subscribec, subscribeReq{in: in, reply: reply}); err != nil {
		return nil, err
	}
	in.backlog = <-reply
	return in, nil
}

// Next returns the next session, or ErrShutdown once Shutdown has begun,
// ErrIncomingClosed after Close, or ctx's error. It is for one goroutine
// at a time (the backlog is read without a lock).
func (in *Incoming) Next(ctx context.Context) (*Session, error) {
	// Shutdown and Close end the iteration whatever is still queued.
	select {
	case <-in.a.shutting:
		return nil, ErrShutdown
	case <-in.done:
		return nil, ErrIncomingClosed
	default:
	}
	if len(in.backlog) > 0 {
		s := in.backlog[0]
		in.backlog[0] = nil
		in.backlog = in.backlog[1:]
		return s, nil
	}
	select {
	case s := <-in.c:
		return s, nil
	case <-in.a.shutting:
		return nil, ErrShutdown
	case <-in.done:
		return nil, ErrIncomingClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close unsubscribes. Sessions still queued are not yielded; they stay
// registered (Actor.Sessions lists them). It is idempotent.
func (in *Incoming) Close() {
	in.once.Do(func() {
		close(in.done) // first, so no deliverer waits for us any more
		select {
		case in.a.unsubscribec <- in:
		case <-in.a.stopped:
		}
	})
}

// announce hands an accepted session to the subscribers run listed when it
// registered it. It runs on RegisterWith's caller, never on run: first to
// every queue with room, so a full queue delays no one else, then waiting
// for the full ones. It gives up on a subscriber that closes, and on all of
// them when ctx ends or Shutdown begins.
func (a *Actor) announce(ctx context.Context, s *Session, subs []*Incoming) {
	full := subs[:0]
	for _, in := range subs {
		select {
		case in.c <- s:
		case <-in.done:
		default:
			full = append(full, in)
		}
	}
	for i, in := range full {
		select {
		case in.c <- s:
		case <-in.done:
		case <-a.shutting:
			return
		case <-ctx.Done():
			a.log.Info("incoming session not handed to every subscriber: registration context ended", "peer", s.peer, "missed", len(full)-i)
			return
		}
	}
}

// liveAccepted lists the live accepted sessions, oldest first: a new
// subscriber's backlog. Caller is run.
func (a *Actor) liveAccepted() []*Session {
	var list []*Session
	for _, l := range a.sessions {
		for _, s := range l {
			if s.live() && !s.dialed {
				list = append(list, s)
			}
		}
	}
	slices.SortFunc(list, func(x, y *Session) int { return cmp.Compare(x.id, y.id) })
	return list
}

// subscriberList is the current subscribers, for a registration's reply.
func (a *Actor) subscriberList() []*Incoming {
	if len(a.subscribers) == 0 {
		return nil
	}
	list := make([]*Incoming, 0, len(a.subscribers))
	for in := range a.subscribers {
		list = append(list, in)
	}
	return list
}
