package actor

import (
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

// A session whose peer sent GOAWAY is closed once its subscriptions end,
// not while one is open, and goawayGrace later at the latest.
func TestGoawayLeaves(t *testing.T) {
	// setup connects a to b, which publishes cam/video, and, if subscribe,
	// subscribes a to it; then b sends GOAWAY. It returns a's session, once
	// the GOAWAY arrived, and its track consumer (nil without subscribe).
	setup := func(t *testing.T, subscribe bool) (*Session, *broadcast.TrackConsumer) {
		nw := newNetwork(t)
		a, b := nw.add(t), nw.add(t)
		cam := broadcast.New(broadcast.Config{})
		if _, err := cam.CreateTrack(broadcast.Track{Name: "video"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.a.Publish(testCtx(t), "cam", cam.Consume()); err != nil {
			t.Fatal(err)
		}
		sa := a.connect(t, b)
		var tc *broadcast.TrackConsumer
		if subscribe {
			eventually(t, "cam announced to a", func() bool { return announced(sa, "cam") })
			var err error
			if tc, err = sa.Subscribe(testCtx(t), "cam", "video", session.SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tc.Close)
		}
		eventually(t, "b's session with a", func() bool { return len(b.sessionsTo(t, a.id)) == 1 })
		if err := b.sessionsTo(t, a.id)[0].Goaway(testCtx(t), ""); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sa.GoingAway():
		case <-testCtx(t).Done():
			t.Fatal("GOAWAY never arrived")
		}
		return sa, tc
	}
	closedWithin := func(t *testing.T, sa *Session, d time.Duration, what string) {
		t.Helper()
		select {
		case <-sa.Done():
		case <-time.After(d):
			t.Fatalf("session still open %v after %s", d, what)
		}
		if err := sa.Err(); err == nil || !strings.Contains(err.Error(), "GOAWAY") {
			t.Fatalf("session ended with %v, want it closed for the GOAWAY", err)
		}
	}

	t.Run("unused", func(t *testing.T) {
		sa, _ := setup(t, false)
		closedWithin(t, sa, time.Second, "GOAWAY with no subscription")
	})

	// Well within the grace: 300 ms open with a subscription, then closed
	// within 1 s of its end.
	t.Run("used", func(t *testing.T) {
		sa, tc := setup(t, true)
		select {
		case <-sa.Done():
			t.Fatalf("closed with a subscription open: %v", sa.Err())
		case <-time.After(300 * time.Millisecond):
		}
		tc.Close()
		closedWithin(t, sa, time.Second, "the last subscription ended")
	})

	t.Run("grace", func(t *testing.T) {
		sa, _ := setup(t, true)
		start := time.Now()
		closedWithin(t, sa, goawayGrace+3*time.Second, "the grace")
		// The grace's timer starts a moment after GOAWAY is seen here.
		if d := time.Since(start); d < goawayGrace/2 {
			t.Fatalf("closed after %v with a subscription open, want about %v", d, goawayGrace)
		}
	})
}
