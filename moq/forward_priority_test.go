package moq

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
)

// upstreamPriority is the priority n's session to p subscribed to the
// track with (the session's track, shared with n's pump).
func upstreamPriority(t *testing.T, n *node, p peer.ID, name, track string) uint8 {
	t.Helper()
	var prio uint8
	eventually(t, "an upstream subscription at "+p.String(), func() bool {
		list, _ := n.Sessions(testCtx(t))
		for _, s := range list {
			if s.RemotePeer() != p {
				continue
			}
			b := s.s.Remote().Get(name)
			if b == nil {
				return false
			}
			tc, err := b.SubscribeTrack(broadcast.Track{Name: track})
			if err != nil {
				return false
			}
			defer tc.Close()
			if _, ok := tc.Latest(); !ok { // not yet the pump's subscription
				return false
			}
			prio = tc.Info().Priority
			return true
		}
		return false
	})
	return prio
}

// A forwarded track's upstream subscription carries the highest priority
// its subscribers asked for when it is made: the first subscriber's at
// first, and after a failover the highest of those subscribed by then.
func TestForwardUpstreamPriority(t *testing.T) {
	pub := newNode(t)
	r1, r2 := newRelay(t, Forwarding{}), newRelay(t, Forwarding{})
	sub := newRelay(t, Forwarding{})
	r1.connect(t, pub)
	r2.connect(t, pub)
	f := newFeed(t, pub, "prio", 1, 100)
	forwarded(t, r1, "prio")
	forwarded(t, r2, "prio")
	sub.connect(t, r1)
	forwarded(t, sub, "prio")
	sub.connect(t, r2)
	eventually(t, "two routes", func() bool { st, _ := sub.ForwardStats(testCtx(t)); return st.Routes == 2 })
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 10*time.Millisecond)

	low, err := sub.SubscribeWith(testCtx(t), "prio", "video", SubscribeOptions{Priority: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer low.Close()
	if got := upstreamPriority(t, sub, r1.h.ID(), "prio", "video"); got != 10 {
		t.Fatalf("upstream priority %d with one subscriber at 10", got)
	}
	high, err := sub.SubscribeWith(testCtx(t), "prio", "video", SubscribeOptions{Priority: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer high.Close()
	seen, _ := high.Latest()
	_ = r1.Shutdown(context.Background())
	if got := upstreamPriority(t, sub, r2.h.ID(), "prio", "video"); got != 200 {
		t.Fatalf("upstream priority %d after the failover, want 200 (the highest asked)", got)
	}
	for {
		g, err := high.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatalf("the high-priority subscriber after the failover: %v", err)
		}
		if g.Sequence() > seen+1 {
			t.Logf("group %d after the failover (%d before)", g.Sequence(), seen)
			break
		}
	}
}
