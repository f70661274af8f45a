package moq

import (
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/faults"
	"github.com/moqp2p/moqp2p/internal/netns"
)

// iroh-live's impairment profile at 15 frames/s between two nodes, over
// raw QUIC on the hosts' sockets (through a UDP proxy: latency and loss)
// and over libp2p streams on TCP (through a TCP proxy: latency only), read
// through a resilient track.
func TestImpairmentProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		udp  bool
	}{{"p2pquic", true}, {"p2pstream-tcp", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var pub, sub *node
			if tc.udp {
				pub, sub = newNode(t), newNode(t)
			} else {
				pub, sub = newTCPNode(t), newTCPNode(t)
			}
			info, link := linkTo(t, pub, tc.udp)
			if _, err := sub.Connect(testCtx(t), info); err != nil {
				t.Fatal(err)
			}
			m := publish(t, pub, "live")
			faults.Pace(t, m.track, 15)
			tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tr.Close)
			rec := faults.Record(t, tr.NextGroup)
			time.Sleep(time.Second)
			faults.Run(t, link, rec, faults.Profile(tc.udp))
		})
	}
}

// The profile's 20 % loss for 3 s and the recovery after it between two
// nodes over libp2p QUIC, dropped by the kernel (iptables on the loopback
// of a network namespace the test makes, where both nodes run), read
// through a resilient track. Needs root.
func TestKernelLossP2PQUIC(t *testing.T) {
	link, err := netns.Routed(t, netns.Impairment{})
	switch {
	case err != nil:
		netns.Unavailable(t, "no network namespaces for the impaired link (as root, it runs): %v", err)
		return
	case link == nil:
		return // the child ran it
	}
	pub, sub := newNode(t), newNode(t)
	if _, err := sub.Connect(testCtx(t), pub.info()); err != nil {
		t.Fatal(err)
	}
	m := publish(t, pub, "live")
	faults.Pace(t, m.track, 15)
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	rec := faults.Record(t, tr.NextGroup)
	time.Sleep(time.Second)
	faults.Run(t, &faults.KernelLink{T: t, SetLoss: link.SetLoopbackLoss, Dropped: link.KernelDropped}, rec, faults.Loss())
}
