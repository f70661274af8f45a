// Command moq publishes and subscribes to moq-lite broadcasts, peer to peer:
// over raw QUIC (moql://host:port), WebTransport (https://), WebSocket
// (ws://) or libp2p (multiaddrs with /p2p/<peer-id>). Run `moq help` for the
// subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
)

const usage = `moq: Media over QUIC, peer to peer (moq-lite-05, -04 and -03)

usage: moq <command> [flags]

commands:
  pub     publish a broadcast: generated frames, stdin, or video (--media)
  sub     subscribe to a track and write what arrives (video: --media)
  node    print this node's peer ID and addresses, and serve (sessions and the
          DHT: a --bootstrap peer for the others) until interrupted
  clock   clock pub|sub: a broadcast of the time, one group per second
  chat    exchange lines with other peers
  stats   print a node's sessions: its --metrics ADDR, https:// --listen or
          libp2p address (with --serve-stats)
  relay   forward broadcasts between sessions and other relays (like moq-relay)
  help    show this text, or a command's: moq help <command>
  version print the module version moq was built from

Peers are named by URL: moql://host:port (raw QUIC with X.509; --listen prints
the self-signed certificate's SHA-256, --connect takes it as --fingerprint HEX
or skips the check with --insecure), or a libp2p multiaddr
(/ip4/0.0.0.0/udp/4001/quic-v1 to listen, /ip4/…/udp/…/quic-v1/p2p/<peer-id>
to connect). Browsers and @moq/lite reach a node listening on
ws://host:port/path (WebSocket, both framings) or https://host:port/path
(WebTransport, with the same certificate rules as moql://, whose port also
accepts moql://); --connect takes ws://, wss:// and https:// too. A
--connect URL's path and ?jwt= token (a relay's scope and credentials) go
in the request on https:// and ws://, and in moq-lite-05's SETUP on
moql://host:port/path?jwt=TOKEN; logs show the token as jwt=…. Web pages
reach those listeners only from the same origin (a page served by the same
host:port) unless --allow-origin ORIGIN names another (repeatable), or
--allow-origin '*' lets any page you visit connect. Every listener admits at
most 32 sessions per client IP address, 4 of them still being set up.

With no address in hand, find a broadcast by name: join moqp2p's DHT with
--bootstrap <multiaddr>/p2p/<peer-id> (moq node prints one); pub provides the
name there and sub, given --bootstrap and no --connect, looks it up. --mdns
finds peers on the local network instead. pub also prints tickets
(ticket: …) that sub --ticket takes.

Behind NATs: run moq node --relay-service on a public address and give it to
pub and sub as --bootstrap; they reserve a slot on its circuit relay, punch a
hole to each other and stream on the direct path (sub -v logs each session's
path and why); when punching fails, media goes on through the node, which
forwards it at the MoQ level. Its operator chooses the circuits' limits
(--relay-circuit-bytes, --relay-circuit-duration, --relay-max-reservations,
--relay-max-circuits, --relay-allow PEER, or --relay-unlimited): moq help node.

Examples, on one machine (the listener prints what the other side needs):
  moq pub --broadcast demo --listen moql://127.0.0.1:4443 --wait
  moq sub --broadcast demo --connect moql://127.0.0.1:4443 --fingerprint <hex>

  moq pub --broadcast demo --listen /ip4/127.0.0.1/udp/4001/quic-v1 --wait
  moq sub --broadcast demo --connect /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<peer-id>

  moq node --listen /ip4/127.0.0.1/udp/4001/quic-v1        # prints its address
  moq pub --broadcast demo --bootstrap /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<node-id>
  moq sub --broadcast demo --bootstrap /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<node-id>

Observability: on a terminal pub, sub, node and relay draw a live status line
on stderr (--quiet: none); --metrics ADDR serves Prometheus metrics on
http://ADDR/metrics and the sessions on /stats (moq stats ADDR prints them).
moq stats also reads an https:// --listen (over HTTP/3, with --fingerprint HEX
or --insecure) and, from a node started with --serve-stats, a libp2p address;
--serve-stats shows the node's sessions (its peers' IDs, its clients'
addresses) to any peer that can reach it, and on the https:// and ws://
pages' /stats, so it is off by default.
QLOGDIR=DIR makes every QUIC connection write a qlog file into DIR.

Errors are one line on stderr and a non-zero exit status (2: bad usage).
`

// stdio is where a command reads and writes.
type stdio struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command func(ctx context.Context, std stdio, args []string) error

var commands = map[string]command{
	"pub":   runPub,
	"sub":   runSub,
	"node":  runNode,
	"clock": runClock,
	"chat":  runChat,
	"stats": runStats,
	"relay": runRelay,
}

func main() {
	os.Exit(run(os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}))
}

// run dispatches to a command and turns its error into one line and an exit
// status. SIGINT and SIGTERM cancel the command's context, which ends it
// gracefully; a second signal kills the process.
func run(args []string, std stdio) int {
	if len(args) == 0 {
		fmt.Fprint(std.stderr, usage)
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) == 0 {
			fmt.Fprint(std.stdout, usage)
			return 0
		}
		if commands[args[0]] == nil {
			fmt.Fprintf(std.stderr, "moq: help: %s\n", unknownCommand(args[0]))
			return 2
		}
		return run([]string{args[0], "-h"}, std)
	case "version", "-version", "--version":
		fmt.Fprintln(std.stdout, version())
		return 0
	}
	cmd := commands[name]
	if cmd == nil {
		fmt.Fprintf(std.stderr, "moq: %s\n", unknownCommand(name))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // the next signal gets the default: exit

	err := cmd(ctx, std, args)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return 0 // interrupted while connecting or waiting: not a failure
	case errors.As(err, &ue):
		fmt.Fprintf(std.stderr, "moq: %s\n", oneLine(err.Error()))
		return 2
	default:
		fmt.Fprintf(std.stderr, "moq: %s%s\n", oneLine(strings.TrimSpace(err.Error())), hint(err))
		return 1
	}
}

// hints name the likely cause of a failure whose message comes from deep in
// a TLS or libp2p stack, keyed by a phrase of that message.
var hints = []struct{ phrase, hint string }{
	{"peer id mismatch", "a different peer answers at that address: copy the /p2p/ address it printed (a peer ID changes on every run without --identity)"},
	{"does not match the pinned SHA-256 fingerprint", "the server's certificate is another one: moq makes a new one each run, so copy the fingerprint it printed this time"},
	{"tls: certificate required", "the server wants a libp2p identity: is that a libp2p QUIC port? Connect to it by its multiaddr, /ip4/…/udp/PORT/quic-v1/p2p/<peer-id>"},
}

// hint is " (…)" with the hint for err's message, or "".
func hint(err error) string {
	msg := err.Error()
	for _, h := range hints {
		if strings.Contains(msg, h.phrase) {
			return " (" + h.hint + ")"
		}
	}
	return ""
}

// unknownCommand says that name is no command, naming the one it most
// likely misspells: a newcomer's typo should not send them to the manual.
func unknownCommand(name string) string {
	names := make([]string, 0, len(commands))
	for c := range commands {
		names = append(names, c)
	}
	slices.Sort(names)
	best, bestDist := "", 3 // suggest only within two edits
	for _, c := range names {
		if d := editDistance(strings.ToLower(name), c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown command %q: did you mean %q? (see moq help)", name, best)
	}
	return fmt.Sprintf("unknown command %q; the commands are %s (see moq help)", name, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// version is the module version and VCS revision moq was built from, as
// the Go toolchain recorded them ("(devel)" for a build in a checkout).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "moq (no build information)"
	}
	v := "moq " + bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v + " " + bi.GoVersion
}
