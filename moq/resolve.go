package moq

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
)

// Find yields the peers other than this node that provide the broadcast
// name in the DHT, each once, as the lookup finds them; nothing without
// WithDHT. Provider records cannot be withdrawn, so some may be stale. See
// discovery.Find.
func (m *Moq) Find(ctx context.Context, name string) iter.Seq[peer.AddrInfo] {
	return func(yield func(peer.AddrInfo) bool) {
		if m.disc.router == nil {
			return
		}
		for info := range discovery.Find(ctx, m.disc.router, name) {
			if info.ID == m.h.ID() {
				continue
			}
			if !yield(info) {
				return
			}
		}
	}
}

// FindRelays yields the peers other than this node recorded as relays in
// the DHT (nodes with Forwarding.Advertise), each once: the ones this
// node's host is connected to as the lookup finds them (nearest: no
// handshake to pay), then the others nearest first (Moq.nearer: by
// measured round trip) once the lookup has ended or 20 of them are held;
// nothing without WithDHT. Records cannot
// be withdrawn, so some may be stale. Connect to one, and its forwarded
// broadcasts are announced on the session.
func (m *Moq) FindRelays(ctx context.Context) iter.Seq[peer.AddrInfo] {
	return func(yield func(peer.AddrInfo) bool) {
		if m.disc.router == nil {
			return
		}
		var later []peer.AddrInfo // not connected: after the connected ones
		for info := range discovery.FindRelays(ctx, m.disc.router) {
			if info.ID == m.h.ID() {
				continue
			}
			if m.connected(info.ID) {
				if !yield(info) {
					return
				}
				continue
			}
			later = append(later, info)
			if len(later) >= maxHeldRelays {
				break // enough held back: yield them rather than wait for the whole lookup
			}
		}
		sortNearest(m, later)
		for _, info := range later {
			if !yield(info) {
				return
			}
		}
	}
}

// maxHeldRelays bounds the relays FindRelays holds back while it looks for
// connected ones: past it, the lookup stops and they are yielded.
const maxHeldRelays = 20

// connected reports whether the host has a connection to p.
func (m *Moq) connected(p peer.ID) bool {
	return m.h.Network().Connectedness(p) == network.Connected
}

// sortNearest sorts peers nearest first (Moq.nearer), stably.
func sortNearest(m *Moq, peers []peer.AddrInfo) { slices.SortStableFunc(peers, m.nearer) }

// nearer orders peers nearest first, which is how this node picks among
// several publishers or relays of a broadcast: a peer the host is connected
// to comes first (its path is known to work and costs no handshake), then
// peers by the round-trip time the host measured to them (the peerstore's
// moving average, from earlier connections), lowest first, then peers with
// no measurement. Ties keep the lookup's order.
func (m *Moq) nearer(a, b peer.AddrInfo) int {
	ca, cb := m.connected(a.ID), m.connected(b.ID)
	if ca != cb {
		if ca {
			return -1
		}
		return 1
	}
	ra, rb := m.h.Peerstore().LatencyEWMA(a.ID), m.h.Peerstore().LatencyEWMA(b.ID)
	switch {
	case ra == rb:
		return 0
	case ra == 0:
		return 1
	case rb == 0:
		return -1
	case ra < rb:
		return -1
	}
	return 1
}

// Subscribe reads a track of the broadcast called name, wherever it is
// published, with no address in hand (see the package doc for the other
// ways to subscribe). A broadcast this node publishes is read straight
// from its publication (with SubscribeOptions.End, though, only from
// another publisher). Else it tries a session whose peer announces name
// first, then the providers the DHT finds (WithDHT) in the order the lookup finds
// them: the next provider is tried when an attempt fails or has run for half
// a second without success, each attempt is bounded by WithProviderTimeout,
// and the first that delivers wins, so an unreachable or stale provider
// (records cannot be withdrawn) costs little. A provider that failed is
// tried again, when a later lookup finds it, after a pause of two seconds
// doubling to thirty (the addresses found may have been stale: a NATed
// publisher's relay address reaches the DHT after its record). While nothing serves name it
// looks again until ctx ends (give ctx a deadline): at the sessions (those
// opened meanwhile, e.g. by mDNS or Connect, count) with pauses growing to a
// second, in the DHT with pauses growing to five seconds. It then fails with
// an error matching both ErrNoProviders and ctx's error, and wrapping the
// last attempt's error if there was one. Without WithDHT only the sessions
// are looked at. An empty name fails with broadcast.ErrInvalidPath; a node
// shut down, with ErrShutdown. Close the consumer when done.
func (m *Moq) Subscribe(ctx context.Context, name, track string) (*broadcast.TrackConsumer, error) {
	return m.SubscribeWith(ctx, name, track, SubscribeOptions{})
}

// SubscribeWith is Subscribe with options (priority, ordering, latency
// budget, group range, back-pressure).
func (m *Moq) SubscribeWith(ctx context.Context, name, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, error) {
	tc, _, err := m.subscribeFrom(ctx, name, track, opts)
	return tc, err
}

// subscribeFrom is SubscribeWith that also returns the session the
// subscription was made on (nil for a broadcast this node publishes or
// forwards): that very session, not one looked up again by its peer,
// which may hold several.
func (m *Moq) subscribeFrom(ctx context.Context, name, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, *Session, error) {
	name = broadcast.CleanPath(name)
	if name == "" {
		return nil, nil, broadcast.ErrInvalidPath
	}
	tried := providerTries{} // providers tried: when each may be tried again
	var last error
	pause := 50 * time.Millisecond // between looks at the sessions
	var lookupPause time.Duration  // between DHT lookups
	nextLookup := time.Now()
	for {
		lookup := !time.Now().Before(nextLookup)
		if lookup {
			nextLookup = time.Now().Add(lookupPause)
			lookupPause = min(max(2*lookupPause, 250*time.Millisecond), maxLookupPause)
		}
		tc, s, err := m.resolveOnce(ctx, name, track, opts, tried, lookup)
		if tc != nil {
			return tc, s, nil
		}
		if err != nil {
			last = err
		}
		if errors.Is(err, ErrShutdown) {
			return nil, nil, err
		}
		select {
		case <-time.After(pause):
			pause = min(2*pause, time.Second)
			continue
		case <-ctx.Done():
		}
		if last != nil {
			return nil, nil, fmt.Errorf("%w: %q: %w (last attempt: %w)", ErrNoProviders, name, ctx.Err(), last)
		}
		return nil, nil, fmt.Errorf("%w: %q: %w", ErrNoProviders, name, ctx.Err())
	}
}

// maxLookupPause bounds the pause between the DHT lookups of one Subscribe
// while nothing serves the name.
const maxLookupPause = 5 * time.Second

// resolveOnce makes one pass over the sessions, then, if lookup, over the
// DHT's providers; it returns the session it subscribed on (nil: this
// node's own publication or a forwarded broadcast).
func (m *Moq) resolveOnce(ctx context.Context, name, track string, opts SubscribeOptions, tried providerTries, lookup bool) (*broadcast.TrackConsumer, *Session, error) {
	select {
	case <-m.a.ShuttingDown():
		return nil, nil, ErrShutdown
	default:
	}
	var last error
	tc, err := m.subscribeLocal(name, track, opts)
	if tc != nil {
		return tc, nil, nil
	}
	if err != nil { // another publisher of the name may have the track
		last = fmt.Errorf("local publication: %w", err)
	}
	if tc := m.subscribeForwarded(name, track, opts); tc != nil {
		return tc, nil, nil
	}
	sessions, err := m.Sessions(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range announcing(ctx, sessions, name, remoteWait) {
		tc, err := s.SubscribeWith(ctx, name, track, opts)
		if err == nil {
			return tc, s, nil
		}
		last = fmt.Errorf("session with %s: %w", s.RemotePeer(), err)
	}
	if !lookup {
		return nil, nil, last
	}
	tc, s, err := m.subscribeAnyProvider(ctx, name, track, opts, tried)
	if tc != nil || err != nil {
		return tc, s, err
	}
	return nil, nil, last
}

// subscribeLocal subscribes to a track of a broadcast this node publishes
// (Publish), read straight from it: no session carries it to the node
// itself. Nil, nil if name is not published here, or if opts has an End:
// a range is served by the session layer only. With Backpressure the
// consumer is one of the published track's own, so it is lossless if
// that track's Limits have Backpressure, as it is over a session.
func (m *Moq) subscribeLocal(name, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, error) {
	b := m.a.Local().Get(name)
	if b == nil || opts.End != nil {
		return nil, nil
	}
	info := broadcast.Track{Name: track, Priority: opts.Priority}
	if opts.Start != nil {
		return b.SubscribeTrackAt(info, *opts.Start)
	}
	return b.SubscribeTrack(info)
}

// Ticket is a ticket for the broadcast name published by this node, with the
// host's current addresses; Ticket(name).Short() is the short form that
// subscribers resolve through the DHT.
func (m *Moq) Ticket(name string) Ticket {
	return Ticket{Peer: m.h.ID(), Broadcast: broadcast.CleanPath(name), Addrs: m.h.Addrs()}
}

// Resolve returns the session to a ticket's peer, connecting with the
// ticket's addresses, or, for a short ticket, those the host knows or the
// DHT's peer routing finds.
func (m *Moq) Resolve(ctx context.Context, t Ticket) (*Session, error) {
	if t.Peer == "" {
		return nil, fmt.Errorf("%w: no peer", discovery.ErrInvalidTicket)
	}
	return m.Connect(ctx, t.AddrInfo())
}

// SubscribeTicket subscribes to a track of a ticket's broadcast at the
// ticket's peer: it connects (Resolve; its error is returned as is), then
// subscribes on that session as Session.Subscribe does, waiting for the
// announcement until ctx or the session ends. For options, Resolve and call
// Session.SubscribeWith.
func (m *Moq) SubscribeTicket(ctx context.Context, t Ticket, track string) (*broadcast.TrackConsumer, error) {
	s, err := m.Resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	return s.Subscribe(ctx, t.Broadcast, track)
}
