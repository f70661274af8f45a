// Clock streams the time from one peer to another, like moq-dev's moq-clock.
// The publisher's broadcast "clock" has one track, "seconds", that gets a new
// group every second holding a single frame: the time as text. The
// subscriber connects to the publisher, subscribes to the track and prints
// each tick.
//
// Both peers in one process (runs until Ctrl-C, or -n ticks):
//
//	go run ./examples/clock -n 3
//
// Or in two terminals, on this machine:
//
//	go run ./examples/clock -role pub
//	go run ./examples/clock -role sub -peer /ip4/127.0.0.1/udp/…/quic-v1/p2p/12D3KooW… -n 3
//
// The publisher prints the address to pass as -peer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/examples/internal/peers"
	"github.com/moqp2p/moqp2p/moq"
)

func main() {
	role := flag.String("role", "both", "both (two peers in this process), pub or sub")
	addr := flag.String("peer", "", "sub: the publisher's multiaddr, ending in /p2p/<peer-id>")
	port := flag.Int("port", 0, "pub: UDP port to listen on (0: any free port)")
	n := flag.Int("n", 0, "sub: stop after `N` ticks (0: run until interrupted)")
	flag.Parse()

	peers.Main("clock", func(ctx context.Context) error { return run(ctx, *role, *addr, *port, *n) })
}

func run(ctx context.Context, role, addr string, port, n int) error {
	switch role {
	case "pub":
		pub, err := peers.New(peers.Config{Port: port})
		if err != nil {
			return err
		}
		defer pub.Close()
		fmt.Printf("publishing the clock; subscribe with:\n  go run ./examples/clock -role sub -peer %s\n", pub.Addr())
		return publish(ctx, pub)

	case "sub":
		info, err := peers.ParsePeer(addr, "-role pub")
		if err != nil {
			return err
		}
		sub, err := peers.New(peers.Config{}, moq.WithInterest("clock"))
		if err != nil {
			return err
		}
		defer sub.Close()
		return subscribe(ctx, sub, *info, n)

	case "both":
		pub, err := peers.New(peers.Config{})
		if err != nil {
			return err
		}
		defer pub.Close()
		sub, err := peers.New(peers.Config{}, moq.WithInterest("clock"))
		if err != nil {
			return err
		}
		defer sub.Close()

		pctx, stopPub := context.WithCancel(ctx)
		published := make(chan error, 1)
		go func() { published <- publish(pctx, pub) }()
		err = subscribe(ctx, sub, pub.Info(), n)
		stopPub()
		return errors.Join(err, <-published)
	}
	return fmt.Errorf("-role %q: want both, pub or sub", role)
}

// publish offers the clock broadcast to every peer that connects and writes
// one group per second until ctx ends.
func publish(ctx context.Context, p *peers.Peer) error {
	b := broadcast.New(broadcast.Config{})
	defer b.Finish() // ends the publication too
	seconds, err := b.CreateTrack(broadcast.Track{Name: "seconds"})
	if err != nil {
		return err
	}
	if _, err := p.Publish(ctx, "clock", b.Consume()); err != nil {
		return err
	}
	fmt.Printf("publisher %s: publishing broadcast \"clock\", track \"seconds\"\n", peers.Short(p.ID()))
	defer func() { _ = seconds.Finish() }()
	return peers.RunClock(ctx, seconds)
}

// subscribe connects to the publisher and prints its ticks: n of them, or
// until ctx ends (n = 0) or the clock stops.
func subscribe(ctx context.Context, p *peers.Peer, publisher peer.AddrInfo, n int) error {
	s, err := p.Connect(ctx, publisher)
	if err != nil {
		return err
	}
	// Subscribe waits for the publisher to announce "clock" if it has not yet.
	ticks, err := s.Subscribe(ctx, "clock", "seconds")
	if err != nil {
		return err
	}
	defer ticks.Close()
	fmt.Printf("subscriber %s: subscribed to %s's clock over %s\n",
		peers.Short(p.ID()), peers.Short(s.RemotePeer()), s.Version())

	return peers.PrintTicks(ctx, ticks, n)
}
