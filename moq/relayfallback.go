package moq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// WithRelayFallback keeps media flowing between peers that cannot punch a
// hole (symmetric NATs) through the moqp2p circuit relay nodes they
// already use, at the MoQ level: a relay that forwards broadcasts
// (WithForwarding, as moq node --relay-service does) carries the track
// once the limited circuit it gave them is cut. Two halves, for nodes
// behind NATs (HostConfig.NAT.StaticRelays):
//
//   - While the node publishes something and holds a slot on a relay that
//     speaks moq-lite, it keeps a moq session with that relay (Keep), so
//     the relay learns its broadcasts. Nothing flows on it until someone
//     subscribes there.
//   - Unless WithPathFallback set another, the node's PathFallback opens a
//     session with each moq-lite circuit relay it knows (the one whose
//     circuit reached the publisher first, then those it is connected to)
//     and continues the subscription on the first that announces the
//     broadcast within the fallback wait, from the group the cut left
//     unfinished.
//
// A relay that does not forward costs one idle session each publisher.
func WithRelayFallback() Option { return func(o *options) { o.relayFallback = true } }

// relayFallbackWait bounds how long the fallback waits for one relay to
// announce the broadcast.
const relayFallbackWait = 3 * time.Second

// relayKeepPoll is how often the publishing half looks again at the
// host's reservations and the node's publications (besides each change of
// the host's addresses).
const relayKeepPoll = time.Second

// moqProtocols are the libp2p protocols a moqp2p node serves sessions on.
var moqProtocols = []protocol.ID{p2pstream.ProtocolLite05, p2pstream.ProtocolLite04, p2pstream.ProtocolLite03}

// speaksMoq reports whether the host's peerstore says p serves moq-lite
// sessions.
func (m *Moq) speaksMoq(p peer.ID) bool {
	got, err := m.h.Peerstore().SupportsProtocols(p, moqProtocols...)
	return err == nil && len(got) > 0
}

// relaysCircuits reports whether the peerstore says p relays circuits.
func (m *Moq) relaysCircuits(p peer.ID) bool {
	got, err := m.h.Peerstore().SupportsProtocols(p, circuit.ProtoIDv2Hop)
	return err == nil && len(got) > 0
}

// circuitRelayOf returns the relay peer of a circuit address
// (…/p2p/RELAY/p2p-circuit/…), if a is one.
func circuitRelayOf(a ma.Multiaddr) (peer.ID, bool) {
	var relay peer.ID
	found := false
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_P2P:
			if !found {
				if id, err := peer.Decode(c.Value()); err == nil {
					relay = id
				}
			}
		case ma.P_CIRCUIT:
			found = relay != ""
			if found {
				return relay, true
			}
		}
	}
	return "", false
}

// fallbackRelays lists the moq-lite circuit relays to try for peer p: the
// relays in p's known circuit addresses first, then every connected relay.
func (m *Moq) fallbackRelays(p peer.ID) []peer.ID {
	var out []peer.ID
	add := func(r peer.ID) {
		if r != p && r != m.h.ID() && !slices.Contains(out, r) && m.speaksMoq(r) {
			out = append(out, r)
		}
	}
	for _, a := range m.h.Peerstore().Addrs(p) {
		if r, ok := circuitRelayOf(a); ok {
			add(r)
		}
	}
	for _, r := range m.h.Network().Peers() {
		if m.relaysCircuits(r) {
			add(r)
		}
	}
	return out
}

// relayFallback is WithRelayFallback's PathFallback: a session with the
// first moq-lite circuit relay that announces name.
func (m *Moq) relayFallback(ctx context.Context, p peer.ID, name string) (*Session, error) {
	relays := m.fallbackRelays(p)
	if len(relays) == 0 {
		return nil, errors.New("no moqp2p circuit relay known to forward the broadcast")
	}
	var errs []error
	for _, r := range relays {
		s, err := m.Connect(ctx, peer.AddrInfo{ID: r})
		if err == nil {
			wctx, cancel := context.WithTimeout(ctx, relayFallbackWait)
			err = s.waitAnnounced(wctx, name)
			cancel()
			if err == nil {
				m.log.Info("continuing through a forwarding relay", "peer", p, "relay", r, "broadcast", name)
				return s, nil
			}
		}
		errs = append(errs, fmt.Errorf("relay %s: %w", r, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no relay forwards %q: %w", name, errors.Join(errs...))
}

// keepRelaySessions runs WithRelayFallback's publishing half until the
// node shuts down: a kept session with each moq-lite relay the host holds
// a slot on, while the node publishes.
func (m *Moq) keepRelaySessions(sub event.Subscription) {
	defer sub.Close()
	kept := map[peer.ID]*Link{}
	defer func() {
		for _, l := range kept {
			l.Detach()
		}
	}()
	tick := time.NewTicker(relayKeepPoll)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-sub.Out():
		case <-tick.C:
		}
		want := map[peer.ID]bool{}
		if names, err := m.a.Published(m.ctx); err == nil && len(names) > 0 {
			for _, a := range m.h.Addrs() {
				if !strings.Contains(a.String(), "/p2p-circuit") {
					continue
				}
				if r, ok := circuitRelayOf(a); ok && m.speaksMoq(r) {
					want[r] = true
				}
			}
		}
		for r := range want {
			if kept[r] == nil {
				m.log.Debug("keeping a session with the relay that holds our slot, for it to forward our broadcasts", "relay", r)
				kept[r] = m.Keep(peer.AddrInfo{ID: r}, KeepOptions{})
			}
		}
		for r, l := range kept {
			if !want[r] {
				l.Detach()
				delete(kept, r)
			}
		}
	}
}

// startRelayFallback starts both halves; New calls it with
// WithRelayFallback.
func (m *Moq) startRelayFallback() error {
	if m.fallback == nil {
		m.fallback = m.relayFallback
	}
	sub, err := m.h.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return err
	}
	m.wg.Go(func() { m.keepRelaySessions(sub) })
	return nil
}
