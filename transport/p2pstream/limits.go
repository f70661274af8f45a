package p2pstream

import (
	"maps"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
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
// conflicts with any other libp2p.ResourceManager option.
func ResourceManager(streamsPerPeer int) libp2p.Option {
	return func(cfg *libp2p.Config) error {
		limits := rcmgr.DefaultLimits
		libp2p.SetDefaultServiceLimits(&limits)
		Limits(&limits, streamsPerPeer)
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
		if err != nil {
			return err
		}
		if err := cfg.Apply(libp2p.ResourceManager(rm)); err != nil {
			_ = rm.Close()
			return err
		}
		return nil
	}
}
