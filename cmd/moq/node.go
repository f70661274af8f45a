package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/moq"
)

const nodeUsage = `
usage: moq node [--listen URL]... [--connect URL]... [--bootstrap ADDR]...
                [--mdns] [--identity FILE] [--relay-service [--relay-unlimited]
                [--relay-circuit-bytes SIZE] [--relay-circuit-duration D]
                [--relay-max-reservations N] [--relay-max-circuits N]
                [--relay-allow PEER]...]

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
peers behind NATs need: a circuit relay and an AutoNAT server. Publishers
and subscribers given it as --bootstrap learn they are private, reserve a
slot on it, advertise the circuit address and, once a peer reaches them
through it, punch a hole (DCUtR) and move the session onto a direct QUIC
path. Circuits are cut after 2 minutes or 128 KiB each way, enough to
punch. Peers that cannot punch (symmetric NATs) go on through this node
at the MoQ level: it forwards the broadcasts their publishers announce on
a session with it (they keep one while they hold a slot), so a
subscription whose circuit was cut continues here (bandwidth it pays for).
--relay-unlimited lifts the circuit limits instead. The operator chooses
the limits:
  --relay-circuit-bytes SIZE     data a circuit carries each way before it
                                 is cut (default 128KiB; e.g. 64MiB)
  --relay-circuit-duration D     how long a circuit lasts (default 2m)
  --relay-max-reservations N     peers holding a slot at once (default 128)
  --relay-max-circuits N         circuits open per peer (default 16)
  --relay-allow PEER             only these peer IDs may reserve a slot
                                 (repeatable; default: any peer)

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
	circuitBytes := fs.String("relay-circuit-bytes", "128KiB", "with --relay-service: `SIZE` a circuit carries each way before it is cut (bytes, or with KiB, MiB, GiB)")
	circuitDuration := fs.Duration("relay-circuit-duration", 2*time.Minute, "with --relay-service: how long a circuit lasts (`D`)")
	maxReservations := fs.Int("relay-max-reservations", 128, "with --relay-service: peers holding a slot at once (`N`)")
	maxCircuits := fs.Int("relay-max-circuits", 16, "with --relay-service: circuits open per peer (`N`)")
	var allow stringList
	fs.Var(&allow, "relay-allow", "with --relay-service: only this `PEER` ID (repeatable) may reserve a slot; default: any peer")
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
	relay, err := relayFromFlags(fs, *relayService, server, *relayUnlimited, *circuitBytes, *circuitDuration, *maxReservations, *maxCircuits, allow)
	if err != nil {
		return err
	}
	var moqOpts []moq.Option
	if relay != nil {
		// The fallback media path of peers that cannot punch: what their
		// publishers announce on a session with this node, it forwards at
		// the MoQ level to subscribers whose circuit was cut.
		moqOpts = append(moqOpts, moq.WithForwarding(moq.Forwarding{}))
	}
	n, err := newNode(ctx, nodeConfig{listens: listens, connects: connects, incoming: true, dhtServer: server, relay: relay, moqOpts: moqOpts, net: &nf, log: log})
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

// relayFromFlags is the relay service the --relay-* flags ask for, nil
// without --relay-service.
func relayFromFlags(fs *flag.FlagSet, on, server, unlimited bool, bytes string, duration time.Duration, maxReservations, maxCircuits int, allow []string) (*moq.RelayService, error) {
	var given []string
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "relay-") {
			given = append(given, "--"+f.Name)
			set[f.Name] = true
		}
	})
	if !on {
		if len(given) > 0 {
			return nil, usagef("%s needs --relay-service", strings.Join(given, ", "))
		}
		return nil, nil
	}
	if !server {
		return nil, usagef("--relay-service needs a libp2p --listen address")
	}
	rs := &moq.RelayService{Unlimited: unlimited, CircuitDuration: duration, MaxReservations: maxReservations, MaxCircuits: maxCircuits}
	if unlimited && (set["relay-circuit-bytes"] || set["relay-circuit-duration"]) {
		return nil, usagef("--relay-unlimited lifts the circuit limits: give it or --relay-circuit-bytes/--relay-circuit-duration, not both")
	}
	if !unlimited {
		n, err := parseBytes(bytes)
		if err != nil || n <= 0 {
			return nil, usagef("--relay-circuit-bytes %q: want a positive size such as 131072, 128KiB or 16MiB", bytes)
		}
		rs.CircuitBytes = n
	}
	if duration <= 0 || maxReservations <= 0 || maxCircuits <= 0 {
		return nil, usagef("--relay-circuit-duration, --relay-max-reservations and --relay-max-circuits must be positive")
	}
	for _, a := range allow {
		p, err := peer.Decode(a)
		if err != nil {
			return nil, usagef("--relay-allow %q: not a peer ID (%v)", a, err)
		}
		rs.AllowReserve = append(rs.AllowReserve, p)
	}
	return rs, nil
}

// parseBytes reads a byte count: a number, with an optional KiB, MiB or
// GiB (or K, M, G) suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("too large")
	}
	return n * mult, nil
}
