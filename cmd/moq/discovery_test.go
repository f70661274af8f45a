package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/pattern"
)

// The discovery tests run a DHT of moq processes on loopback: moq node as
// the bootstrap peer, publishers and subscribers that know only its address.

const loopbackQUIC = "/ip4/127.0.0.1/udp/0/quic-v1"

// bootstrapNode starts moq node on loopback and returns it and its
// multiaddr with /p2p/, for --bootstrap.
func bootstrapNode(t *testing.T) (*proc, string) {
	t.Helper()
	// It lives as long as the test, whose parallel subtests may wait a
	// while for a slot on a loaded machine: a budget longer than start's
	// (a node killed at its budget fails the test's cleanup).
	n := startCmd(t, "node", nil, 5*time.Minute, func(ctx context.Context) *exec.Cmd {
		return exec.CommandContext(ctx, moqBin, "node", "--listen", loopbackQUIC)
	})
	addr := field(n.stdout.await(t, n.name, "listening: ", 20*time.Second))
	if !strings.Contains(addr, "/p2p/") {
		t.Fatalf("node printed %q; want a multiaddr with /p2p/", addr)
	}
	t.Cleanup(func() {
		n.interrupt(t)
		n.mustSucceed(t, 10*time.Second)
	})
	return n, addr
}

// discoveryArgs: 1000 frames of 256 bytes, 50 per group, every one
// delivered (--wait).
var discoveryArgs = []string{"--frames", "1000", "--group-frames", "50", "--size", "256", "--wait"}

// startProvider starts moq pub of broadcast name, listening on loopback and
// providing name in the DHT through boot; it returns once pub has joined the
// DHT and published (it prints its addresses then).
func startProvider(t *testing.T, boot, name string) *proc {
	t.Helper()
	pub := start(t, "pub --bootstrap", nil, append([]string{"pub", "--bootstrap", boot, "--listen", loopbackQUIC,
		"--broadcast", name}, discoveryArgs...)...)
	pub.stderr.await(t, pub.name, "listening: /", 20*time.Second)
	return pub
}

// checkDelivered waits for pub and sub to succeed and wants both to report
// every frame of discoveryArgs with equal digests, and no log lines.
func checkDelivered(t *testing.T, pub, sub *proc) {
	t.Helper()
	sub.mustSucceed(t, 30*time.Second)
	pub.mustSucceed(t, 30*time.Second)
	want := pattern.Expect(20, 50, 256)
	if got := lastSummary(t, "sub", sub.stdout.all()); got != want {
		t.Errorf("sub summary %+v, want %+v", got, want)
	}
	if got := lastSummary(t, "pub", pub.stdout.all()); got != want {
		t.Errorf("pub summary %+v, want %+v", got, want)
	}
	for _, p := range []*proc{pub, sub} {
		if s := string(p.stderr.bytes()); strings.Contains(s, "level=") {
			t.Errorf("%s logged:\n%s", p.name, s)
		}
	}
}

// TestSubscribeByName: pub provides a broadcast in the DHT through moq node;
// sub, with the node's address only (no --connect), finds it by name and
// receives every frame.
func TestSubscribeByName(t *testing.T) {
	t.Parallel()
	_, boot := bootstrapNode(t)
	begin := time.Now()
	pub := startProvider(t, boot, "room/cam")
	sub := start(t, "sub --bootstrap", nil, "sub", "--bootstrap", boot, "--broadcast", "room/cam", "--count", "1000")
	checkDelivered(t, pub, sub)
	t.Logf("1000 frames found by name: %s", time.Since(begin).Round(time.Millisecond))
}

// TestSubscribeTicket: pub prints a long ticket (with its addresses) and,
// in a DHT, a short one (<peer-id>/<broadcast>); sub --ticket takes either,
// the short one with --bootstrap to find the peer's addresses.
func TestSubscribeTicket(t *testing.T) {
	t.Parallel()
	_, boot := bootstrapNode(t)
	for _, c := range []struct {
		name, prefix string
		extra        []string
	}{
		{"long", "ticket: moq", nil},
		{"short", "ticket: 12D3", []string{"--bootstrap", boot}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pub := startProvider(t, boot, "tick/"+c.name)
			ticket := field(pub.stderr.await(t, pub.name, c.prefix, time.Second))
			if c.name == "short" && !strings.HasSuffix(ticket, "/tick/short") {
				t.Fatalf("short ticket %q; want <peer-id>/tick/short", ticket)
			}
			sub := start(t, "sub --ticket "+c.name, nil, append([]string{"sub", "--ticket", ticket}, c.extra...)...)
			checkDelivered(t, pub, sub)
		})
	}
}

// TestClockByName: clock sub finds clock pub through the DHT.
func TestClockByName(t *testing.T) {
	t.Parallel()
	_, boot := bootstrapNode(t)
	pub := start(t, "clock pub --bootstrap", nil, "clock", "pub", "--bootstrap", boot, "--listen", loopbackQUIC, "--broadcast", "clocks/e2e")
	pub.stderr.await(t, pub.name, "listening: /", 20*time.Second)
	sub := start(t, "clock sub --bootstrap", nil, "clock", "sub", "--bootstrap", boot, "--broadcast", "clocks/e2e", "--count", "2")
	sub.mustSucceed(t, 15*time.Second)
	got := sub.stdout.all()
	if len(got) != 2 || !clockLine.MatchString(got[0]) || !clockLine.MatchString(got[1]) || got[0] >= got[1] {
		t.Errorf("clock sub printed %q; want two increasing time lines", got)
	}
	pub.interrupt(t)
	pub.mustSucceed(t, 10*time.Second)
}

// TestChatDHT: two chat peers that know only the bootstrap node find each
// other through the room's DHT record and exchange a line each way.
func TestChatDHT(t *testing.T) {
	t.Parallel()
	_, boot := bootstrapNode(t)
	aIn, aW := pipe(t)
	bIn, bW := pipe(t)
	a := start(t, "chat alice", aIn, "chat", "--name", "alice", "--room", "dht", "--bootstrap", boot, "--listen", loopbackQUIC)
	b := start(t, "chat bob", bIn, "chat", "--name", "bob", "--room", "dht", "--bootstrap", boot, "--listen", loopbackQUIC)
	a.stderr.await(t, a.name, "* bob joined", 20*time.Second)
	b.stderr.await(t, b.name, "* alice joined", 20*time.Second)
	if _, err := aW.Write([]byte("alice here\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := bW.Write([]byte("bob here\n")); err != nil {
		t.Fatal(err)
	}
	a.stdout.await(t, a.name, "bob: bob here", 10*time.Second)
	b.stdout.await(t, b.name, "alice: alice here", 10*time.Second)
	_ = aW.Close()
	_ = bW.Close()
	a.mustSucceed(t, 10*time.Second)
	b.mustSucceed(t, 10*time.Second)
	for _, p := range []*proc{a, b} {
		if n := strings.Count(string(p.stdout.bytes()), "here\n"); n != 1 {
			t.Errorf("%s printed %d lines, want 1 (one session per peer):\n%s", p.name, n, p.stdout.bytes())
		}
	}
}

// expectExit runs moq and wants exit status code and exactly one line on
// stderr, "moq: …" containing want.
func expectExit(t *testing.T, code int, want string, d time.Duration, args ...string) {
	t.Helper()
	p := start(t, "moq "+strings.Join(args, " "), nil, args...)
	got := p.wait(t, d)
	errLines := p.stderr.all()
	if got != code || len(errLines) != 1 || !strings.Contains(errLines[0], want) || !strings.HasPrefix(errLines[0], "moq: ") {
		t.Errorf("moq %s: exit %d, stderr %q; want %d and one line containing %q", strings.Join(args, " "), got, errLines, code, want)
	}
}

func TestDiscoveryErrors(t *testing.T) {
	t.Parallel()
	const peerID = "12D3KooWQKek73nvLcpRcUUWyFz8dC3m1DTNnKpkyirxaPoo7ygQ"
	deadBoot := "/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + peerID
	for _, c := range []struct {
		name string
		code int
		want string
		args []string
	}{
		{"bootstrap-moql", 2, "--bootstrap moql://127.0.0.1:1: want a libp2p multiaddr with /p2p/<peer-id>",
			[]string{"sub", "--broadcast", "x", "--bootstrap", "moql://127.0.0.1:1"}},
		{"bootstrap-no-peer-id", 2, "needs a /p2p/<peer-id>", []string{"pub", "--broadcast", "x", "--bootstrap", "/ip4/127.0.0.1/udp/1/quic-v1"}},
		{"no-source", 2, "give --connect URL, --listen URL, or --bootstrap ADDR", []string{"sub", "--broadcast", "x"}},
		{"pub-no-source", 2, "give --listen URL (to be dialed), --connect URL (to dial a relay or peer) and/or --bootstrap ADDR (to be found by name)", []string{"pub", "--broadcast", "x"}},
		{"bad-ticket", 2, "--ticket: discovery: invalid ticket", []string{"sub", "--ticket", "nonsense"}},
		{"short-ticket-alone", 2, "a short ticket (<peer-id>/<broadcast>) needs --bootstrap", []string{"sub", "--ticket", peerID + "/x"}},
		{"ticket-and-broadcast", 2, "--ticket names the broadcast", []string{"sub", "--ticket", peerID + "/x", "--broadcast", "x"}},
		{"ticket-and-connect", 2, "--ticket names the peer", []string{"sub", "--ticket", peerID + "/x", "--connect", deadBoot}},
		{"unreachable-bootstrap", 1, "bootstrap " + deadBoot + ": no answer within 3s",
			[]string{"sub", "--broadcast", "x", "--bootstrap", deadBoot, "--timeout", "3s"}},
		{"unreachable-bootstrap-node", 1, "no answer within 3s", []string{"node", "--listen", loopbackQUIC, "--bootstrap", deadBoot, "--timeout", "3s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			expectExit(t, c.code, c.want, 15*time.Second, c.args...)
		})
	}
}

// TestNotFoundByName: a name nobody provides fails after --timeout with one
// line and exit status 1.
func TestNotFoundByName(t *testing.T) {
	t.Parallel()
	_, boot := bootstrapNode(t)
	begin := time.Now()
	expectExit(t, 1, `broadcast "nobody/here": no peer publishing it found within 2s`, 15*time.Second,
		"sub", "--bootstrap", boot, "--broadcast", "nobody/here", "--timeout", "2s")
	if d := time.Since(begin); d < 2*time.Second {
		t.Errorf("gave up after %s, before --timeout 2s", d)
	}
}

// TestSubscribeMDNS: with --mdns and nothing else, sub finds the publisher
// on the local network and receives every frame. mDNS multicasts on every
// interface, so the test runs in a private network namespace whose only
// interface is loopback, or not at all.
func TestSubscribeMDNS(t *testing.T) {
	t.Parallel()
	child, err := netns.Private(t, binEnv+"="+moqBin)
	switch {
	case err != nil:
		netns.Unavailable(t, "mDNS test: no private network namespace to keep multicast on loopback: %v", err)
	case !child:
		return // the child ran it
	}
	pub := start(t, "pub --mdns", nil, append([]string{"pub", "--mdns", "--listen", loopbackQUIC, "--broadcast", "lan/cam"}, discoveryArgs...)...)
	pub.stderr.await(t, pub.name, "listening: /", 20*time.Second)
	begin := time.Now()
	sub := start(t, "sub --mdns", nil, "sub", "--mdns", "--broadcast", "lan/cam", "--count", "1000")
	checkDelivered(t, pub, sub)
	t.Logf("1000 frames found over mDNS: %s", time.Since(begin).Round(time.Millisecond))
}
