package actor

import (
	"context"
	"errors"
	"sync"
)

// ErrIncomingClosed is returned by Incoming.Next after Close.
var ErrIncomingClosed = errors.New("moq: incoming-session subscription closed")

// Incoming is one subscriber to the sessions peers open to this node: it
// receives every session registered as accepted (RegisterOptions.Dialed
// false) from the moment Actor.Incoming returns until Close, in a queue of
// its own. Subscribers do not share sessions: each sees all of them.
//
// Nothing is dropped: RegisterWith hands the new session to every
// subscriber before it returns, waiting for room in a full queue. So a
// subscriber that stops reading (without closing) holds up the admissions
// that reach it once its queue is full, until it reads again, closes, its
// RegisterWith caller's context ends or Shutdown begins; other subscribers
// still receive each session as soon as it is registered. A closed
// subscriber holds up nothing, not even a RegisterWith already waiting for
// it, and with no subscriber nothing is queued and nothing waits.
type Incoming struct {
	a    *Actor
	c    chan *Session // the bounded queue
	done chan struct{} // closed by Close: deliverers stop waiting
	once sync.Once
}

// Incoming subscribes to the sessions registered as accepted from now on,
// queueing at most queue of them (at least 1) for Next. It fails with
// ErrShutdown once Shutdown has begun. The caller must Close it.
func (a *Actor) Incoming(ctx context.Context, queue int) (*Incoming, error) {
	in := &Incoming{a: a, c: make(chan *Session, max(queue, 1)), done: make(chan struct{})}
	// Once run has received it, in is registered: run handles every later
	// registration after this one.
	if err := send(ctx, a, a.subscribec, in); err != nil {
		return nil, err
	}
	return in, nil
}

// Next returns the next session, or ErrShutdown once Shutdown has begun,
// ErrIncomingClosed after Close, or ctx's error.
func (in *Incoming) Next(ctx context.Context) (*Session, error) {
	// Shutdown and Close end the iteration whatever is still queued.
	select {
	case <-in.a.shutting:
		return nil, ErrShutdown
	case <-in.done:
		return nil, ErrIncomingClosed
	default:
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
