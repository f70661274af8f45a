package moq

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/impair"
)

// The active relay vanishes without a word: its link is cut at the network
// (nothing arrives, no CONNECTION_CLOSE, as after kill -9 of its process).
// The subscriber's node notices within its dead-peer bound and goes on via
// the other relay at the next group; the gap stays within that bound plus
// 500 ms.
func TestForwardFailoverDeadRelay(t *testing.T) {
	const bound = 2 * time.Second
	pub := newNode(t)
	r1, r2 := newRelay(t, Forwarding{}), newRelay(t, Forwarding{})
	sub := newNode(t, WithForwarding(Forwarding{}), WithDeadPeerTimeout(bound))
	r1.connect(t, pub)
	r2.connect(t, pub)
	f := newFeed(t, pub, "fo", 2, 500)
	forwarded(t, r1, "fo")
	forwarded(t, r2, "fo")
	info, link := linkTo(t, r1, true) // r1 through a proxy that can cut it
	if _, err := sub.Connect(testCtx(t), info); err != nil {
		t.Fatal(err)
	}
	forwarded(t, sub, "fo") // the first route: kept while it works
	sub.connect(t, r2)
	eventually(t, "two routes", func() bool { st, _ := sub.ForwardStats(testCtx(t)); return st.Routes == 2 })
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 10*time.Millisecond)
	tc, err := sub.Subscribe(testCtx(t), "fo", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	before := f.read(t, tc, 30, false)
	link.Set(impair.Config{Loss: 1})
	cut := time.Now()
	after := f.read(t, tc, 30, true)
	gap := after.at[0].Sub(before.at[len(before.at)-1])
	if slices.Min(after.seqs) <= before.max() {
		t.Fatalf("group %d again after %d", slices.Min(after.seqs), before.max())
	}
	t.Logf("failover from a dead relay: gap %v (%v after the cut), resumed at group %d after %d",
		gap, after.at[0].Sub(cut), slices.Min(after.seqs), before.max())
	if gap > bound+500*time.Millisecond {
		t.Fatalf("failover gap %v, want at most the dead-peer bound %v + 500 ms", gap, bound)
	}
	if st, _ := sub.ForwardStats(testCtx(t)); st.Switches == 0 {
		t.Fatal("no route switch counted: the cut relay was not the active route")
	}
}
