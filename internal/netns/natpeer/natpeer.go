// Package natpeer starts the moqp2p nodes that programs driving a
// netns.NATLab run in it (bench's NAT row, examples/nat): a relay on the
// lab's WAN, and peers behind its NATs or on the open network. It lives
// apart from netns because it imports moq, whose own tests use netns.
package natpeer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// Node is a moqp2p node: a libp2p host, and moq-lite on raw QUIC sharing
// its UDP socket.
type Node struct {
	Host host.Host
	Moq  *moq.Moq
}

// Start starts a node with hc (its QUIC field is set here) and opts. log,
// if not nil, gets the node's and its QUIC transport's logs.
func Start(hc moq.HostConfig, log *slog.Logger, opts ...moq.Option) (*Node, error) {
	q := p2pquic.New(p2pquic.Config{Logger: log})
	hc.QUIC = q
	h, err := moq.NewHost(hc)
	if err != nil {
		return nil, err
	}
	all := []moq.Option{moq.WithQUIC(q)}
	if log != nil {
		all = append(all, moq.WithLogger(log))
	}
	m, err := moq.New(h, append(all, opts...)...)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return &Node{Host: h, Moq: m}, nil
}

// Relay starts a public node on the lab's WAN address ip that relays
// circuits as rs says.
func Relay(ip string, rs moq.RelayService, log *slog.Logger, opts ...moq.Option) (*Node, error) {
	return Start(moq.HostConfig{
		AddrsFactory: netns.OnlyIP(ip),
		NAT:          moq.NATConfig{Reachability: network.ReachabilityPublic, RelayService: &rs},
	}, log, opts...)
}

// BehindNAT starts a node that knows it is private, reserves a slot on
// relay and hole-punches.
func BehindNAT(relay peer.AddrInfo, log *slog.Logger, opts ...moq.Option) (*Node, error) {
	return Start(moq.HostConfig{
		AddrsFactory: netns.NotLoopback,
		NAT: moq.NATConfig{
			Reachability: network.ReachabilityPrivate, HolePunching: true,
			StaticRelays: []peer.AddrInfo{relay},
		},
	}, log, opts...)
}

// Addr is the node's first address with its peer ID: what a peer on the
// same network dials.
func (n *Node) Addr() string { return fmt.Sprintf("%s/p2p/%s", n.Host.Addrs()[0], n.Host.ID()) }

// Close shuts the node and its host down.
func (n *Node) Close() {
	_ = n.Moq.Shutdown(context.Background())
	_ = n.Host.Close()
}
