package moq

import (
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// NATConfig turns on what a host needs to be reached behind a NAT, and what
// a public host can do for those that are. The zero value turns on nothing.
type NATConfig struct {
	// AutoNAT runs AutoNAT v2: the host asks peers to dial it back and so
	// learns which of its addresses are reachable. The host-wide verdict
	// (private behind a NAT, or public) that AutoRelay acts on comes from
	// go-libp2p's AutoNAT v1 client, which every host runs: its first probe
	// comes 15 s after start, and only once the host trusts the public
	// address its NAT gives it, which go-libp2p does when 4 peers on
	// distinct IPs have observed it. A host that knows sooner sets
	// Reachability. AutoNAT v2's own verdicts, per address, arrive as
	// event.EvtHostReachableAddrsChanged (behind a NAT: the NAT's address
	// unreachable, about 10 s after start with four servers).
	AutoNAT bool
	// Reachability, when not network.ReachabilityUnknown, is taken as known
	// instead of learned: Private for a host that knows it sits behind a NAT
	// (it reserves relay slots at once), Public for a relay on a public
	// address (its relay service starts at once; with AutoNAT, its AutoNAT
	// v2 server answers QUIC checks at once too, where go-libp2p's UDP
	// black-hole detection would refuse them until the host made 100 UDP
	// dials).
	Reachability network.Reachability
	// HolePunching runs DCUtR: when a peer reaches this host over a circuit
	// relay (or the other way round), both sides dial each other at the same
	// moment from their QUIC sockets, which opens a direct path through
	// endpoint-independent NATs. The moq session then moves onto raw QUIC on
	// that path (see Session.Path). go-libp2p punches only from addresses it
	// considers public (go-multiaddr's IsPublicAddr), as observed by peers.
	HolePunching bool
	// DirectDialTimeout bounds the plain direct dial the side that received
	// a relayed connection tries before punching; zero means go-libp2p's
	// default (5 s). Behind NATs that dial cannot succeed, so a short one
	// (a few RTTs) gets to the punch sooner.
	DirectDialTimeout time.Duration
	// StaticRelays are relay nodes (a bootstrap node run with a relay
	// service) on which the host reserves a slot while it is private, and
	// whose circuit addresses it then advertises (AutoRelay).
	StaticRelays []peer.AddrInfo
	// RelayService makes the host relay circuits for others while it is
	// publicly reachable; nil relays nothing.
	RelayService *RelayService
}

// enabled reports whether the config asks for anything.
func (n NATConfig) enabled() bool {
	return n.AutoNAT || n.HolePunching || len(n.StaticRelays) > 0 || n.RelayService != nil ||
		n.Reachability != network.ReachabilityUnknown
}

// RelayService bounds the circuit relay v2 service of a public host. Zero
// fields take go-libp2p's defaults, named on each.
type RelayService struct {
	// Unlimited relays circuits with no duration or data limit: the fallback
	// media path for peers that cannot hole-punch (symmetric NATs). A
	// circuit costs the relay the bandwidth of the media it carries, for as
	// long as the peers keep it; the counts below still bound how many there
	// are. Without it a circuit is cut after CircuitDuration or
	// CircuitBytes, which suits only the DCUtR handshake.
	Unlimited bool
	// CircuitDuration (default 2 min) and CircuitBytes (default 128 KiB, per
	// direction) end a limited circuit.
	CircuitDuration time.Duration
	CircuitBytes    int64
	// MaxReservations (default 128) bounds the peers holding a slot;
	// MaxCircuits (default 16) the circuits open per peer. Worst case, the
	// relay holds MaxReservations × MaxCircuits circuits, each with two
	// 2 KiB buffers (go-libp2p's BufferSize) and two goroutines.
	MaxReservations int
	MaxCircuits     int
	// AllowReserve, when not empty, lists the only peers that may reserve
	// a slot (the operator's own publishers, say); circuits still reach
	// any peer holding one. Empty: any peer may reserve.
	AllowReserve []peer.ID
}

// reserveACL lets only the listed peers reserve.
type reserveACL map[peer.ID]bool

func (a reserveACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a[p] }

func (reserveACL) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return true }

// options turns the bounds into go-libp2p's relay options.
func (r *RelayService) options() []relayv2.Option {
	rc := relayv2.DefaultResources()
	if r.Unlimited {
		rc.Limit = nil
	} else {
		if r.CircuitDuration > 0 {
			rc.Limit.Duration = r.CircuitDuration
		}
		if r.CircuitBytes > 0 {
			rc.Limit.Data = r.CircuitBytes
		}
	}
	if r.MaxReservations > 0 {
		rc.MaxReservations = r.MaxReservations
	}
	if r.MaxCircuits > 0 {
		rc.MaxCircuits = r.MaxCircuits
	}
	opts := []relayv2.Option{relayv2.WithResources(rc)}
	if len(r.AllowReserve) > 0 {
		acl := reserveACL{}
		for _, p := range r.AllowReserve {
			acl[p] = true
		}
		opts = append(opts, relayv2.WithACL(acl))
	}
	return opts
}

// HolePunchEvent reports the end of a hole-punching attempt with a peer (or
// a direct dial that made one unnecessary). NewHost's hosts emit it on their
// event bus (host.EventBus) when HostConfig.NAT.HolePunching is on; nodes
// read it to explain a session's path.
type HolePunchEvent struct {
	Peer peer.ID
	// Started marks the start of an attempt (the other fields are zero);
	// every other event ends one.
	Started bool
	Success bool
	// Direct is true when a plain direct dial succeeded, no punching needed.
	Direct  bool
	Elapsed time.Duration
	// Error says why it failed (go-libp2p's text); empty on success.
	Error string

	seq uint64 // the tracer's count: a node reading the bus twice records an event once
}

// punchTracer forwards go-libp2p's hole-punching trace to the host's event
// bus, which exists only after the tracer is handed to the host.
type punchTracer struct {
	em  atomic.Pointer[event.Emitter]
	seq atomic.Uint64
}

func (t *punchTracer) Trace(evt *holepunch.Event) {
	em := t.em.Load()
	if em == nil {
		return
	}
	var out HolePunchEvent
	switch e := evt.Evt.(type) {
	case *holepunch.EndHolePunchEvt:
		out = HolePunchEvent{Success: e.Success, Elapsed: e.EllapsedTime, Error: e.Error}
	case *holepunch.StartHolePunchEvt:
		out = HolePunchEvent{Started: true}
	case *holepunch.ProtocolErrorEvt:
		// The exchange before a punch failed (the peer has no public
		// address to offer, say): it ends the attempt.
		out = HolePunchEvent{Error: "the hole-punching exchange failed: " + e.Error}
	case *holepunch.DirectDialEvt:
		if !e.Success {
			return // punching follows
		}
		out = HolePunchEvent{Success: true, Direct: true, Elapsed: e.EllapsedTime}
	default:
		return
	}
	out.Peer, out.seq = evt.Remote, t.seq.Add(1)
	_ = (*em).Emit(out)
}

// attach starts emitting on h's bus, and marks h as a host that punches.
func (t *punchTracer) attach(h host.Host) error {
	em, err := h.EventBus().Emitter(new(HolePunchEvent))
	if err != nil {
		return err
	}
	t.em.Store(&em)
	return h.Peerstore().Put(h.ID(), holePunchingKey, true)
}

// holePunchingKey is the mark NewHost leaves, in the host's own peerstore
// entry, on a host that runs DCUtR. (The event bus would not tell: it
// knows every event type anyone subscribed to, emitted or not.)
const holePunchingKey = "moqp2p/hole-punching"

// punches reports whether h carries that mark.
func punches(h host.Host) bool {
	v, err := h.Peerstore().Get(h.ID(), holePunchingKey)
	on, _ := v.(bool)
	return err == nil && on
}

// applyNAT sets the NAT traversal parts of a host's config; the returned
// tracer (nil without hole punching) must be attached to the built host.
func applyNAT(c *config.Config, n NATConfig) *punchTracer {
	if !n.enabled() {
		return nil
	}
	c.Relay = true // DCUtR and AutoRelay run over circuits
	if n.Reachability != network.ReachabilityUnknown {
		r := n.Reachability
		c.AutoNATConfig.ForceReachability = &r
	}
	if n.AutoNAT {
		c.EnableAutoNATv2 = true
		if n.Reachability == network.ReachabilityPublic {
			// The AutoNAT v2 server dials back only over transports the
			// host's black-hole detection allows, and a new host's UDP is
			// not allowed until it made 100 dials (5 of them successful):
			// until then it refuses every QUIC check. A host declared
			// public has working UDP.
			c.UDPBlackHoleSuccessCounter = nil
		}
	}
	var t *punchTracer
	if n.HolePunching {
		t = &punchTracer{}
		c.EnableHolePunching = true
		c.HolePunchingOptions = append(c.HolePunchingOptions, holepunch.WithTracer(t))
		if n.DirectDialTimeout > 0 {
			c.HolePunchingOptions = append(c.HolePunchingOptions, holepunch.DirectDialTimeout(n.DirectDialTimeout))
		}
	}
	if len(n.StaticRelays) > 0 {
		c.EnableAutoRelay = true
		c.AutoRelayOpts = append(c.AutoRelayOpts,
			autorelay.WithStaticRelays(n.StaticRelays),
			// Reserve as soon as the host knows it is private: a
			// publisher behind a NAT is unreachable until it has.
			autorelay.WithBootDelay(0),
			autorelay.WithMinCandidates(1),
			autorelay.WithNumRelays(len(n.StaticRelays)))
	}
	if n.RelayService != nil {
		c.EnableRelayService = true
		c.RelayServiceOpts = append(c.RelayServiceOpts, n.RelayService.options()...)
		// Peers behind NATs learn their reachability from relays: serve
		// AutoNAT (v1) dial-backs too.
		c.AutoNATConfig.EnableService = true
	}
	return t
}
