package moq

import (
	"context"
	"time"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
)

// Forwarding configures WithForwarding. The zero value forwards every
// broadcast to every session with the default bounds.
type Forwarding struct {
	// Prefixes are the paths forwarded; empty means every path.
	Prefixes []string
	// Accept, if set, says whether a session's announcement of path is
	// taken as a route (the peer may publish there). Nil accepts all.
	Accept func(s *Session, path string) bool
	// Offer, if set, says whether the broadcast at path is forwarded to a
	// session (the peer may subscribe there). Nil offers to all.
	Offer func(s *Session, path string) bool
	// Cost, if set, gives a session's link cost (lower is preferred), in
	// place of the cost it was opened with (OpenOptions.Cost, default 1);
	// 0 (or less) keeps that one.
	Cost func(s *Session) int
	// Linger keeps an upstream subscription after its last subscriber left
	// (default actor.DefaultForwardLinger; negative: none).
	Linger time.Duration
	// MaxPaths, MaxRoutes and MaxUpstream bound the paths forwarded, the
	// routes held and the forwarded tracks with an upstream subscription,
	// node-wide (see actor.Forward for the defaults and worst cases).
	MaxPaths, MaxRoutes, MaxUpstream int
	// MaxUpstreamPerPeer is the share of MaxUpstream one peer's
	// subscriptions may take: a libp2p peer's sessions together, an
	// anonymous session on its own (default
	// actor.DefaultMaxUpstreamPerPeer; negative: none).
	MaxUpstreamPerPeer int
	// WithdrawGrace is how long a forwarded path whose last route was
	// withdrawn waits for one to come back before it ends downstream: a
	// failing-over upstream relay announces the path ended, then active
	// (default actor.DefaultWithdrawGrace; negative: none).
	WithdrawGrace time.Duration
	// Limits bound each forwarded track's cache (broadcast.Limits
	// defaults: the latest group always, older ones within 5 s).
	Limits broadcast.Limits
	// Advertise records the node as a relay in the DHT (WithDHT): it
	// provides discovery.RelayKey, re-provided as publications are, for as
	// long as the node runs, so that other nodes find it with FindRelays.
	// It also provides the names of the broadcasts the node forwards (up
	// to MaxAdvertised), so a name looked up in the DHT (Subscribe, Find)
	// finds the relays that carry it as well as its publisher, and the
	// nearest is tried first. It does nothing without WithDHT.
	Advertise bool
	// MaxAdvertised bounds the forwarded broadcasts whose names are
	// provided at once with Advertise (default DefaultMaxAdvertised); the
	// paths past it are forwarded but not provided. Worst case: one
	// re-provide loop (a goroutine, about 8 KiB) per name, each a DHT
	// provide (a lookup and a few puts) per provide interval: 8 MiB and
	// 1024 provides every 5 minutes at the default.
	MaxAdvertised int
}

// ForwardStats are the forwarding counters (actor.ForwardStats).
type ForwardStats = actor.ForwardStats

// WithForwarding makes the node a relay: what a session's peer announces is
// a route, and the node offers one broadcast per path to its other sessions
// (and to its own subscribers, through Forwarded), appending its hop ID.
// An announcement whose hop list holds this node's ID is refused, so
// routes never loop; each track forwarded has one upstream subscription
// however many subscribers it has, made with the highest priority and the
// earliest start group they asked for when it was made. A subscriber that
// comes later asking for an earlier start than the upstream subscription's
// gets what the relay track still caches from its start on (at least the
// latest group; older ones within Limits): the groups before the upstream
// subscription's start are not fetched again. The upstream subscription
// has no latency budget (MaxLatency 0); each downstream subscriber's
// MaxLatency applies to the groups sent to it alone. A downstream
// subscription is answered once the upstream one is (or after 5 s): one to
// a track the publisher lacks is refused with the upstream's NotFound, not
// accepted and then reset. When a route's session
// ends, the path switches to the best remaining route (lower cost, then
// fewer hops) and its tracks continue at the next group if that route
// comes from the same publisher.
func WithForwarding(f Forwarding) Option {
	return func(o *options) { o.forward = &f }
}

// forwardConfig turns the moq policy into the actor's; m is set once New
// has made the node.
func (f *Forwarding) forwardConfig(m **Moq) *actor.Forward {
	cfg := &actor.Forward{
		Prefixes: f.Prefixes, Linger: f.Linger,
		MaxPaths: f.MaxPaths, MaxRoutes: f.MaxRoutes, MaxUpstream: f.MaxUpstream,
		MaxUpstreamPerPeer: f.MaxUpstreamPerPeer, WithdrawGrace: f.WithdrawGrace,
		Limits: f.Limits,
	}
	if f.Accept != nil {
		cfg.Accept = func(s *actor.Session, path string) bool { return f.Accept(&Session{s: s, m: *m}, path) }
	}
	if f.Offer != nil {
		cfg.Offer = func(s *actor.Session, path string) bool { return f.Offer(&Session{s: s, m: *m}, path) }
	}
	if f.Cost != nil {
		cfg.Cost = func(s *actor.Session) int { return f.Cost(&Session{s: s, m: *m}) }
	}
	return cfg
}

// Forwarded is the origin of the broadcasts this node forwards (nil
// without WithForwarding). A track subscribed there shares the node's one
// upstream subscription and survives a change of route.
func (m *Moq) Forwarded() *broadcast.Origin { return m.a.Forwarded() }

// ForwardStats returns the forwarding counters (zero without forwarding).
func (m *Moq) ForwardStats(ctx context.Context) (ForwardStats, error) { return m.a.ForwardStats(ctx) }

// OpenOptions are Open's options.
type OpenOptions struct {
	// Cost of the link for route choice when forwarding (0: direct, 1;
	// relayed links are conventionally 10).
	Cost int
}

// OpenWith is Open with options.
func (m *Moq) OpenWith(ctx context.Context, c transport.Conn, opts OpenOptions) (*Session, error) {
	s, err := m.a.RegisterWith(ctx, anonConn{c}, actor.RegisterOptions{Dialed: true, Client: true, Cost: opts.Cost})
	if err != nil {
		_ = c.CloseWithError(uint32(broadcast.CodeCancel), "no session")
		return nil, err
	}
	return &Session{s: s, m: m}, nil
}

// subscribeForwarded subscribes to a forwarded broadcast's track, if this
// node forwards name and the options can share the upstream subscription.
func (m *Moq) subscribeForwarded(name, track string, opts SubscribeOptions) *broadcast.TrackConsumer {
	fo := m.a.Forwarded()
	if fo == nil || opts.End != nil || opts.Backpressure {
		return nil
	}
	b := fo.Get(name)
	if b == nil {
		return nil
	}
	info := broadcast.Track{Name: track, Priority: opts.Priority}
	var tc *broadcast.TrackConsumer
	var err error
	if opts.Start != nil {
		tc, err = b.SubscribeTrackAt(info, *opts.Start)
	} else {
		tc, err = b.SubscribeTrack(info)
	}
	if err != nil {
		return nil
	}
	return tc
}
