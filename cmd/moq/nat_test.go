package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/moq"
)

// Behind NAT with --bootstrap alone: moq node --relay-service on the lab's
// WAN, moq pub behind one endpoint-independent NAT and moq sub behind
// another, each given only the node as --bootstrap. The publisher learns it
// is private, reserves a circuit on the node and provides its broadcast;
// the subscriber finds it, reaches it over the circuit, and both punch a
// hole: every frame arrives, digests equal, and the subscriber's session
// with the publisher runs on the punched path (moq sub -v logs it). Needs
// root (CI).
func TestNATBootstrapOnly(t *testing.T) {
	lab, err := netns.NATed(t, [2]netns.NATKind{netns.EndpointIndependent, netns.EndpointIndependent}, binEnv+"="+moqBin)
	if err != nil {
		netns.Unavailable(t, "no NAT lab: %v", err)
	}
	if lab == nil {
		return // the parent: the lab's verdict is relayed
	}
	node := start(t, "node", nil, "node", "--listen", "/ip4/"+lab.WAN+"/udp/0/quic-v1", "--relay-service", "-v")
	boot := field(node.stdout.await(t, "node", "listening: /", 20*time.Second))
	in := func(ns, name string, args ...string) *proc {
		return startCmd(t, name, nil, 3*time.Minute, func(ctx context.Context) *exec.Cmd {
			return lab.Exec(ctx, ns, moqBin, args...)
		})
	}
	args := []string{"--bootstrap", boot, "--timeout", "60s"}
	pub := in(lab.Sides[0].Host, "pub", append([]string{"pub", "-v", "--broadcast", "nat", "--frames", "2000", "--group-frames", "100", "--size", "256", "--wait"}, args...)...)
	sub := in(lab.Sides[1].Host, "sub", append([]string{"sub", "--broadcast", "nat", "-v"}, args...)...)
	defer func() {
		for _, p := range []*proc{node, pub, sub} {
			t.Logf("%s:\n%s", p.name, strings.Join(p.stderr.all(), "\n"))
		}
	}()
	sub.mustSucceed(t, 2*time.Minute)
	pub.mustSucceed(t, 30*time.Second)
	// The subscriber's session with the publisher ran on the punched path
	// from the start (it waited for the punch) to the end.
	// (Its sessions are with the node, by its /p2p/ ID, and the publisher.)
	nodeID := boot[strings.LastIndex(boot, "/")+1:]
	for _, when := range []string{"subscribed", `"track ended"`} {
		line := ""
		for _, l := range sub.stderr.all() {
			if strings.Contains(l, `msg="session path" when=`+when) && !strings.Contains(l, "peer="+nodeID) {
				line = l
			}
		}
		if !strings.Contains(line, "path=hole-punched") || !strings.Contains(line, "limited=false") {
			t.Errorf("the subscriber's session with the publisher when %s: %q, want a hole-punched path", when, line)
		}
	}
	want := pattern.Expect(20, 100, 256)
	if got := lastSummary(t, "pub", pub.stdout.all()); got != want {
		t.Errorf("pub summary %+v, want %+v", got, want)
	}
	if got := lastSummary(t, "sub", sub.stdout.all()); got != want {
		t.Errorf("sub summary %+v, want %+v", got, want)
	}
}

// moq node --relay-service applies the operator's limits: a reservation
// carries the circuit limits given (--relay-circuit-bytes,
// --relay-circuit-duration), a peer not in --relay-allow is refused, and
// past --relay-max-reservations an allowed peer is refused too. On
// loopback: no NAT needed to reserve.
func TestNATRelayServiceLimits(t *testing.T) {
	t.Parallel()
	var hosts [3]host.Host
	for i := range hosts {
		h, err := moq.NewHost(moq.HostConfig{ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		hosts[i] = h
	}
	allowed, second, stranger := hosts[0], hosts[1], hosts[2]
	node := start(t, "node", nil, "node", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--relay-service",
		"--relay-circuit-bytes", "3MiB", "--relay-circuit-duration", "45s", "--relay-max-reservations", "1",
		"--relay-allow", allowed.ID().String(), "--relay-allow", second.ID().String())
	relay, err := peer.AddrInfoFromString(field(node.stdout.await(t, "node", "listening: /", 20*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The relay service starts a moment after the node (once the host
	// takes itself as public): until then a reservation fails otherwise
	// than by the relay's refusal.
	reserve := func(h host.Host) (*client.Reservation, error) {
		for {
			r, err := client.Reserve(ctx, h, *relay)
			var re client.ReservationError
			if err == nil || (errors.As(err, &re) && re.Status != pbv2.Status_CONNECTION_FAILED) || ctx.Err() != nil {
				return r, err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	r, err := reserve(allowed)
	if err != nil {
		t.Fatalf("the allowed peer's reservation: %v", err)
	}
	if r.LimitData != 3<<20 || r.LimitDuration != 45*time.Second {
		t.Errorf("reservation limits %d bytes, %s; want 3 MiB, 45s", r.LimitData, r.LimitDuration)
	}
	var re client.ReservationError
	if _, err := reserve(stranger); !errors.As(err, &re) || re.Status != pbv2.Status_PERMISSION_DENIED {
		t.Errorf("a peer not in --relay-allow: %v, want PERMISSION_DENIED", err)
	}
	if _, err := reserve(second); !errors.As(err, &re) || re.Status != pbv2.Status_RESERVATION_REFUSED {
		t.Errorf("a second allowed peer past --relay-max-reservations 1: %v, want RESERVATION_REFUSED", err)
	}
}

// Punching fails (the subscriber behind a symmetric NAT) and moq node
// --relay-service keeps its default, limited circuits: the subscription
// starts on the circuit, the node cuts it after 128 KiB, and the track goes
// on at the MoQ level through the same node, which forwards the broadcast
// the publisher announced on its session with it. 2 MiB arrive
// byte-exact, digests equal. Needs root (CI).
func TestNATSymmetricRelayFallback(t *testing.T) {
	lab, err := netns.NATed(t, [2]netns.NATKind{netns.EndpointIndependent, netns.Symmetric}, binEnv+"="+moqBin)
	if err != nil {
		netns.Unavailable(t, "no NAT lab: %v", err)
	}
	if lab == nil {
		return // the parent: the lab's verdict is relayed
	}
	node := start(t, "node", nil, "node", "--listen", "/ip4/"+lab.WAN+"/udp/0/quic-v1", "--relay-service", "-v")
	boot := field(node.stdout.await(t, "node", "listening: /", 20*time.Second))
	in := func(ns, name string, args ...string) *proc {
		return startCmd(t, name, nil, 3*time.Minute, func(ctx context.Context) *exec.Cmd {
			return lab.Exec(ctx, ns, moqBin, args...)
		})
	}
	const frames, perGroup, size = 4096, 64, 512 // 2 MiB, 16 times the circuit's limit
	args := []string{"--bootstrap", boot, "--timeout", "60s"}
	pub := in(lab.Sides[0].Host, "pub", append([]string{"pub", "-v", "--broadcast", "nat", "--frames", fmt.Sprint(frames),
		"--group-frames", fmt.Sprint(perGroup), "--size", fmt.Sprint(size), "--wait"}, args...)...)
	started := time.Now()
	sub := in(lab.Sides[1].Host, "sub", append([]string{"sub", "--broadcast", "nat", "-v"}, args...)...)
	defer func() {
		for _, p := range []*proc{node, pub, sub} {
			t.Logf("%s:\n%s", p.name, strings.Join(p.stderr.all(), "\n"))
		}
	}()
	sub.mustSucceed(t, 2*time.Minute)
	took := time.Since(started)
	pub.mustSucceed(t, 30*time.Second)
	want := pattern.Expect(frames/perGroup, perGroup, size)
	if got := lastSummary(t, "pub", pub.stdout.all()); got != want {
		t.Errorf("pub summary %+v, want %+v", got, want)
	}
	if got := lastSummary(t, "sub", sub.stdout.all()); got != want {
		t.Errorf("sub summary %+v, want %+v", got, want)
	}
	var relayed, forwarded bool
	for _, l := range sub.stderr.all() {
		relayed = relayed || strings.Contains(l, `msg="session path" when=subscribed`) && strings.Contains(l, "path=relayed limited=true")
		forwarded = forwarded || strings.Contains(l, `msg="continuing through a forwarding relay"`)
	}
	if !relayed || !forwarded {
		t.Errorf("subscribed on a limited circuit: %v; continued through the forwarding node: %v", relayed, forwarded)
	}
	t.Logf("%d KiB byte-exact in %s (sub's start to its end, with its 5 s wait for a punch), past a 128 KiB circuit", frames*size>>10, took.Round(time.Millisecond))
}
