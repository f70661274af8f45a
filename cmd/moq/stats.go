package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// sessionCounters returns a session's media counters and the bytes it has
// received on the wire (acknowledgements included, so a peer that is alive
// keeps it moving; 0 when the transport has no counters). They stay
// readable after the session ended.
func sessionCounters(s peerSession) (media session.Stats, wireIn uint64) {
	if s, ok := s.(*p2pSession); ok {
		st := s.s.Stats()
		media, wireIn = st.Media, st.Link.BytesReceived
	}
	return media, wireIn
}

// sessionWatch keeps every session a publisher serves, accepted or dialed,
// so that its counters can be summed up after the session ended.
type sessionWatch struct {
	n    *node
	mu   sync.Mutex
	list []peerSession
	// held: a finite transfer already waited for a lost subscriber to come
	// back once (holdForReturn), and goes on without it since.
	held bool
	done chan struct{}
	wg   sync.WaitGroup
}

// watchSessions collects the sessions n accepts (n.cfg.incoming must be set)
// until stop.
func watchSessions(n *node) *sessionWatch {
	w := &sessionWatch{n: n, done: make(chan struct{})}
	w.wg.Go(func() {
		for {
			select {
			case s := <-n.incoming:
				w.add(s)
			case <-w.done:
				return
			}
		}
	})
	return w
}

func (w *sessionWatch) add(s peerSession) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, s)
}

func (w *sessionWatch) stop() {
	close(w.done)
	w.wg.Wait()
}

func (w *sessionWatch) sessions() []peerSession {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// summary adds to what was produced what was delivered: the media counters
// of the subscriber session that was sent the fewest groups, among those
// sent any (0 when none was).
func (w *sessionWatch) summary(produced pattern.Summary) pubSummary {
	sum := pubSummary{Summary: produced}
	first := true
	for _, s := range w.sessions() {
		m, _ := sessionCounters(s)
		if m.FramesSent == 0 && m.GroupsSent == 0 {
			continue // not a subscriber of ours
		}
		sum.subscribers++
		if first || m.GroupsSent < sum.DeliveredGroups {
			sum.DeliveredGroups, sum.DeliveredFrames, sum.DeliveredBytes = m.GroupsSent, m.FramesSent, m.BytesSent
			first = false
		}
	}
	return sum
}

// activity is a number that moves while any session makes progress: bytes
// received on the wire (acknowledgements too) and media sent.
func (w *sessionWatch) activity() uint64 {
	var a uint64
	// The node's own sessions too: one it keeps with a relay that forwards
	// the broadcast is not an incoming one.
	for _, s := range slices.Concat(w.sessions(), w.n.sessions(context.Background())) {
		m, in := sessionCounters(s)
		a += in + m.BytesSent + m.FramesSent
	}
	return a
}

// progressEvery is how often waitServed samples the sessions' progress
// (the counters have no event). It only sets how precisely linger is kept:
// a stalled subscriber is given up on at most 100 ms later.
const progressEvery = 100 * time.Millisecond

// waitServed waits until served or gone fires, or ctx ends (true), or the
// sessions have made no progress for linger (false: a subscriber that
// stopped responding is not waited for until its connection times out).
func (w *sessionWatch) waitServed(ctx context.Context, served, gone <-chan struct{}, linger time.Duration) bool {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	last, since := w.activity(), time.Now()
	for {
		select {
		case <-served:
			return true
		case <-gone:
			return true
		case <-ctx.Done():
			return true
		case now := <-tick.C:
			if a := w.activity(); a != last {
				last, since = a, now
			} else if now.Sub(since) >= linger {
				return false
			}
		}
	}
}

// errStalled is a subscriber that made no progress for --linger while the
// publisher waited for it.
var errStalled = errors.New("no progress")

// waitRoom waits until tp has room for another group, like
// TrackProducer.WaitRoom, but gives up (errStalled) once the sessions have
// made no progress for linger: a subscriber that vanished would otherwise
// hold the producer until its connection timed out.
func (w *sessionWatch) waitRoom(ctx context.Context, tp *broadcast.TrackProducer, linger time.Duration) error {
	if tp.HasRoom() {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- tp.WaitRoom(ctx) }()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	last, since := w.activity(), time.Now()
	for {
		select {
		case err := <-done:
			if errors.Is(context.Cause(ctx), errStalled) {
				return errStalled
			}
			return err
		case now := <-tick.C:
			if a := w.activity(); a != last {
				last, since = a, now
			} else if now.Sub(since) >= linger {
				cancel(errStalled)
			}
		}
	}
}

// lostSubscriber reports whether a session ended without either side
// closing it: its connection was lost (a circuit its relay cut, say), so
// a subscription it carried may come back by another path.
func (w *sessionWatch) lostSubscriber() bool {
	for _, s := range w.sessions() {
		select {
		case <-s.Done():
		default:
			continue
		}
		if err := s.Err(); err != nil && !errors.As(err, new(*transport.ConnError)) {
			return true
		}
	}
	return false
}

// holdForReturn holds a finite transfer while its track has no consumer
// because a subscriber's connection was lost: once, for up to linger, for
// the subscription to come back (through a forwarding relay, after a
// limited circuit was cut), so that the groups it missed are still there.
// Without it the transfer would run on into the void at once.
func (w *sessionWatch) holdForReturn(ctx context.Context, tp *broadcast.TrackProducer, linger time.Duration) {
	used := tp.Used()
	select {
	case <-used:
		return
	default:
	}
	w.mu.Lock()
	held := w.held
	w.mu.Unlock()
	if held || !w.lostSubscriber() {
		return
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	select {
	case <-used:
	case <-t.C:
		w.mu.Lock()
		w.held = true
		w.mu.Unlock()
	case <-ctx.Done():
	}
}
