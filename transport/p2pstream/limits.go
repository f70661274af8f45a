package p2pstream

import (
	"errors"
	"maps"

	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// DefaultStreamsPerPeer is the per-peer stream allowance Limits grants when
// given zero: far above what one session keeps open (the session layer
// sends at most 64 groups of a subscription at once, by default), so that
// a dozen busy subscriptions never wait for the resource manager.
const DefaultStreamsPerPeer = 1024

// yamuxStreamMemory is what go-yamux reserves from the peer's resource
// scope for every stream while it is open (its initial receive window).
const yamuxStreamMemory = 256 << 10

// Limits raises libp2p resource-manager limits in cfg for moq-lite, which
// opens one stream per group. With libp2p's defaults a peer may keep only
// 128 + 8·G outbound and 64 + 4·G inbound streams of one protocol open,
// where G is the GiB of memory given to libp2p (1/8 of RAM when
// autoscaled): about 150 and 75 on a 24 GiB machine. Beyond the outbound
// limit OpenStream waits (as for QUIC stream credit); beyond the peer's
// inbound limit the peer resets the stream and the group is lost. Both
// hosts therefore need these limits.
//
// For each of Protocols, Limits sets the per-peer limit to streamsPerPeer
// inbound and outbound (a fixed value, not scaled) and the all-peers limit
// to at least 8× that; it adds streamsPerPeer to the peer, system and
// transient scopes (transient holds inbound streams until multistream-select
// names their protocol, so bursts of new group streams count there). It
// also adds streamsPerPeer × 256 KiB to the peer's memory limit: over yamux
// (TCP, relays) every open stream reserves 256 KiB there, and a stream
// whose reservation fails makes yamux drop the whole connection, so the
// stream limits must bind before the memory limit does. The system memory
// limit is left alone; on a small machine it caps the streams of all peers
// together the same way (each yamux stream holds 256 KiB of it).
//
// Zero means DefaultStreamsPerPeer. Call it once per config: the additions
// accumulate. cfg's maps are copied before they are changed, so passing a
// copy of rcmgr.DefaultLimits leaves the global alone.
func Limits(cfg *rcmgr.ScalingLimitConfig, streamsPerPeer int) {
	n := streamsPerPeer
	if n <= 0 {
		n = DefaultStreamsPerPeer
	}
	cfg.ProtocolLimits = maps.Clone(cfg.ProtocolLimits)
	cfg.ProtocolPeerLimits = maps.Clone(cfg.ProtocolPeerLimits)

	perPeer := cfg.ProtocolPeerBaseLimit // keeps the default memory limit
	perPeer.StreamsInbound, perPeer.StreamsOutbound, perPeer.Streams = n, n, 2*n
	all := cfg.ProtocolBaseLimit
	all.StreamsInbound = max(all.StreamsInbound, 8*n)
	all.StreamsOutbound = max(all.StreamsOutbound, 8*n)
	all.Streams = max(all.Streams, 16*n)
	for _, p := range Protocols {
		cfg.AddProtocolPeerLimit(p, perPeer, rcmgr.BaseLimitIncrease{})
		cfg.AddProtocolLimit(p, all, cfg.ProtocolLimitIncrease)
	}
	for _, l := range []*rcmgr.BaseLimit{&cfg.PeerBaseLimit, &cfg.SystemBaseLimit, &cfg.TransientBaseLimit} {
		l.StreamsInbound += n
		l.StreamsOutbound += n
		l.Streams += 2 * n
	}
	cfg.PeerBaseLimit.Memory += int64(n) * yamuxStreamMemory
}

// ResourceManager is a libp2p option installing the resource manager
// libp2p would build by default (default limits and service limits,
// autoscaled to the machine) with Limits(streamsPerPeer) applied. It
// conflicts with any other resource-manager option. It is a config.Option,
// the type libp2p.New takes, so it needs no more of go-libp2p than its
// config package.
func ResourceManager(streamsPerPeer int) config.Option {
	return func(cfg *config.Config) error {
		if cfg.ResourceManager != nil {
			return errors.New("p2pstream: the host already has a resource manager")
		}
		limits := rcmgr.DefaultLimits
		ServiceLimits(&limits)
		Limits(&limits, streamsPerPeer)
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
		if err != nil {
			return err
		}
		cfg.ResourceManager = rm
		return nil
	}
}

// ServiceLimits adds to cfg the limits go-libp2p's own constructor gives
// the services a host runs (identify, ping, AutoNAT, hole punching, the
// circuit relay and its protocols): rcmgr.DefaultLimits has none for them,
// so without these their streams would fall under the small defaults for
// unknown services. The figures are go-libp2p v0.51's (its
// SetDefaultServiceLimits), kept here so that a host built without
// go-libp2p's root package (which links every transport it has) gets the
// same.
func ServiceLimits(cfg *rcmgr.ScalingLimitConfig) {
	for _, s := range serviceLimits {
		if s.service != "" {
			cfg.AddServiceLimit(s.service, s.all, s.allIncrease)
			cfg.AddServicePeerLimit(s.service, s.servicePeer(), rcmgr.BaseLimitIncrease{})
		}
		for _, p := range s.protocols {
			cfg.AddProtocolLimit(p, s.all, s.allIncrease)
			cfg.AddProtocolPeerLimit(p, s.peer, rcmgr.BaseLimitIncrease{})
		}
	}
}

// serviceLimit is one service's row: the limit over all peers and how it
// grows with memory, and the limit per peer, applied to the service and
// to each of its protocols.
type serviceLimit struct {
	service     string
	protocols   []protocol.ID
	all         rcmgr.BaseLimit
	allIncrease rcmgr.BaseLimitIncrease
	peer        rcmgr.BaseLimit
	// peerService, when set, is the per-peer limit of the service itself
	// where it differs from its protocols' (identify's memory).
	peerService *rcmgr.BaseLimit
}

func (s serviceLimit) servicePeer() rcmgr.BaseLimit {
	if s.peerService != nil {
		return *s.peerService
	}
	return s.peer
}

// streams is a limit of in, out and total streams and memory.
func streams(in, out, total int, memory int64) rcmgr.BaseLimit {
	return rcmgr.BaseLimit{StreamsInbound: in, StreamsOutbound: out, Streams: total, Memory: memory}
}

func increase(in, out, total int, memory int64) rcmgr.BaseLimitIncrease {
	return rcmgr.BaseLimitIncrease{StreamsInbound: in, StreamsOutbound: out, Streams: total, Memory: memory}
}

// bigPeerMemory is the per-peer protocol memory go-libp2p grants identify
// and ping: effectively unbounded by memory, bounded by streams.
const bigPeerMemory = 32 * (256<<20 + 16<<10)

var serviceLimits = []serviceLimit{
	{
		service:     identify.ServiceName,
		protocols:   []protocol.ID{identify.ID, identify.IDPush},
		all:         streams(64, 64, 128, 4<<20),
		allIncrease: increase(64, 64, 128, 4<<20),
		peer:        streams(16, 16, 32, bigPeerMemory),
		peerService: &rcmgr.BaseLimit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: 1 << 20},
	},
	{
		service:     ping.ServiceName,
		protocols:   []protocol.ID{ping.ID},
		all:         streams(64, 64, 64, 4<<20),
		allIncrease: increase(64, 64, 64, 4<<20),
		peer:        streams(2, 3, 4, bigPeerMemory),
	},
	{
		service:     autonat.ServiceName,
		protocols:   []protocol.ID{autonat.AutoNATProto},
		all:         streams(64, 64, 64, 4<<20),
		allIncrease: increase(4, 4, 4, 2<<20),
		peer:        streams(2, 2, 2, 1<<20),
	},
	{
		service:     holepunch.ServiceName,
		protocols:   []protocol.ID{holepunch.Protocol},
		all:         streams(32, 32, 64, 4<<20),
		allIncrease: increase(8, 8, 16, 4<<20),
		peer:        streams(2, 2, 2, 1<<20),
	},
	{
		service:     relayv2.ServiceName,
		all:         streams(256, 256, 256, 16<<20),
		allIncrease: increase(256, 256, 256, 16<<20),
		peerService: &rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 1 << 20},
	},
	{
		protocols:   []protocol.ID{circuit.ProtoIDv2Hop, circuit.ProtoIDv2Stop},
		all:         streams(640, 640, 640, 16<<20),
		allIncrease: increase(640, 640, 640, 16<<20),
		peer:        streams(128, 128, 128, 32<<20),
	},
}
