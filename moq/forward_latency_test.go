package moq

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// TestForwardLatencyPerSubscriber: two downstream subscribers of one
// forwarded track with different latency budgets share one upstream
// subscription, made without a budget (the widest any subscriber can
// ask), and each gets its own: a group still open when a group 300 ms
// newer starts is reset with Old for the subscriber whose budget is
// 100 ms, and reaches the unlimited one whole once it is finished.
func TestForwardLatencyPerSubscriber(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{})
	relay.connect(t, pub)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	if _, err := pub.Publish(testCtx(t), "lat", b.Consume()); err != nil {
		t.Fatal(err)
	}
	forwarded(t, relay, "lat")
	subscribe := func(maxLatency time.Duration) *broadcast.TrackConsumer {
		d := newNode(t)
		d.connect(t, relay)
		tc, err := d.SubscribeWith(testCtx(t), "lat", "video", SubscribeOptions{MaxLatency: maxLatency})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tc.Close)
		return tc
	}
	tight, loose := subscribe(100*time.Millisecond), subscribe(0)
	// Both subscriptions have reached the relay before the first group.
	eventually(t, "two downstream subscriptions at the relay", func() bool {
		list, _ := relay.Sessions(testCtx(t))
		served := 0
		for _, s := range list {
			for _, sub := range s.Stats().Subscriptions {
				if sub.Served && sub.Broadcast == "lat" {
					served++
				}
			}
		}
		return served == 2
	})
	if st, _ := relay.ForwardStats(testCtx(t)); st.Upstream != 1 {
		t.Fatalf("%d upstream subscriptions, want 1", st.Upstream)
	}

	g0, err := tp.CreateGroup(0)
	if err != nil {
		t.Fatal(err)
	}
	_ = g0.WriteFrame([]byte("first"))
	// Each subscriber has group 0 open before group 1 starts.
	read0 := map[string]*broadcast.GroupConsumer{}
	for name, tc := range map[string]*broadcast.TrackConsumer{"tight": tight, "loose": loose} {
		g, err := tc.RecvGroup(testCtx(t))
		if err != nil || g.Sequence() != 0 {
			t.Fatalf("%s: first group %v (%v), want 0", name, g, err)
		}
		if f, err := g.ReadFrame(testCtx(t)); err != nil || string(f) != "first" {
			t.Fatalf("%s: group 0's first frame %q (%v)", name, f, err)
		}
		read0[name] = g
	}
	time.Sleep(300 * time.Millisecond)
	_ = tp.WriteGroup(1, []byte("next"))
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	for name, tc := range map[string]*broadcast.TrackConsumer{"tight": tight, "loose": loose} {
		g, err := tc.RecvGroup(ctx)
		if err != nil || g.Sequence() != 1 {
			t.Fatalf("%s: next group %v (%v), want 1", name, g, err)
		}
	}
	// The tight subscriber's group 0 ended early, with Old, when group 1
	// came 300 ms after it.
	f, err := read0["tight"].ReadFrame(ctx)
	if !errors.Is(err, &broadcast.Error{Code: broadcast.CodeOld}) {
		t.Fatalf("tight subscriber's group 0: frame %q (%v), want a reset with Old", f, err)
	}
	// The loose one's is still open: the upstream subscription kept it,
	// and its end reaches this subscriber only.
	_ = g0.WriteFrame([]byte("second"))
	_ = g0.Finish()
	if f, err := read0["loose"].ReadFrame(ctx); err != nil || string(f) != "second" {
		t.Fatalf("loose subscriber's group 0: frame %q (%v), want \"second\"", f, err)
	}
	if _, err := read0["loose"].ReadFrame(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("loose subscriber's group 0 after its second frame: %v, want its end", err)
	}
	// The relay counted the reset on the tight subscriber's session only.
	var olds []uint64
	list, _ := relay.Sessions(testCtx(t))
	for _, s := range list {
		for _, sub := range s.Stats().Subscriptions {
			if sub.Served && sub.Broadcast == "lat" {
				olds = append(olds, sub.Resets[broadcast.CodeOld])
			}
		}
	}
	if len(olds) != 2 || olds[0]+olds[1] != 1 {
		t.Fatalf("Old resets per downstream subscription %v, want one in all", olds)
	}
}
