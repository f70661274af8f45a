package main

import (
	"context"
	"flag"
	"fmt"
	"slices"

	"github.com/moqp2p/moqp2p/moq"
)

const nodeUsage = `
usage: moq node [--listen URL]... [--connect URL]... [--bootstrap ADDR]...
                [--mdns] [--identity FILE] [--relay-service [--relay-unlimited]]

Starts a node, prints its peer ID ("peer: <id>") and one "listening: <addr>"
line per address (multiaddrs end in /p2p/<id>, ready for --connect and
--bootstrap) on stdout, and serves sessions until interrupted (SIGINT or
SIGTERM), then shuts down gracefully. Without --listen it listens on
/ip4/0.0.0.0/udp/0/quic-v1.

Over libp2p the node is a server of moqp2p's DHT (protocol /moq/kad/1.0.0):
a rendezvous where publishers (moq pub --bootstrap ADDR) record the names
of their broadcasts and subscribers (moq sub --bootstrap ADDR --broadcast
NAME) look them up. With --bootstrap it joins an existing DHT through those
peers; without, it starts one that others join through it. With
--identity and a fixed port its address survives restarts.

With --relay-service, run on a public address, it is also the helper that
peers behind NATs need: a circuit relay (at most 128 reservations, 16
circuits per peer) and an AutoNAT server. Publishers and subscribers given
it as --bootstrap learn they are private, reserve a slot on it, advertise
the circuit address and, once a peer reaches them through it, punch a hole
(DCUtR) and move the session onto a direct QUIC path. Circuits are cut
after 2 minutes or 128 KiB each way, enough to punch; --relay-unlimited
lifts that, so media between peers that cannot punch (symmetric NATs)
flows through this node for as long as they stream: bandwidth it pays for.

On a terminal it keeps a status line on stderr (peers, subscribers, payload
sent and received, RTT; --quiet: none). When interrupted it prints
{"sessions":N,"frames_sent":…,"frames_received":…,"bytes_sent":…,
"bytes_received":…} on stdout: the sessions live at the end, and the
payload of every session it had.
`

// runNode is `moq node`.
func runNode(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	setUsage(fs, nodeUsage)
	var nf netFlags
	nf.register(fs)
	relayService := fs.Bool("relay-service", false, "relay circuits for peers behind NATs (and serve AutoNAT); run it on a public address")
	relayUnlimited := fs.Bool("relay-unlimited", false, "with --relay-service: circuits without a time or data limit (the media path of peers that cannot hole-punch)")
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	if len(nf.listen) == 0 {
		nf.listen = stringList{defaultP2PListen}
	}
	listens, connects, err := nf.endpoints(-1)
	if err != nil {
		return err
	}
	listens = nf.reachable(listens)
	log := nf.logger(std.stderr)
	// A node listening for libp2p serves the DHT; one on moql:// only has
	// a host that accepts nothing, whose peer ID would mislead.
	server := slices.ContainsFunc(listens, func(e endpoint) bool { return e.kind == kindP2P })
	if *relayUnlimited && !*relayService {
		return usagef("--relay-unlimited needs --relay-service")
	}
	var relay *moq.RelayService
	if *relayService {
		if !server {
			return usagef("--relay-service needs a libp2p --listen address")
		}
		relay = &moq.RelayService{Unlimited: *relayUnlimited}
	}
	n, err := newNode(ctx, nodeConfig{listens: listens, connects: connects, incoming: true, dhtServer: server, relay: relay, net: &nf, log: log})
	if err != nil {
		return err
	}
	defer n.close()
	if server {
		fmt.Fprintf(std.stdout, "peer: %s\n", n.p2p.h.ID())
	}
	n.printListening(std.stdout)
	t := newTally(n)
	prog := startNodeLine(ctx, std, nf.quiet, "node", t)
	defer prog.close()
	for _, e := range connects {
		s, err := n.connect(ctx, e)
		if err != nil {
			return err
		}
		prog.printf("session: %s (dialed)\n", s.Peer())
	}
	for {
		select {
		case s := <-n.incoming:
			prog.printf("session: %s\n", s.Peer())
		case <-ctx.Done():
			endNodeLine(std, prog, t)
			return nil
		}
	}
}
