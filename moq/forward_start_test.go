package moq

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// A relay's one upstream subscription starts at the earliest group its
// subscribers asked for: the first subscriber asks for group 4 of a track
// whose publisher has 0..9, and gets 4..9 through the relay. Later
// subscribers share that subscription: one asking for an earlier group (1)
// gets what the relay holds (4 on), one asking for a later one (7) gets 7
// on, and so does the relay's own subscriber asking for 6.
func TestForwardStartAggregated(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{})
	relay.connect(t, pub)
	f := newFeed(t, pub, "st", 2, 100)
	forwarded(t, relay, "st")
	for range 10 {
		f.group()
	}
	from := func(start uint64, want []uint64, sub func(SubscribeOptions) (*broadcast.TrackConsumer, error)) {
		t.Helper()
		tc, err := sub(SubscribeOptions{Start: &start})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tc.Close) // held: the later ones share its upstream subscription
		got := f.read(t, tc, len(want), false)
		if s := slices.Sorted(slices.Values(got.seqs)); !slices.Equal(s, want) {
			t.Fatalf("start %d: groups %v, want %v", start, s, want)
		}
	}
	remote := func() func(SubscribeOptions) (*broadcast.TrackConsumer, error) {
		s := newNode(t).connect(t, relay)
		return func(o SubscribeOptions) (*broadcast.TrackConsumer, error) {
			return s.SubscribeWith(testCtx(t), "st", "video", o)
		}
	}
	from(4, []uint64{4, 5, 6, 7, 8, 9}, remote())
	from(1, []uint64{4, 5, 6, 7, 8, 9}, remote())
	from(7, []uint64{7, 8, 9}, remote())
	from(6, []uint64{6, 7, 8, 9}, func(o SubscribeOptions) (*broadcast.TrackConsumer, error) {
		return relay.SubscribeWith(testCtx(t), "st", "video", o)
	})
	if st, _ := relay.ForwardStats(testCtx(t)); st.Upstream != 1 {
		t.Fatalf("%d upstream subscriptions, want 1", st.Upstream)
	}
}

// A subscriber that is first on a forwarded track and asks for a start far
// ahead of the publisher (2^40) cannot hold the relay's shared upstream
// subscription there: a subscriber that wants the latest group joins and,
// once the upstream delivered nothing for a moment, the relay subscribes
// again without a start and both are served (the far one waits for its
// groups, as it asked). One asking for an earlier start gets the relay to
// subscribe again at once, from there. And an upstream track held at a far
// start is not kept for the linger: a live subscriber coming right after the
// far one left is served too.
func TestForwardFarStartKeepsOthersLive(t *testing.T) {
	far := uint64(1) << 40
	within := func(t *testing.T, tc *broadcast.TrackConsumer, d time.Duration) *broadcast.GroupConsumer {
		t.Helper()
		ctx, cancel := context.WithTimeout(testCtx(t), d)
		defer cancel()
		g, err := tc.NextGroup(ctx)
		if err != nil {
			t.Fatalf("no group in %v: %v", d, err)
		}
		return g
	}
	t.Run("live", func(t *testing.T) {
		pub, relay := newNode(t), newRelay(t, Forwarding{})
		relay.connect(t, pub)
		f := newFeed(t, pub, "fs", 1, 100)
		forwarded(t, relay, "fs")
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		go f.run(ctx, 10*time.Millisecond)

		hostile := newNode(t).connect(t, relay)
		htc, err := hostile.SubscribeWith(testCtx(t), "fs", "video", SubscribeOptions{Start: &far})
		if err != nil {
			t.Fatal(err)
		}
		defer htc.Close()
		honest := newNode(t).connect(t, relay)
		tc, err := honest.Subscribe(testCtx(t), "fs", "video")
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		f.mu.Lock()
		at := f.next
		f.mu.Unlock()
		if g := within(t, tc, 3*time.Second); g.Sequence()+5 < at {
			t.Fatalf("live subscriber joined at group %d, publisher was at %d", g.Sequence(), at)
		}
		within(t, tc, time.Second) // and the groups go on
		if st, _ := relay.ForwardStats(testCtx(t)); st.Upstream != 1 {
			t.Fatalf("%d upstream subscriptions, want 1", st.Upstream)
		}
	})
	t.Run("earlier", func(t *testing.T) {
		pub, relay := newNode(t), newRelay(t, Forwarding{})
		relay.connect(t, pub)
		f := newFeed(t, pub, "fe", 1, 100)
		forwarded(t, relay, "fe")
		for range 10 {
			f.group()
		}
		hostile := newNode(t).connect(t, relay)
		htc, err := hostile.SubscribeWith(testCtx(t), "fe", "video", SubscribeOptions{Start: &far})
		if err != nil {
			t.Fatal(err)
		}
		defer htc.Close()
		honest := newNode(t).connect(t, relay)
		start := uint64(3)
		tc, err := honest.SubscribeWith(testCtx(t), "fe", "video", SubscribeOptions{Start: &start})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		got := map[uint64]bool{}
		for len(got) < 7 {
			got[within(t, tc, 3*time.Second).Sequence()] = true
		}
		if !slices.Equal(slices.Sorted(maps.Keys(got)), []uint64{3, 4, 5, 6, 7, 8, 9}) {
			t.Fatalf("groups %v, want 3..9", slices.Sorted(maps.Keys(got)))
		}
	})
	t.Run("linger", func(t *testing.T) {
		pub, relay := newNode(t), newRelay(t, Forwarding{})
		relay.connect(t, pub)
		f := newFeed(t, pub, "fl", 1, 100)
		forwarded(t, relay, "fl")
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		go f.run(ctx, 10*time.Millisecond)

		hostile := newNode(t).connect(t, relay)
		htc, err := hostile.SubscribeWith(testCtx(t), "fl", "video", SubscribeOptions{Start: &far})
		if err != nil {
			t.Fatal(err)
		}
		htc.Close()
		// The relay's pump ends with its last subscriber; whatever it
		// keeps for the linger (2 s) must not hold the next one back.
		honest := newNode(t).connect(t, relay)
		tc, err := honest.Subscribe(testCtx(t), "fl", "video")
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		within(t, tc, 3*time.Second)
	})
}
