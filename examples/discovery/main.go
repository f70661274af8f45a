// Discovery subscribes to a broadcast by name, with no address in hand.
// Peers form a DHT (moqp2p's own, protocol /moq/kad/1.0.0) by joining it
// through a bootstrap peer. The publisher's node provides the name of its
// broadcast, "clock", in the DHT (under discovery.Key("clock")); a
// subscriber that has never heard of the publisher calls Subscribe with just
// the name: its node looks the name up, connects to a provider and
// subscribes there.
//
// A DHT of six peers in this process (stops after -n ticks):
//
//	go run ./examples/discovery -n 3
//
// Or in three terminals on this machine, each peer knowing only the
// bootstrap peer's address, which the first one prints:
//
//	go run ./examples/discovery -role boot
//	go run ./examples/discovery -role pub -bootstrap /ip4/127.0.0.1/udp/…/quic-v1/p2p/12D3KooW…
//	go run ./examples/discovery -role sub -bootstrap /ip4/127.0.0.1/udp/…/quic-v1/p2p/12D3KooW… -n 3
//
// The CLI's `moq node --listen /ip4/127.0.0.1/udp/4001/quic-v1` serves as a
// bootstrap peer as well.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/examples/internal/peers"
	"github.com/moqp2p/moqp2p/moq"
)

// name is the broadcast the publisher provides and the subscriber looks up.
const name = "clock"

// findWithin bounds the subscriber's search: Subscribe looks again, with
// growing pauses, until the publisher's record is in the DHT.
const findWithin = 20 * time.Second

func main() {
	role := flag.String("role", "demo", "demo (a DHT of six peers in this process), boot, pub or sub")
	boot := flag.String("bootstrap", "", "pub, sub: the bootstrap peer's multiaddr, ending in /p2p/<peer-id>")
	port := flag.Int("port", 0, "boot: UDP port to listen on (0: any free port)")
	n := flag.Int("n", 0, "demo, sub: stop after `N` ticks (0: run until interrupted)")
	flag.Parse()

	peers.Main("discovery", func(ctx context.Context) error { return run(ctx, *role, *boot, *port, *n) })
}

func run(ctx context.Context, role, boot string, port, n int) error {
	switch role {
	case "demo":
		return demo(ctx, n)
	case "boot":
		p, err := peers.New(peers.Config{Port: port, DHT: true})
		if err != nil {
			return err
		}
		defer p.Close()
		fmt.Printf("bootstrap peer %s; join the DHT with -bootstrap %s\n", peers.Short(p.ID()), p.Addr())
		<-ctx.Done()
		return nil
	case "pub", "sub":
		if boot == "" {
			return errors.New("-bootstrap is required: the address -role boot printed, /ip4/…/udp/…/quic-v1/p2p/<peer-id>")
		}
		info, err := peer.AddrInfoFromString(boot)
		if err != nil {
			return fmt.Errorf("-bootstrap: %w", err)
		}
		// WithBootstrap connects to the bootstrap peer in the background and
		// fills the DHT's routing table from it.
		p, err := peers.New(peers.Config{DHT: true}, moq.WithBootstrap(*info))
		if err != nil {
			return err
		}
		defer p.Close()
		if role == "pub" {
			fmt.Printf("subscribe by name with:\n  go run ./examples/discovery -role sub -bootstrap %s -n 3\n", boot)
			return publish(ctx, p, nil)
		}
		return subscribe(ctx, p, n)
	}
	return fmt.Errorf("-role %q: want demo, boot, pub or sub", role)
}

// demo starts a bootstrap peer and five more that join the DHT through it;
// one publishes the clock and another subscribes to it by name.
func demo(ctx context.Context, n int) error {
	boot, err := peers.New(peers.Config{DHT: true})
	if err != nil {
		return err
	}
	defer boot.Close()
	all := []*peers.Peer{boot}
	for range 5 {
		p, err := peers.New(peers.Config{DHT: true}, moq.WithBootstrap(boot.Info()))
		if err != nil {
			return err
		}
		defer p.Close()
		all = append(all, p)
	}
	pub, sub := all[1], all[len(all)-1]
	fmt.Printf("dht: %d peers on loopback, joined through bootstrap peer %s\n", len(all), peers.Short(boot.ID()))

	pctx, stopPub := context.WithCancel(ctx)
	ready := make(chan struct{})
	published := make(chan error, 1)
	go func() { published <- publish(pctx, pub, ready) }()
	select {
	case <-ready:
	case err := <-published:
		stopPub()
		return err // could not publish
	}
	err = subscribe(ctx, sub, n)
	stopPub()
	return errors.Join(err, <-published)
}

// publish publishes the clock, one group per second holding the time as
// text, until ctx ends; it closes ready (if not nil) once published.
// Publishing on a node with a DHT provides the name there, now and
// periodically, for as long as the broadcast is published.
func publish(ctx context.Context, p *peers.Peer, ready chan<- struct{}) error {
	b := broadcast.New(broadcast.Config{})
	defer b.Finish() // ends the publication too
	seconds, err := b.CreateTrack(broadcast.Track{Name: "seconds"})
	if err != nil {
		return err
	}
	if _, err := p.Publish(ctx, name, b.Consume()); err != nil {
		return err
	}
	fmt.Printf("publisher %s: publishing %q, provided in the DHT under %s\n", peers.Short(p.ID()), name, discovery.Key(name))
	if ready != nil {
		close(ready)
	}
	defer func() { _ = seconds.Finish() }()
	return peers.RunClock(ctx, seconds)
}

// subscribe finds the clock by name and prints its ticks: n of them, or
// until ctx ends (n = 0) or the clock stops.
func subscribe(ctx context.Context, p *peers.Peer, n int) error {
	fmt.Printf("subscriber %s: subscribing to %q by name\n", peers.Short(p.ID()), name)
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, findWithin)
	// Subscribe asks the sessions the node has, then the providers its DHT
	// lookup finds, until one delivers (or fctx ends: ErrNoProviders).
	ticks, err := p.Subscribe(fctx, name, "seconds")
	cancel()
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return err
	}
	defer ticks.Close()
	sessions, _ := p.Sessions(ctx)
	for _, s := range sessions {
		fmt.Printf("subscriber %s: found %q at %s in %s; subscribed over %s\n", peers.Short(p.ID()), name,
			peers.Short(s.RemotePeer()), time.Since(start).Round(time.Millisecond), s.Version())
	}

	return peers.PrintTicks(ctx, ticks, n)
}
