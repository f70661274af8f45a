package main

import (
	"context"
	"flag"
	"fmt"
)

const nodeUsage = `
usage: moq node [--listen URL]... [--connect URL]... [--identity FILE]

Starts a node, prints its peer ID ("peer: <id>") and one "listening: <addr>"
line per address (multiaddrs end in /p2p/<id>, ready for --connect) on
stdout, and serves sessions until interrupted (SIGINT or SIGTERM), then shuts
down gracefully. Without --listen it listens on /ip4/0.0.0.0/udp/0/quic-v1.
`

// runNode is `moq node`.
func runNode(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	setUsage(fs, nodeUsage)
	var nf netFlags
	nf.register(fs)
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	if len(nf.listen) == 0 {
		nf.listen = stringList{"/ip4/0.0.0.0/udp/0/quic-v1"}
	}
	listens, connects, err := nf.endpoints(-1)
	if err != nil {
		return err
	}
	log := nf.logger(std.stderr)
	n, err := newNode(nodeConfig{listens: listens, connects: connects, incoming: true, net: &nf, log: log})
	if err != nil {
		return err
	}
	defer n.close()
	if n.p2p != nil {
		fmt.Fprintf(std.stdout, "peer: %s\n", n.p2p.h.ID())
	}
	n.printListening(std.stdout)
	for _, e := range connects {
		s, err := n.connect(ctx, e)
		if err != nil {
			return err
		}
		fmt.Fprintf(std.stderr, "session: %s (dialed)\n", s.Peer())
	}
	for {
		select {
		case s := <-n.incoming:
			fmt.Fprintf(std.stderr, "session: %s\n", s.Peer())
		case <-ctx.Done():
			return nil
		}
	}
}
