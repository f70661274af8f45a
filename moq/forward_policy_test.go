package moq

import (
	"context"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// activeVia waits until n forwards name through the route whose last hop
// is via's, and returns the switches counted by then.
func activeVia(t *testing.T, n, via *node, name string) uint64 {
	t.Helper()
	want := HopID(via.h.ID())
	var st ForwardStats
	eventually(t, name+" through "+via.h.ID().String(), func() bool {
		b := n.Forwarded().Get(name)
		if b == nil {
			return false
		}
		hops := b.Hops()
		st, _ = n.ForwardStats(testCtx(t))
		return len(hops) > 0 && hops[len(hops)-1] == want
	})
	return st.Switches
}

// TestForwardCostBeatsAge: two routes of equal length to one broadcast,
// the costlier learnt first. The relay moves to the cheaper one as soon as
// it arrives, although a route that works is otherwise kept over a newer
// equal one (the control: the same two routes at equal cost stay on the
// first).
func TestForwardCostBeatsAge(t *testing.T) {
	for _, tc := range []struct {
		name      string
		firstCost int
		wantLast  string // the route in use after both are known
	}{
		{"cost 10 first, cost 1 second", 10, "second"},
		{"equal costs", 1, "first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := newNode(t)
			first, second := newRelay(t, Forwarding{}), newRelay(t, Forwarding{})
			firstID := first.h.ID()
			relay := newRelay(t, Forwarding{Cost: func(s *Session) int {
				if s.RemotePeer() == firstID {
					return tc.firstCost
				}
				return 0 // the link's own
			}})
			first.connect(t, pub)
			second.connect(t, pub)
			newFeed(t, pub, "cost", 1, 64)
			forwarded(t, first, "cost")
			forwarded(t, second, "cost")

			relay.connect(t, first)
			if sw := activeVia(t, relay, first, "cost"); sw != 0 {
				t.Fatalf("%d switches with one route", sw)
			}
			relay.connect(t, second)
			eventually(t, "two routes", func() bool { st, _ := relay.ForwardStats(testCtx(t)); return st.Routes == 2 })
			switch tc.wantLast {
			case "second":
				if sw := activeVia(t, relay, second, "cost"); sw != 1 {
					t.Fatalf("%d switches, want 1", sw)
				}
			case "first":
				time.Sleep(200 * time.Millisecond) // a switch would have happened by now
				if sw := activeVia(t, relay, first, "cost"); sw != 0 {
					t.Fatalf("%d switches between routes of equal rank, want 0 (the older is kept)", sw)
				}
			}
		})
	}
}

// servedSubscriptions counts the subscriptions n serves to p's session.
func servedSubscriptions(t *testing.T, n *node, p *node) int {
	t.Helper()
	list, _ := n.Sessions(testCtx(t))
	count := 0
	for _, s := range list {
		if s.RemotePeer() != p.h.ID() {
			continue
		}
		for _, sub := range s.Stats().Subscriptions {
			if sub.Served {
				count++
			}
		}
	}
	return count
}

// TestForwardLingerCancelsUpstream: after the last downstream subscriber
// leaves, the relay's upstream subscription is kept for the linger and
// then cancelled: the publisher stops serving it.
func TestForwardLingerCancelsUpstream(t *testing.T) {
	const linger = 600 * time.Millisecond
	pub, relay, sub := newNode(t), newRelay(t, Forwarding{Linger: linger}), newNode(t)
	relay.connect(t, pub)
	f := newFeed(t, pub, "linger", 1, 64)
	forwarded(t, relay, "linger")
	sub.connect(t, relay)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 10*time.Millisecond)
	tc, err := sub.Subscribe(testCtx(t), "linger", "video")
	if err != nil {
		t.Fatal(err)
	}
	f.read(t, tc, 5, true)
	if n := servedSubscriptions(t, pub, relay); n != 1 {
		t.Fatalf("the publisher serves %d subscriptions to the relay, want 1", n)
	}
	tc.Close()
	left := time.Now()
	eventually(t, "the relay's pump to stop", func() bool { st, _ := relay.ForwardStats(testCtx(t)); return st.Upstream == 0 })
	if d := time.Since(left); d < linger/2 {
		if n := servedSubscriptions(t, pub, relay); n != 1 {
			t.Fatalf("%v after the last subscriber left (linger %v): the publisher serves %d subscriptions, want 1", d, linger, n)
		}
	}
	testutil.Until(t, testCtx(t), "the upstream subscription to end", func() bool { return servedSubscriptions(t, pub, relay) == 0 })
	gone := time.Since(left)
	t.Logf("upstream cancelled %v after the last subscriber left (linger %v)", gone, linger)
	if gone < linger || gone > linger+time.Second {
		t.Fatalf("upstream cancelled %v after the last subscriber left, want within [%v, %v]", gone, linger, linger+time.Second)
	}
}

// TestForwardPrefixes: with Forwarding.Prefixes a relay forwards (and
// re-announces downstream) only the paths under them, whole segments.
func TestForwardPrefixes(t *testing.T) {
	pub, relay, down := newNode(t), newRelay(t, Forwarding{Prefixes: []string{"live", "/news/"}}), newNode(t)
	relay.connect(t, pub)
	ds := down.connect(t, relay)
	for _, name := range []string{"other/b", "liveish/c", "live", "news/today", "live/a"} {
		b := broadcast.New(broadcast.Config{})
		if _, err := pub.Publish(testCtx(t), name, b.Consume()); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{"live": true, "live/a": true, "news/today": true}
	eventually(t, "the forwarded paths downstream", func() bool {
		for name := range want {
			if ds.s.Remote().Get(name) == nil {
				return false
			}
		}
		return true
	})
	// Announced on one stream in order, taken in that order: the last
	// path being through, the others were considered.
	for _, name := range []string{"other/b", "liveish/c"} {
		if relay.Forwarded().Get(name) != nil || ds.s.Remote().Get(name) != nil {
			t.Errorf("%s forwarded, outside the prefixes", name)
		}
	}
	if got := len(ds.s.Remote().Active("")); got != len(want) {
		t.Errorf("%d paths announced downstream, want %d", got, len(want))
	}
	if st, _ := relay.ForwardStats(testCtx(t)); st.Paths != len(want) || st.Routes != len(want) {
		t.Errorf("relay forwards %d paths over %d routes, want %d", st.Paths, st.Routes, len(want))
	}
}

// TestForwardMaxHops: a route that has already come through 32 hops is
// forwarded for the relay's own subscribers but not re-announced: a 33rd
// hop is more than moq-lite allows. A shorter route from the same peer is.
func TestForwardMaxHops(t *testing.T) {
	pub, relay, down := newNode(t), newRelay(t, Forwarding{}), newNode(t)
	relay.connect(t, pub)
	ds := down.connect(t, relay)
	hops := make([]uint64, broadcast.MaxHops-1) // the publisher adds its own: 32 at the relay
	for i := range hops {
		hops[i] = uint64(1000 + i)
	}
	far := broadcast.New(broadcast.Config{Hops: hops})
	if _, err := pub.Publish(testCtx(t), "far", far.Consume()); err != nil {
		t.Fatal(err)
	}
	near := broadcast.New(broadcast.Config{})
	if _, err := pub.Publish(testCtx(t), "near", near.Consume()); err != nil {
		t.Fatal(err)
	}
	b := forwarded(t, relay, "far")
	if got := len(b.Hops()); got != broadcast.MaxHops {
		t.Fatalf("the relay's route to far has %d hops, want %d", got, broadcast.MaxHops)
	}
	eventually(t, "near downstream", func() bool { return ds.s.Remote().Get("near") != nil })
	time.Sleep(200 * time.Millisecond) // far, forwarded first, would have been announced by now
	if ds.s.Remote().Get("far") != nil {
		t.Fatalf("a 32-hop route re-announced with %d hops", len(ds.s.Remote().Get("far").Hops()))
	}
}
