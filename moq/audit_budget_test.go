package moq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Audit probe: the node-wide receive budget is shared by every session
// with no share per session. Publishers whose groups never finish (their
// frames count while the group is still arriving, and such a group is not
// evictable) fill it from a few sessions each within its own
// MaxReceiveBytes; then a relay can take no group of an honest publisher's
// track. Scaled down (6 MiB node budget, 4 MiB per session) from the
// defaults (512 MiB, 64 MiB: eight hostile sessions).
func TestAuditReceiveBudgetHeldByUnfinishedGroups(t *testing.T) {
	t.Run("control: budget to spare", func(t *testing.T) { budgetProbe(t, 64<<20) })
	t.Run("budget held by hostile groups", func(t *testing.T) { budgetProbe(t, 6<<20) })
}

func budgetProbe(t *testing.T, budget int64) {
	relay := newNode(t, WithForwarding(Forwarding{}), WithReceiveBudget(budget), WithLimits(Limits{MaxReceiveBytes: 4 << 20}))
	hostileSub := newNode(t).connect(t, relay)
	for h := range 2 {
		pub := newNode(t)
		relay.connect(t, pub)
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		name := fmt.Sprint("evil", h)
		if _, err := pub.Publish(testCtx(t), name, b.Consume()); err != nil {
			t.Fatal(err)
		}
		g, _ := tp.CreateGroup(0)
		for range 14 { // 3.5 MiB, never finished
			_ = g.WriteFrame(make([]byte, 256<<10))
		}
		forwarded(t, relay, name)
		tc, err := hostileSub.Subscribe(testCtx(t), name, "video")
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
	}
	time.Sleep(time.Second) // the hostile groups arrive at the relay

	pub := newNode(t)
	relay.connect(t, pub)
	f := newFeed(t, pub, "good", 1, 64<<10)
	forwarded(t, relay, "good")
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 20*time.Millisecond)
	tc, err := newNode(t).connect(t, relay).Subscribe(testCtx(t), "good", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	gctx, gcancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer gcancel()
	got := 0
	for got < 20 {
		g, err := tc.NextGroup(gctx)
		if err != nil {
			t.Fatalf("honest track through the relay: %d groups, then %v", got, err)
		}
		if _, err := g.ReadFrame(gctx); err != nil {
			t.Fatalf("honest track through the relay: group %d: %v", g.Sequence(), err)
		}
		got++
	}
}
