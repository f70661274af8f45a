package moq

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// A relay offers its forwarded paths to a session only under the prefixes
// its peer uses (asks for announcements there, or subscribes): idle
// sessions hold no per-path state and cost the actor no per-path work when
// they arrive. A session that asks gets every path under its prefix in its
// first set, while the actor keeps answering between batches of offers.
func TestRelayOffersOnlyToSessionsThatAsk(t *testing.T) {
	const publishers, perPublisher, idle = 4, 2000, 8
	const paths = publishers * perPublisher
	relay := newRelay(t, Forwarding{})
	for h := range publishers {
		pub := newNode(t)
		relay.connect(t, pub)
		for i := range perPublisher {
			b := broadcast.New(broadcast.Config{})
			if _, err := pub.Publish(testCtx(t), fmt.Sprintf("p%d/%04d", h, i), b.Consume()); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "the relay forwarding every path", func() bool {
		st, _ := relay.ForwardStats(testCtx(t))
		return st.Paths >= paths
	})
	st0, _ := relay.ForwardStats(testCtx(t))

	// roundTrip is how long the relay's actor takes to answer a query.
	roundTrip := func() time.Duration {
		t0 := time.Now()
		if _, err := relay.ForwardStats(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	var worst time.Duration
	for range idle {
		newNode(t).connect(t, relay) // never asks for announcements
		worst = max(worst, roundTrip())
	}
	st, _ := relay.ForwardStats(testCtx(t))
	t.Logf("%d idle sessions on a relay of %d paths: %d offers (%d before), slowest actor answer after a connect %v",
		idle, paths, st.Offers, st0.Offers, worst)
	if st.Offers != st0.Offers {
		t.Fatalf("idle sessions were offered %d paths", st.Offers-st0.Offers)
	}

	// A session that asks under a prefix is offered the paths there only.
	narrow := newNode(t, WithInterest("p1")).connect(t, relay)
	if err := narrow.s.AwaitRemote(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := len(narrow.s.Remote().Active("")); got != perPublisher {
		t.Fatalf("an interest in p1 got %d paths, want %d", got, perPublisher)
	}
	st, _ = relay.ForwardStats(testCtx(t))
	if st.Offers != st0.Offers+perPublisher {
		t.Fatalf("an interest in p1 made %d offers, want %d", st.Offers-st0.Offers, perPublisher)
	}
	st0 = st

	// A session that asks for everything: every path is in its first set,
	// and the actor answers meanwhile.
	down := newNode(t, WithLimits(Limits{MaxAnnounced: 2 * paths}))
	ds := down.connect(t, relay)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var busiest time.Duration
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			busiest = max(busiest, roundTrip())
			time.Sleep(time.Millisecond)
		}
	})
	t0 := time.Now()
	err := ds.s.AwaitRemote(testCtx(t))
	took := time.Since(t0)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	got := len(ds.s.Remote().Active(""))
	st, _ = relay.ForwardStats(testCtx(t))
	t.Logf("a session asking for %d paths: first set in %v, %d offers, slowest actor answer meanwhile %v", paths, took, st.Offers-st0.Offers, busiest)
	if got != paths {
		t.Fatalf("the first set holds %d paths, want %d", got, paths)
	}
	// Generous for -race on a loaded machine: offering all paths at once
	// takes the actor about as long as the whole first set.
	if busiest > 250*time.Millisecond {
		t.Fatalf("the actor took %v to answer while offering", busiest)
	}
}

// A peer that subscribes by name without asking for announcements (as
// gomoqt and @moq/lite's direct subscriptions do) finds the forwarded path:
// its SUBSCRIBE has the relay offer the paths first.
func TestRelayOffersOnSubscribe(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{})
	relay.connect(t, pub)
	f := newFeed(t, pub, "x", 1, 100)
	f.group()
	forwarded(t, relay, "x")
	ds := newNode(t).connect(t, relay)
	st0, _ := relay.ForwardStats(testCtx(t))
	// The session layer's Subscribe sends SUBSCRIBE at once, without an
	// announce interest (Session.Subscribe would ask for announcements).
	track, err := ds.s.Subscribe(testCtx(t), "x", "video", SubscribeOptions{})
	if err != nil {
		t.Fatalf("SUBSCRIBE without an announce interest: %v", err)
	}
	defer track.Close()
	if _, err := track.NextGroup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	st, _ := relay.ForwardStats(testCtx(t))
	if st.Offers != st0.Offers+1 {
		t.Fatalf("%d offers after the SUBSCRIBE, want %d", st.Offers, st0.Offers+1)
	}
}
