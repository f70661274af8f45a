package moq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

const (
	// announceWait bounds how long a fresh session to a provider may take
	// to announce the broadcast before Subscribe asks the provider directly
	// (which a stale provider answers with NotFound or Unroutable).
	announceWait = time.Second
	// providerStagger is how long an attempt on one provider runs alone
	// before the next provider is tried alongside it (as Happy Eyeballs
	// does), so a dead provider costs this much rather than a dial timeout.
	providerStagger = 500 * time.Millisecond
)

const (
	// providerRetry is the pause before a provider that failed is tried
	// again by the same Subscribe, doubling with each failure up to
	// providerRetryMax. A failure is not final: the addresses the lookup
	// gave may have been stale (a NATed publisher's relay address reaches
	// the DHT after its record), and the provider may be back.
	providerRetry    = 2 * time.Second
	providerRetryMax = 30 * time.Second
)

// providerTries is when each provider one Subscribe has tried may be tried
// again: not while an attempt runs, then providerRetry after a failure,
// doubling. Used by one goroutine.
type providerTries map[peer.ID]*providerTry

type providerTry struct {
	running bool
	next    time.Time // after a failure: not before
	fails   int
}

// ready reports whether id may be tried now.
func (p providerTries) ready(id peer.ID, now time.Time) bool {
	t := p[id]
	return t == nil || !t.running && !now.Before(t.next)
}

// started notes an attempt on id.
func (p providerTries) started(id peer.ID) {
	if p[id] == nil {
		p[id] = &providerTry{}
	}
	p[id].running = true
}

// failed notes that the attempt on id failed (or was abandoned) at now.
func (p providerTries) failed(id peer.ID, now time.Time) {
	t := p[id]
	if t == nil {
		return
	}
	t.running = false
	t.next = now.Add(min(providerRetry<<min(t.fails, 8), providerRetryMax))
	t.fails++
}

// attempt is the outcome of subscribing through one provider: on success,
// the session it subscribed on.
type attempt struct {
	peer peer.ID
	tc   *broadcast.TrackConsumer
	s    *Session
	err  error
}

// subscribeAnyProvider subscribes through the providers the DHT finds,
// nearest first (Moq.nearer: connected, then lowest measured round trip,
// then the order found), each attempt starting when the previous one failed
// or after providerStagger, whichever comes first (at once for a provider
// the host is connected to); the first success wins and
// the other attempts are cancelled. Providers tried is not ready for are
// skipped, and every attempt is noted there. It returns the track and the
// session to the provider it came from, else the last failure, or nothing
// if there was no provider to try.
func (m *Moq) subscribeAnyProvider(ctx context.Context, name, track string, opts SubscribeOptions, tried providerTries) (_ *broadcast.TrackConsumer, from *Session, last error) {
	ctx, cancel := context.WithCancel(ctx)
	found := make(chan peer.AddrInfo)
	go func() {
		defer close(found)
		for info := range m.Find(ctx, name) {
			select {
			case found <- info:
			case <-ctx.Done():
				return
			}
		}
	}()
	results := make(chan attempt)
	running := 0
	var winner *broadcast.TrackConsumer
	defer func() { // stop the lookup and the other attempts; keep one consumer
		cancel()
		for range found {
		}
		for ; running > 0; running-- {
			if r := <-results; r.tc != nil && r.tc != winner {
				r.tc.Close()
			}
		}
	}()

	var queue []peer.AddrInfo
	var stagger <-chan time.Time
	staggered := false // the running attempts have had providerStagger alone
	start := func() {
		info := queue[0]
		queue = queue[1:]
		tried.started(info.ID)
		running++
		m.log.Debug("trying provider", "broadcast", name, "peer", info.ID)
		stagger, staggered = time.After(providerStagger), false
		go func() {
			tc, s, err := m.subscribeProvider(ctx, info, name, track, opts)
			results <- attempt{peer: info.ID, tc: tc, s: s, err: err}
		}()
	}
	lookup := (<-chan peer.AddrInfo)(found) // nil once the lookup ended
	for {
		if len(queue) > 0 && (running == 0 || staggered || m.connected(queue[0].ID)) {
			start()
		}
		if running == 0 && lookup == nil {
			return nil, nil, last
		}
		select {
		case info, ok := <-lookup:
			if !ok {
				lookup = nil
				continue
			}
			if info.ID != "" && tried.ready(info.ID, time.Now()) && !slices.ContainsFunc(queue, func(q peer.AddrInfo) bool { return q.ID == info.ID }) {
				queue = append(queue, info)
				sortNearest(m, queue)
			}
		case <-stagger:
			stagger, staggered = nil, true
		case r := <-results:
			running--
			if r.err == nil {
				winner = r.tc
				return r.tc, r.s, nil
			}
			tried.failed(r.peer, time.Now())
			m.log.Debug("provider failed", "broadcast", name, "peer", r.peer, "err", r.err)
			last = fmt.Errorf("provider %s: %w", r.peer, r.err)
			if errors.Is(r.err, ErrShutdown) {
				return nil, nil, r.err
			}
		case <-ctx.Done():
			return nil, nil, last
		}
	}
}

// subscribeProvider connects to one provider and subscribes there, within
// the provider timeout; it returns the session it subscribed on.
func (m *Moq) subscribeProvider(ctx context.Context, info peer.AddrInfo, name, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, *Session, error) {
	ctx, cancel := context.WithTimeout(ctx, m.disc.providerTimeout)
	defer cancel()
	s, err := m.Connect(ctx, info)
	if err != nil {
		return nil, nil, err
	}
	tc, err := s.subscribeProvided(ctx, name, track, opts)
	return tc, s, err
}

// subscribeProvided subscribes to a broadcast the peer is believed to
// publish: once announced, as Subscribe does; if no announcement comes
// within announceWait (the record may be stale, or the node's interest may
// not cover the name), by asking directly, which the peer answers with
// NotFound (Unroutable from current peers) if it does not publish it.
func (s *Session) subscribeProvided(ctx context.Context, name, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, error) {
	actx, cancel := context.WithTimeout(ctx, announceWait)
	err := s.waitAnnounced(actx, name)
	cancel()
	switch {
	case err == nil:
		return s.SubscribeWith(ctx, name, track, opts)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, ErrNotAnnounced):
		return nil, err
	}
	tc, err := s.s.Subscribe(ctx, name, track, opts)
	if errors.Is(err, session.ErrClosed) {
		return nil, s.notAnnounced()
	}
	return tc, err
}
