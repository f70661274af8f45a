package moq

import (
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/internal/faults"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// A publisher that keeps a link (Moq.Keep) to a listening subscriber: a
// partition ends the session (dead-peer detection) on both sides, the
// publisher's link redials, and the subscriber's unpinned resilient track
// resumes on the session the publisher brought back, within 1 s of the
// heal, every group after that arriving. The publisher advertises no
// address, as one behind a NAT: only its kept link can bring the session
// back.
func TestPublisherKeepSurvivesPartition(t *testing.T) {
	t.Run("p2pquic", func(t *testing.T) { testPublisherKeep(t, true, 5*time.Second) })
	t.Run("p2pstream-tcp", func(t *testing.T) { testPublisherKeep(t, false, 5*time.Second) })
}

func testPublisherKeep(t *testing.T, udp bool, partition time.Duration) {
	noAddrs := func([]ma.Multiaddr) []ma.Multiaddr { return nil }
	var pub, sub *node
	if udp {
		q := p2pquic.New(p2pquic.Config{Logger: testLogger()})
		pub = start(t, HostConfig{QUIC: q, AddrsFactory: noAddrs}, []Option{WithQUIC(q)})
		sub = newNode(t)
	} else {
		pub = start(t, HostConfig{ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}, AddrsFactory: noAddrs}, nil)
		sub = newTCPNode(t)
	}
	info, link := linkTo(t, sub, udp)
	m := publish(t, pub, "live")
	faults.Pace(t, m.track, 15)
	l := pub.Keep(info, KeepOptions{})
	t.Cleanup(l.Detach)
	if _, err := l.Session(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	rec := faults.Record(t, tr.RecvGroup)
	time.Sleep(time.Second)
	link.Set(impair.Config{Loss: 1})
	time.Sleep(partition)
	if st := l.State().State; st != LinkReconnecting {
		t.Errorf("the publisher's link is %v after %v of partition, want %v", st, partition, LinkReconnecting)
	}
	healed := faults.Heal(link)
	resumed, kinds := resumedAfter(t, tr, healed)
	time.Sleep(3 * time.Second)
	faults.CheckResumed(t, rec, healed, resumed, faults.ResumeBound)
	t.Logf("events %v", kinds)
}
