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
