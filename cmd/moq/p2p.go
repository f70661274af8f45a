package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/internal/identity"
	"github.com/moqp2p/moqp2p/metrics"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// p2pNode is the libp2p side of a node: a host with the p2pquic transport
// and a moq.Moq on it.
type p2pNode struct {
	h    host.Host
	m    *moq.Moq
	d    *dht.IpfsDHT // nil without a DHT
	log  *slog.Logger
	done chan struct{}        // closed when the incoming-session loop has ended
	reg  *prometheus.Registry // with --metrics, else nil (observe.go)
	tot  *totals              // every session's media, for the summary
}

// newP2P builds the libp2p host. moq.NewHost binds a QUIC listen address
// with a specific IP on the unspecified IP of its family (p2pquic shares
// only such sockets), advertises only the IP asked for, and refuses QUIC
// connections from elsewhere when every such IP is a loopback one. A node
// that only dials listens on an ephemeral unspecified port (raw QUIC dials
// leave from the host's socket) and refuses every inbound connection.
//
// With --bootstrap (or as moq node) the host runs moqp2p's DHT: as a server
// for moq node, as a client when it accepts no connections, else as
// discovery.NewDHT decides (a server unless the host learns it is
// unreachable). Joining it is join's job.
func newP2P(ctx context.Context, cfg nodeConfig, offer func(peerSession)) (*p2pNode, error) {
	plan, err := planListen(cfg.listens, slices.Concat(cfg.connects, cfg.net.boot, cfg.dials))
	if err != nil {
		return nil, err
	}
	if plan.widened {
		cfg.log.Warn("p2pquic listens on the unspecified address; advertising only the requested IPs", "listen", plan.bind)
	}
	key, err := identity.Load(cfg.net.identity)
	var pe *fs.PathError
	switch {
	case err != nil && errors.As(err, &pe):
		return nil, fmt.Errorf("--identity: %w", err) // names the file and what failed
	case err != nil:
		return nil, fmt.Errorf("--identity: %s holds no libp2p private key (%v); moq writes a new key to a file that does not exist: give another path, or remove this one for a new peer ID", cfg.net.identity, cmp.Or(errors.Unwrap(err), err))
	}
	tr := p2pquic.New(p2pquic.Config{Logger: cfg.log, DeadPeerTimeout: cfg.net.deadPeer})
	// moq.NewHost: QUIC, TCP and circuit relays (what libp2p.New would give
	// this host, with moqp2p's stream limits) without linking libp2p's
	// WebTransport, WebSocket and WebRTC transports.
	hc := moq.HostConfig{
		Key:             key,
		ListenAddrs:     append([]ma.Multiaddr{}, plan.bind...),
		Relay:           true,
		AddrsFactory:    plan.advertise,
		ConnectionGater: plan.gate,
		UserAgent:       "moqp2p-cli",
	}
	if plan.quic {
		hc.QUIC = tr
	}
	hc.NAT = natConfig(cfg, plan)
	if err := checkPortsFree(cfg.listens); err != nil {
		return nil, err
	}
	h, err := moq.NewHost(hc)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("--listen: an address is already in use (%s)", listenList(cfg.listens))
		}
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	mopts := []moq.Option{
		moq.WithLogger(cfg.log),
		moq.WithDialTimeout(cfg.net.timeout),
		moq.WithDeadPeerTimeout(cfg.net.deadPeer),
		moq.WithShutdownGrace(2 * time.Second),
		moq.WithLimits(sessionLimits()),
	}
	if cfg.interest != nil {
		mopts = append(mopts, moq.WithInterest(cfg.interest...))
	}
	if len(hc.NAT.StaticRelays) > 0 {
		// Behind a NAT: when punching fails and a limited circuit is cut,
		// go on through the relay node at the MoQ level (moq node
		// --relay-service forwards).
		mopts = append(mopts, moq.WithRelayFallback())
	}
	mopts = append(mopts, cfg.moqOpts...)
	if plan.quic {
		mopts = append(mopts, moq.WithQUIC(tr))
	}
	var d *dht.IpfsDHT
	if cfg.dhtServer || len(cfg.net.boot) > 0 {
		var dopts []dht.Option
		switch {
		case cfg.dhtServer:
			dopts = append(dopts, dht.Mode(dht.ModeServer))
		case plan.gate.refuseAll:
			dopts = append(dopts, dht.Mode(dht.ModeClient))
		}
		if d, err = discovery.NewDHT(h, dopts...); err != nil {
			_ = h.Close()
			return nil, fmt.Errorf("DHT: %w", err)
		}
		mopts = append(mopts, moq.WithDHT(d), moq.WithProviderTimeout(cfg.net.timeout))
	}
	if cfg.net.mdns {
		mopts = append(mopts, moq.WithMDNS(""))
	}
	var reg *prometheus.Registry
	tot := &totals{}
	if cfg.net.metrics != "" {
		reg = newRegistry()
		tot.inner = metrics.NewTracer(metrics.WithRegisterer(reg))
	}
	mopts = append(mopts, moq.WithMetricsTracer(tot))
	m, err := moq.New(h, mopts...)
	if err != nil {
		if d != nil {
			_ = d.Close()
		}
		_ = h.Close()
		return nil, fmt.Errorf("moq node: %w", err)
	}
	if cfg.net.serveStats {
		if plan.gate.refuseAll {
			cfg.log.Warn("--serve-stats: no peer can ask, the node accepts no libp2p connection (give --listen /ip4/…/udp/PORT/quic-v1)")
		}
		serveStats(m, cfg.log)
	}
	p := &p2pNode{h: h, m: m, d: d, log: cfg.log, done: make(chan struct{}), reg: reg, tot: tot}
	serving := slices.ContainsFunc(cfg.listens, func(e endpoint) bool { return e.kind != kindP2P })
	if cfg.incoming && (!plan.gate.refuseAll || serving) {
		go p.acceptLoop(offer)
	} else {
		close(p.done)
	}
	return p, nil
}

// acceptLoop offers every session a peer opens to us: the iteration
// yields those admitted before it started first, so none is missed.
func (p *p2pNode) acceptLoop(offer func(peerSession)) {
	defer close(p.done)
	for s := range p.m.IncomingSessions() { // ends at Shutdown
		offer(&p2pSession{s: s})
	}
}

func (p *p2pNode) connect(ctx context.Context, e endpoint) (peerSession, error) {
	s, err := p.m.Connect(ctx, e.addrInfo())
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, context.DeadlineExceeded
		}
		return nil, errors.New(oneLine(err.Error()))
	}
	return &p2pSession{s: s}, nil
}

func (p *p2pNode) sessions(ctx context.Context) []peerSession {
	list, _ := p.m.Sessions(ctx)
	out := make([]peerSession, len(list))
	for i, s := range list {
		out[i] = &p2pSession{s: s}
	}
	return out
}

// addrs are the node's advertised addresses with /p2p/<id>.
func (p *p2pNode) addrs() []string {
	var out []string
	for _, a := range p.h.Addrs() {
		out = append(out, a.String()+"/p2p/"+p.h.ID().String())
	}
	return out
}

func (p *p2pNode) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.m.Shutdown(ctx)
	<-p.done
	if p.d != nil {
		_ = p.d.Close()
	}
	_ = p.h.Close()
}

// dhtProtocol is the protocol of moqp2p's DHT (see discovery.NewDHT).
const dhtProtocol = protocol.ID(discovery.ProtocolPrefix + "/kad/1.0.0")

// join connects the host to the bootstrap peers, all at once, within d. It
// fails if none answers; one that does not is only logged. Then it waits,
// within what is left of d, until the DHT's routing table holds a peer (if
// a bootstrap peer runs the DHT), so that the first provide or lookup has
// someone to ask, and has the DHT refresh its table in the background.
func (p *p2pNode) join(ctx context.Context, boot []endpoint, d time.Duration) error {
	if len(boot) == 0 || p.d == nil {
		return nil
	}
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	peers, names := addrInfos(boot)
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, info := range peers {
		wg.Go(func() { errs[i] = p.h.Connect(ctx, info) })
	}
	wg.Wait()
	var reached []peer.ID
	var failures []error
	for i, err := range errs {
		switch {
		case err == nil:
			reached = append(reached, peers[i].ID)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
			failures = append(failures, fmt.Errorf("bootstrap %s: no answer within %s (is moq node running there, with that peer ID?)", names[i], waited(started, d)))
		default:
			failures = append(failures, fmt.Errorf("bootstrap %s: %s", names[i], oneLine(err.Error())))
		}
	}
	switch {
	case len(reached) == 0 && errors.Is(ctx.Err(), context.Canceled):
		return ctx.Err() // interrupted
	case len(reached) == 0:
		return failures[0]
	}
	for _, err := range failures {
		p.log.Warn("bootstrap peer unreachable", "err", err)
	}
	dhtPeers := 0
	for _, id := range reached {
		if ok, _ := p.h.Peerstore().SupportsProtocols(id, dhtProtocol); len(ok) > 0 {
			dhtPeers++
		}
	}
	if dhtPeers == 0 {
		p.log.Warn("no bootstrap peer runs the DHT", "protocol", dhtProtocol)
	} else if err := p.waitRoutingTable(ctx, d); err != nil {
		return err
	}
	return p.d.Bootstrap(ctx)
}

// waitRoutingTable waits until the DHT's routing table holds a peer, or ctx
// ends: an interrupt is an error, the deadline only a warning. The DHT has
// no event for a first peer (its table's hooks are its own), so it looks
// every 10 ms: bootstrap starts at most that late.
func (p *p2pNode) waitRoutingTable(ctx context.Context, d time.Duration) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for p.d.RoutingTable().Size() == 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			p.log.Warn("the DHT's routing table is still empty", "after", d)
			return nil
		}
	}
	return nil
}

// addrInfos groups endpoints by peer; names are the first endpoint of each,
// for messages.
func addrInfos(eps []endpoint) (infos []peer.AddrInfo, names []string) {
	at := map[peer.ID]int{}
	for _, e := range eps {
		i, ok := at[e.peer]
		if !ok {
			i = len(infos)
			at[e.peer] = i
			infos = append(infos, peer.AddrInfo{ID: e.peer})
			names = append(names, e.String())
		}
		infos[i].Addrs = append(infos[i].Addrs, e.maddr)
	}
	return infos, names
}

// p2pSession is a session of the node: over libp2p, or with a client or
// server without a libp2p identity (moql://, WebTransport, WebSocket).
type p2pSession struct {
	s *moq.Session
	// name and via, if set, say what Peer and Via say: the URL dialed
	// and its transport.
	name, via string
}

func (p *p2pSession) Peer() string {
	if p.name != "" {
		return p.name
	}
	return server.SessionPeer(p.s) // a peer ID, or "client ADDR" of a --listen URL
}

func (p *p2pSession) Announced(ctx context.Context, prefix string) iter.Seq2[string, *broadcast.Consumer] {
	return p.s.Announced(ctx, prefix)
}

func (p *p2pSession) Subscribe(ctx context.Context, name, track string) (*broadcast.TrackConsumer, error) {
	tc, err := p.s.SubscribeWith(ctx, name, track, subscribeOptions)
	return tc, p.subscribeErr(name, track, err)
}

// subscribeErr tells a failed subscription on the session apart: the
// session ended, or the broadcast lacks the track.
func (p *p2pSession) subscribeErr(name, track string, err error) error {
	if errors.Is(err, moq.ErrNotAnnounced) {
		// The session ended under us: that is the news, not the broadcast.
		if p.s.Err() != nil {
			return sessionEnded(p)
		}
		return fmt.Errorf("%s: session ended before broadcast %q was announced", p.Peer(), name)
	}
	if errors.Is(err, broadcast.ErrNotFound) && !errors.Is(err, broadcast.ErrUnroutable) && p.s.Err() == nil {
		// Subscribe waited for the announcement, so the broadcast is there:
		// what the peer does not have is the track (Unroutable says the
		// broadcast went meanwhile). Not wrapped: callers read ErrNotFound
		// as a missing broadcast.
		return fmt.Errorf("unknown track %q: %s publishes broadcast %q but not this track (%v)", track, p.Peer(), name, err)
	}
	return err
}

func (p *p2pSession) Done() <-chan struct{} { return p.s.Closed() }
func (p *p2pSession) Err() error            { return p.s.Err() }
func (p *p2pSession) Close(reason string)   { _ = p.s.Close(broadcast.CodeCancel, reason) }
func (p *p2pSession) RTT() time.Duration    { return p.s.Stats().RTT }

// Via tells the transports apart (server.SessionVia), or names the URL's.
func (p *p2pSession) Via() string {
	if p.via != "" {
		return p.via
	}
	return server.SessionVia(p.s)
}

// checkPortsFree fails with one line naming the --listen multiaddr whose
// fixed UDP port is taken, before libp2p would fail on it with an error from
// deep inside its dependency injection naming the address it widened to.
// (Losing a race with another process leaves libp2p's own error, folded
// into one line by newP2P.) TCP listens share ports (SO_REUSEPORT).
func checkPortsFree(listens []endpoint) error {
	for _, e := range listens {
		if e.kind != kindP2P || !isQUICAddr(e.maddr) || e.maddr[1].Value() == "0" {
			continue
		}
		ip, err := manet.ToIP(e.maddr)
		if err != nil {
			continue
		}
		if !ip.IsUnspecified() { // p2pquic binds the unspecified IP (see newP2P)
			if ip.To4() != nil {
				ip = net.IPv4zero
			} else {
				ip = net.IPv6unspecified
			}
		}
		pc, err := net.ListenPacket("udp", net.JoinHostPort(ip.String(), e.maddr[1].Value()))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("--listen %s: address already in use", e)
			}
			return fmt.Errorf("--listen %s: %v", e, err)
		}
		_ = pc.Close()
	}
	return nil
}

// listenList names the --listen multiaddrs, for messages.
func listenList(listens []endpoint) string {
	var out []string
	for _, e := range listens {
		if e.kind == kindP2P {
			out = append(out, e.raw)
		}
	}
	return strings.Join(out, ", ")
}

// natConfig is the NAT traversal a node runs. A relay service node
// (--relay-service) is declared public: its operator runs it on a public
// address. A node with --bootstrap peers learns its reachability (AutoNAT),
// reserves a slot on those that relay while it is private (AutoRelay) and
// hole-punches (DCUtR); it then accepts connections even when it listens
// on nothing, since a peer's relayed connection, and half of the punched
// ones, arrive as inbound.
func natConfig(cfg nodeConfig, plan *listenPlan) moq.NATConfig {
	if cfg.relay != nil {
		return moq.NATConfig{RelayService: cfg.relay, Reachability: network.ReachabilityPublic, AutoNAT: true}
	}
	if len(cfg.net.boot) == 0 || !plan.quic {
		return moq.NATConfig{}
	}
	relays, _ := addrInfos(cfg.net.boot)
	plan.gate.nat = true
	nat := moq.NATConfig{AutoNAT: true, HolePunching: true, StaticRelays: relays}
	if !publicInterface() {
		// No interface has a public address, so no peer can dial this
		// host's own addresses: it is private, whatever AutoNAT would
		// conclude (which takes a while, and more peers than a bootstrap
		// node to observe the NAT's address). Reserving a relay slot at
		// once makes the node reachable as soon as it starts.
		nat.Reachability = network.ReachabilityPrivate
	}
	return nat
}

// publicInterface reports whether an interface of this host has an
// address that go-multiaddr counts as public.
func publicInterface() bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // unknown: let AutoNAT find out
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if m, err := manet.FromIP(ipn.IP); err == nil && manet.IsPublicAddr(m) {
				return true
			}
		}
	}
	return false
}

// listenPlan is how a host listens for the requested multiaddrs.
type listenPlan struct {
	bind    []ma.Multiaddr
	quic    bool // some QUIC listen address: use p2pquic
	widened bool // a QUIC address on a specific non-loopback IP (NewHost binds it unspecified)
	gate    *gate
}

// planListen plans for the listen endpoints; dials are the libp2p peers the
// node will dial (--connect, --bootstrap, a ticket's addresses).
func planListen(listens, dials []endpoint) (*listenPlan, error) {
	p := &listenPlan{gate: &gate{}}
	for _, e := range listens {
		if e.kind != kindP2P {
			continue
		}
		ip, err := manet.ToIP(e.maddr)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", e, err)
		}
		quic := isQUICAddr(e.maddr)
		p.quic = p.quic || quic
		p.widened = p.widened || quic && !ip.IsUnspecified() && !ip.IsLoopback()
		p.bind = append(p.bind, e.maddr)
	}
	if len(p.bind) > 0 {
		return p, nil
	}
	// Dial only: a QUIC socket per family we dial, accepting nothing.
	p.gate.refuseAll = true
	families := map[string]bool{}
	for _, e := range dials {
		if e.kind == kindP2P {
			if len(e.maddr) > 0 && (e.maddr[0].Code() == ma.P_IP6 || e.maddr[0].Code() == ma.P_DNS6) {
				families["/ip6/::/udp/0/quic-v1"] = true
			} else {
				families["/ip4/0.0.0.0/udp/0/quic-v1"] = true
			}
		}
	}
	if len(families) == 0 { // found by discovery: IPv4 is the likelier
		families["/ip4/0.0.0.0/udp/0/quic-v1"] = true
	}
	for f := range families {
		p.bind = append(p.bind, ma.StringCast(f))
	}
	p.quic = true
	return p, nil
}

// advertise keeps what a dial-only node may be reached at: nothing, or
// behind a NAT its circuit addresses through relays. A listening node
// advertises what the host lists (NewHost already keeps only the IPs asked
// for).
func (p *listenPlan) advertise(addrs []ma.Multiaddr) []ma.Multiaddr {
	if !p.gate.refuseAll {
		return addrs
	}
	if !p.gate.nat {
		return nil
	}
	var circuits []ma.Multiaddr
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			circuits = append(circuits, a)
		}
	}
	return circuits
}

// gate is the host's connection gater: it refuses inbound connections a
// node must not take (see newP2P).
type gate struct {
	refuseAll bool
	// nat: a dial-only node behind a NAT still takes relayed and
	// hole-punched connections.
	nat bool
}

func (g *gate) InterceptPeerDial(peer.ID) bool               { return true }
func (g *gate) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g *gate) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func (g *gate) InterceptAccept(c network.ConnMultiaddrs) bool {
	return !g.refuseAll || g.nat
}

// oneLine folds a multi-line error text (libp2p's dial errors list every
// address tried) into one line.
func oneLine(s string) string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i, f := range fields {
		fields[i] = strings.TrimSpace(f)
	}
	return strings.Join(fields, "; ")
}
