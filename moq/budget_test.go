package moq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// The node's receive budget is shared fairly between sessions: publishers
// whose groups never finish cannot hold it so that an honest publisher's
// track gets nothing. Their groups are not evictable as cached groups, so
// the honest session's writes take them back, aborted with BoundsExceeded,
// from the session holding the most. Scaled down (6 MiB node budget, 4 MiB
// per session) from the defaults (512 MiB, 64 MiB: eight such sessions).
func TestReceiveBudgetTakenFromStalledSessions(t *testing.T) {
	budget := broadcast.NewBudget(6<<20, nil)
	relay := newNode(t, WithForwarding(Forwarding{}), WithLimits(Limits{MaxReceiveBytes: 4 << 20, ReceiveBudget: budget}))
	hostileSub := newNode(t).connect(t, relay)
	var stalled []*broadcast.TrackConsumer
	for h := range 2 {
		pub := newNode(t)
		relay.connect(t, pub)
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		name := fmt.Sprint("stalled", h)
		if _, err := pub.Publish(testCtx(t), name, b.Consume()); err != nil {
			t.Fatal(err)
		}
		g, _ := tp.CreateGroup(0)
		// 3 MiB, never finished: the two fill the node's budget. (More would
		// not: the second session would take the first one's group back.)
		for range 12 {
			_ = g.WriteFrame(make([]byte, 256<<10))
		}
		forwarded(t, relay, name)
		tc, err := hostileSub.Subscribe(testCtx(t), name, "video")
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		stalled = append(stalled, tc)
	}
	deadline := time.Now().Add(5 * time.Second)
	for budget.Used() < 6<<20-256<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled groups hold %d bytes of the relay's budget", budget.Used())
		}
		time.Sleep(10 * time.Millisecond)
	}

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
	for got := 0; got < 20; got++ {
		g, err := tc.NextGroup(gctx)
		if err != nil {
			t.Fatalf("honest track through the relay: %d groups, then %v", got, err)
		}
		if _, err := g.ReadFrame(gctx); err != nil {
			t.Fatalf("honest track through the relay: group %d: %v", g.Sequence(), err)
		}
	}
	// The honest session took one stalled group back: it ended, for its
	// subscriber too, with the budget's code. The other holds no more than
	// the honest session does and stays.
	ended := 0
	for i, tc := range stalled {
		g, err := tc.RecvGroup(gctx)
		if err != nil {
			t.Fatalf("stalled track %d: %v", i, err)
		}
		rctx, rcancel := context.WithTimeout(gctx, time.Second)
		for err == nil {
			_, err = g.ReadFrame(rctx)
		}
		rcancel()
		switch {
		case broadcast.CodeOf(err) == broadcast.CodeBoundsExceeded:
			ended++
		case rctx.Err() == nil:
			t.Errorf("stalled track %d's group ended with %v, want BoundsExceeded", i, err)
		}
	}
	if ended != 1 {
		t.Errorf("%d stalled groups taken back, want 1", ended)
	}
}
