package moq

import (
	"context"
	"testing"
	"time"
)

// Audit probe: a hostile subscriber that is the first to subscribe to a
// forwarded track through a relay asks for a start far in the future. The
// relay's one upstream subscription starts there; an honest subscriber
// that then joins the same track (live, no start) gets nothing.
func TestAuditForwardFutureStartStallsOthers(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{})
	relay.connect(t, pub)
	f := newFeed(t, pub, "fs", 1, 100)
	forwarded(t, relay, "fs")
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 10*time.Millisecond)

	hostile := newNode(t).connect(t, relay)
	far := uint64(1) << 40
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
	gctx, gcancel := context.WithTimeout(testCtx(t), 3*time.Second)
	defer gcancel()
	g, err := tc.NextGroup(gctx)
	if err != nil {
		// Does it recover once the hostile subscriber leaves?
		htc.Close()
		rctx, rcancel := context.WithTimeout(testCtx(t), 5*time.Second)
		_, rerr := tc.NextGroup(rctx)
		rcancel()
		t.Logf("after the hostile subscriber left: %v", rerr)
		f.mu.Lock()
		next := f.next
		f.mu.Unlock()
		t.Fatalf("honest live subscriber got no group in 3 s while a hostile subscriber holds start=2^40 (publisher at group %d): %v", next, err)
	}
	t.Logf("honest subscriber got group %d", g.Sequence())
}
