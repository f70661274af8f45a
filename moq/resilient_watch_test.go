package moq

import (
	"context"
	"sync"
	"testing"
	"time"
)

// liveAfter waits for tr's next TrackLive event after since and returns
// when it came.
func liveAfter(t *testing.T, events <-chan TrackEvent, since time.Time) time.Time {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == TrackLive && ev.At.After(since) {
				return ev.At
			}
		case <-timeout:
			t.Fatal("no upstream within 10 s")
		}
	}
}

// idlePasses waits for tr's lookups to settle after a loss and returns
// how many it made during the next second: a track waiting for a
// publisher that is not there looks on events, not on a timer.
func idlePasses(t *testing.T, tr *ResilientTrack) uint64 {
	t.Helper()
	// Settled: no lookup for longer than the longest retry pause (a
	// session still announcing the name while it refuses is retried after
	// up to a second; the first look waits up to 500 ms for the previous
	// provider). On a loaded machine that can take a while; 10 s at most.
	const quiet = 1200 * time.Millisecond
	last, changed := tr.passes.Load(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Since(changed) < quiet; {
		if time.Now().After(deadline) {
			t.Fatalf("lookups never settled after the loss: %d", tr.passes.Load())
		}
		time.Sleep(50 * time.Millisecond)
		if n := tr.passes.Load(); n != last {
			last, changed = n, time.Now()
		}
	}
	before := tr.passes.Load()
	time.Sleep(time.Second) // the behaviour under test: no lookup in this second
	return tr.passes.Load() - before
}

// TestResilientTrackWakesOnAnnounce: a resilient track that lost its
// publisher makes no lookups while nothing happens, and resumes within
// milliseconds of another session's peer announcing the broadcast, and of
// a new session from a peer that already announces it.
func TestResilientTrackWakesOnAnnounce(t *testing.T) {
	sub, pub1 := newNode(t), newNode(t)
	sub.connect(t, pub1)
	m1 := publish(t, pub1, "watched")
	paced(t, m1, 100)
	tr, err := sub.SubscribeResilient(testCtx(t), "watched", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan TrackEvent, 64)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev := range tr.Events(ctx) {
			events <- ev
		}
	})
	defer func() { cancel(); tr.Close(); wg.Wait() }()
	liveAfter(t, events, time.Time{})

	// The publisher withdraws the broadcast; another peer, connected but
	// announcing nothing yet, publishes it later.
	pub2 := newNode(t)
	pub2.connect(t, sub)
	m1.pub.Unpublish()
	if n := idlePasses(t, tr); n != 0 {
		t.Errorf("%d lookups in a second while no one announced the broadcast, want 0", n)
	}
	announced := time.Now()
	m2 := publish(t, pub2, "watched")
	paced(t, m2, 100)
	tookAnnounce := liveAfter(t, events, announced).Sub(announced)

	// The second publisher withdraws it too; a third peer that publishes
	// it already connects.
	m2.pub.Unpublish()
	if n := idlePasses(t, tr); n != 0 {
		t.Errorf("%d lookups in a second while no one announced the broadcast, want 0", n)
	}
	pub3 := newNode(t)
	paced(t, publish(t, pub3, "watched"), 100)
	connected := time.Now()
	pub3.connect(t, sub)
	tookSession := liveAfter(t, events, connected).Sub(connected)

	t.Logf("upstream again %v after an announcement on a session, %v after a new session's connect began", tookAnnounce, tookSession)
	if tookAnnounce > 250*time.Millisecond || tookSession > 500*time.Millisecond {
		t.Fatalf("resumed %v after the announcement, %v after the connect: want events, not polling, to wake the track", tookAnnounce, tookSession)
	}
}
