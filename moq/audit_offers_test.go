package moq

import (
	"fmt"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// Audit probe: a relay offers every forwarded path to every session at
// once, idle or not (offerTo from added, on the actor's goroutine). With
// many paths each new session costs O(paths) memory and actor time.
func TestAuditRelayOffersPerIdleSession(t *testing.T) {
	const publishers, perPublisher, downs = 4, 4000, 8
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
		return st.Paths >= publishers*perPublisher
	})
	heap0 := testutil.HeapAlloc()
	var worst time.Duration
	for range downs {
		d := newNode(t)
		d.connect(t, relay) // idle: never asks for announcements
		// How long the relay's actor takes to answer while it offers.
		t0 := time.Now()
		_, _ = relay.ForwardStats(testCtx(t))
		worst = max(worst, time.Since(t0))
	}
	eventually(t, "the offers", func() bool {
		st, _ := relay.ForwardStats(testCtx(t))
		return st.Offers >= uint64(downs*publishers*perPublisher)
	})
	grew := testutil.HeapAlloc() - heap0
	t.Logf("%d idle sessions on a relay of %d paths: heap +%d KiB (%d KiB per session, the downstream nodes' own state included), slowest actor answer after a connect %v",
		downs, publishers*perPublisher, grew>>10, grew>>10/downs, worst)
	if worst > 25*time.Millisecond {
		t.Fatalf("one idle session's arrival held the relay's actor for %v", worst)
	}
}
