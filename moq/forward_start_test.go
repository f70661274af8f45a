package moq

import (
	"slices"
	"testing"

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
