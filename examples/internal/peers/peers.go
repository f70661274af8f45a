// Package peers builds the moqp2p nodes the examples run: a libp2p host
// (moq.NewHost) with the QUIC transport whose socket moq-lite shares, and a
// moq.Moq on it.
//
// The examples stay on this machine: a host listens on the unspecified
// address (p2pquic can only share a socket bound there) but advertises only
// its loopback addresses, and its connection gater refuses to dial or accept
// anything else.
package peers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/internal/identity"
	"github.com/moqp2p/moqp2p/moq"
)

// Config describes a peer. The zero value is a peer with a fresh identity on
// a free UDP port.
type Config struct {
	// Port is the UDP port to listen on; 0 picks a free one.
	Port int
	// KeyFile, if set, holds the peer's private key, so that its peer ID
	// survives restarts; a missing file is created with a new key.
	KeyFile string
	// DHT runs moqp2p's DHT (discovery.NewDHT) on the peer's host, as a
	// server, and gives it to the node (moq.WithDHT): the node provides the
	// broadcasts it publishes there and finds others' by name. Pass
	// moq.WithBootstrap to New to join other peers' DHT.
	DHT bool
}

// Peer is a moqp2p node on its own loopback-only libp2p host. It embeds the
// *moq.Moq, so p.Publish, p.Connect and p.IncomingSessions are the node's.
type Peer struct {
	*moq.Moq
	Host host.Host
	DHT  *dht.IpfsDHT // nil unless Config.DHT

	closeOnce sync.Once
}

// New starts a peer. opts go to moq.New after the peer's defaults (a logger
// that only reports warnings), so they can override them.
func New(cfg Config, opts ...moq.Option) (*Peer, error) {
	key, err := identity.Load(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	q := moq.NewQUICTransport(moq.QUICConfig{})
	listen, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", cfg.Port))
	if err != nil {
		return nil, err
	}
	// moq.NewHost, not libp2p.New: the examples link no transport they do
	// not use (libp2p.New's WebTransport, WebSocket and WebRTC).
	h, err := moq.NewHost(moq.HostConfig{
		Key:             key,
		ListenAddrs:     []ma.Multiaddr{listen},
		QUIC:            q,
		AddrsFactory:    loopbackOnly,
		ConnectionGater: loopbackGater{},
	})
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defaults := []moq.Option{moq.WithQUIC(q), moq.WithLogger(quiet)}
	var d *dht.IpfsDHT
	if cfg.DHT {
		// A server whatever the host learns of its reachability: on
		// loopback every peer must answer DHT queries.
		if d, err = discovery.NewDHT(h, dht.Mode(dht.ModeServer)); err != nil {
			_ = h.Close()
			return nil, err
		}
		defaults = append(defaults, moq.WithDHT(d))
	}
	m, err := moq.New(h, append(defaults, opts...)...)
	if err != nil {
		if d != nil {
			_ = d.Close()
		}
		_ = h.Close()
		return nil, err
	}
	return &Peer{Moq: m, Host: h, DHT: d}, nil
}

// ID is the peer's ID.
func (p *Peer) ID() peer.ID { return p.Host.ID() }

// Info is what another peer passes to Connect to reach this one.
func (p *Peer) Info() peer.AddrInfo {
	return peer.AddrInfo{ID: p.Host.ID(), Addrs: p.Host.Addrs()}
}

// Addr is the peer's first address with its ID, e.g.
// /ip4/127.0.0.1/udp/4242/quic-v1/p2p/12D3KooW…, for another process's -peer
// flag.
func (p *Peer) Addr() string {
	info := p.Info()
	addrs, err := peer.AddrInfoToP2pAddrs(&info)
	if err != nil || len(addrs) == 0 {
		return "/p2p/" + p.ID().String()
	}
	return addrs[0].String()
}

// ParsePeer reads a -peer flag's value, a multiaddr ending in
// /p2p/<peer-id>; who names the peer that printed it, for the error when
// the flag is missing.
func ParsePeer(addr, who string) (*peer.AddrInfo, error) {
	if addr == "" {
		return nil, fmt.Errorf("-peer is required: the address %s printed, /ip4/…/udp/…/quic-v1/p2p/<peer-id>", who)
	}
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return nil, fmt.Errorf("-peer %s: %w (want the address %s printed, /ip4/…/udp/…/quic-v1/p2p/<peer-id>)", addr, err, who)
	}
	return info, nil
}

// Dial connects to the peer at a multiaddr ending in /p2p/<peer-id>.
func (p *Peer) Dial(ctx context.Context, addr string) (*moq.Session, error) {
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return nil, fmt.Errorf("bad peer address %q: %w", addr, err)
	}
	return p.Connect(ctx, *info)
}

// Close shuts the node down, then closes its DHT and its host. Calls after
// the first do nothing.
func (p *Peer) Close() {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
		if p.DHT != nil {
			_ = p.DHT.Close()
		}
		_ = p.Host.Close()
	})
}

// Short abbreviates a peer ID for display: its last six characters (the
// first ones are the same for every Ed25519 key).
func Short(id peer.ID) string {
	s := id.String()
	return "…" + s[max(len(s)-6, 0):]
}

func loopbackOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	var local []ma.Multiaddr
	for _, a := range addrs {
		if manet.IsIPLoopback(a) {
			local = append(local, a)
		}
	}
	return local
}

// loopbackGater lets the host dial and accept loopback addresses only.
type loopbackGater struct{}

func (loopbackGater) InterceptPeerDial(peer.ID) bool { return true }
func (loopbackGater) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool {
	return manet.IsIPLoopback(a)
}
func (loopbackGater) InterceptAccept(c network.ConnMultiaddrs) bool {
	return manet.IsIPLoopback(c.RemoteMultiaddr())
}
func (loopbackGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (loopbackGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// Main runs an example's run until it returns or the process is
// interrupted (SIGINT, SIGTERM: run's ctx ends), and exits with status 1
// and the error, prefixed with name, if it failed.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
