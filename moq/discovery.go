package moq

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/moqp2p/moqp2p/discovery"
)

// discoveryOptions are the options about finding broadcasts and peers.
type discoveryOptions struct {
	router          routing.ContentRouting
	provide         bool
	provideSet      bool
	provideInterval time.Duration
	providerTimeout time.Duration
	mdns            bool
	mdnsService     string
	bootstrap       []peer.AddrInfo
}

// WithDHT makes the node find broadcasts through r, typically a
// *dht.IpfsDHT made with discovery.NewDHT on the same host (any
// routing.ContentRouting will do; if it is also a routing.PeerRouting,
// Connect and tickets use it to find peers' addresses). Publish then
// provides each broadcast's name in r and re-provides it while it is
// published (see WithProvide), and Subscribe and Find look names up in it.
// The caller keeps owning r: Shutdown does not close it.
func WithDHT(r routing.ContentRouting) Option {
	return func(o *options) { o.discovery.router = r }
}

// WithProvide turns providing published broadcasts in the DHT on or off. It
// is on by default when WithDHT is given; WithProvide(false) keeps
// publications off the DHT while still looking others up.
func WithProvide(on bool) Option {
	return func(o *options) { o.discovery.provide, o.discovery.provideSet = on, true }
}

// WithProvideInterval sets how often a published broadcast is re-provided
// (default discovery.DefaultProvideInterval). Keep it well below the record
// lifetime of the DHT's peers (discovery.RecordTTL).
func WithProvideInterval(d time.Duration) Option {
	return func(o *options) { o.discovery.provideInterval = d }
}

// WithProviderTimeout bounds what Subscribe spends on one provider found in
// the DHT (connecting, then waiting for the broadcast) before trying the
// next one (default 10 s).
func WithProviderTimeout(d time.Duration) Option {
	return func(o *options) { o.discovery.providerTimeout = d }
}

// WithMDNS announces the node on the local network with mDNS and opens a
// session to every moqp2p peer found under the same service name
// (discovery.DefaultMDNSService if empty), so that Subscribe finds their
// broadcasts by name. Off by default: mDNS multicasts on every
// multicast-capable interface.
func WithMDNS(serviceName string) Option {
	return func(o *options) { o.discovery.mdns, o.discovery.mdnsService = true, serviceName }
}

// WithBootstrap connects the host to these peers when the node starts (in
// the background; failures are logged), then asks the DHT, if any, to
// refresh its routing table. They are the way into a DHT.
func WithBootstrap(peers ...peer.AddrInfo) Option {
	return func(o *options) { o.discovery.bootstrap = append(o.discovery.bootstrap, peers...) }
}

// discoverer is the node's discovery state, fixed at New.
type discoverer struct {
	router          routing.ContentRouting
	provider        *discovery.Provider // nil: publications are not provided
	relay           *discovery.Provider // provides RelayKey; nil: not advertised as a relay
	mdns            *discovery.MDNS
	providerTimeout time.Duration
}

// startDiscovery starts providing, mDNS and bootstrapping as configured,
// and advertising the node as a relay if fwd asks for it. It runs in New,
// after the actor.
func (m *Moq) startDiscovery(o discoveryOptions, fwd *Forwarding) error {
	m.disc.router = o.router
	m.disc.providerTimeout = o.providerTimeout
	if m.disc.providerTimeout <= 0 {
		m.disc.providerTimeout = 10 * time.Second
	}
	if o.router != nil && (o.provide || !o.provideSet) {
		m.disc.provider = discovery.NewProvider(o.router, discovery.ProviderConfig{
			Interval: o.provideInterval,
			Logger:   m.log,
		})
	}
	if o.router != nil && fwd != nil && fwd.Advertise {
		// Its own Provider: WithProvide(false) keeps publications off the
		// DHT, not the relay record.
		m.disc.relay = discovery.NewProvider(o.router, discovery.ProviderConfig{
			Interval: o.provideInterval,
			Logger:   m.log,
		})
		m.disc.relay.ProvideRelay(m.ctx)
		limit := fwd.MaxAdvertised
		if limit <= 0 {
			limit = DefaultMaxAdvertised
		}
		m.wg.Go(func() { m.advertiseForwarded(m.disc.relay, limit) })
	}
	if len(o.bootstrap) > 0 {
		m.wg.Go(func() { m.bootstrap(o.bootstrap) })
	}
	if o.mdns {
		md, err := discovery.StartMDNS(m.h, discovery.MDNSConfig{
			ServiceName: o.mdnsService,
			Found:       m.mdnsFound,
			Logger:      m.log,
		})
		if err != nil {
			return err
		}
		m.disc.mdns = md
	}
	return nil
}

// stopDiscovery stops mDNS; stopProviding stops the re-provide loops.
func (m *Moq) stopDiscovery() {
	if m.disc.mdns != nil {
		_ = m.disc.mdns.Close()
	}
}

func (m *Moq) stopProviding() {
	if m.disc.provider != nil {
		m.disc.provider.Close()
	}
	if m.disc.relay != nil {
		m.disc.relay.Close()
	}
}

// bootstrap connects the host to the bootstrap peers, then refreshes the
// DHT's routing table.
func (m *Moq) bootstrap(peers []peer.AddrInfo) {
	ctx, cancel := context.WithTimeout(m.ctx, m.dialTimeout)
	defer cancel()
	done := make(chan struct{}, len(peers))
	for _, p := range peers {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := m.h.Connect(ctx, p); err != nil {
				m.log.Warn("bootstrap peer unreachable", "peer", p.ID, "err", err)
			}
		}()
	}
	for range peers {
		<-done
	}
	if b, ok := m.disc.router.(interface{ Bootstrap(context.Context) error }); ok && ctx.Err() == nil {
		if err := b.Bootstrap(ctx); err != nil {
			m.log.Warn("DHT bootstrap failed", "err", err)
		}
	}
}

// mdnsFound opens a session to a peer mDNS found. Both peers find each
// other; the one with the smaller ID dials at once and the other only if no
// session exists a second later, so that usually one session results.
func (m *Moq) mdnsFound(ctx context.Context, info peer.AddrInfo) {
	if info.ID == m.h.ID() {
		return
	}
	if m.h.ID() > info.ID {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, m.dialTimeout)
	defer cancel()
	if _, err := m.Connect(ctx, info); err != nil {
		m.log.Debug("mDNS peer: no session", "peer", info.ID, "err", err)
	}
}

// findAddrs asks the DHT's peer routing for a peer's addresses when the
// host has neither a connection to it nor an address for it.
func (m *Moq) findAddrs(ctx context.Context, id peer.ID) {
	pr, ok := m.disc.router.(routing.PeerRouting)
	if !ok || m.h.Network().Connectedness(id) == network.Connected || len(m.h.Peerstore().Addrs(id)) > 0 {
		return
	}
	info, err := pr.FindPeer(ctx, id)
	if err != nil {
		m.log.Debug("peer routing found no addresses", "peer", id, "err", err)
		return
	}
	m.h.Peerstore().AddAddrs(id, info.Addrs, peerstore.TempAddrTTL)
}
