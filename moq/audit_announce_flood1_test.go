package moq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Audit probe: as TestAuditRelayAnnounceFloodClosesDownstream, with a
// single hostile session that stays within its own MaxAnnounced.
func TestAuditRelayAnnounceFloodOneSession(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{})
	relay.connect(t, pub)
	f := newFeed(t, pub, "good", 1, 100)
	forwarded(t, relay, "good")
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 20*time.Millisecond)

	const perHostile = 4096 // one session at its own MaxAnnounced
	for h := range 1 {
		hostile := newNode(t)
		relay.connect(t, hostile)
		for i := range perHostile {
			b := broadcast.New(broadcast.Config{})
			if _, err := hostile.Publish(testCtx(t), fmt.Sprintf("h%d/%04d", h, i), b.Consume()); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "the relay forwarding every path", func() bool {
		st, _ := relay.ForwardStats(testCtx(t))
		return st.Paths >= perHostile+1
	})
	st, _ := relay.ForwardStats(testCtx(t))
	t.Logf("relay forwards %d paths (refused %d)", st.Paths, st.Refused)

	down := newNode(t)
	ds := down.connect(t, relay)
	tc, err := ds.Subscribe(testCtx(t), "good", "video")
	if err != nil {
		t.Fatalf("honest downstream subscription: %v", err)
	}
	defer tc.Close()
	gctx, gcancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer gcancel()
	for i := range 20 {
		if _, err := tc.NextGroup(gctx); err != nil {
			t.Fatalf("honest downstream track, group %d: %v (session: %v)", i, err, context.Cause(ds.Context()))
		}
	}
	if err := context.Cause(ds.Context()); err != nil {
		t.Fatalf("downstream session to the relay ended: %v", err)
	}
}
