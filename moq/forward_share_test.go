package moq

import (
	"errors"
	"fmt"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
)

// One downstream peer cannot take every upstream slot of a relay: with
// MaxUpstream 4 and a share of 2 per peer, a hostile peer that asks for
// four forwarded tracks gets two and has the others refused with
// BoundsExceeded, and an honest peer then still has two new forwarded
// tracks subscribed upstream for it, and joins the hostile one's tracks
// (which take no slot of its own).
func TestForwardUpstreamSharePerPeer(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{MaxUpstream: 4, MaxUpstreamPerPeer: 2})
	relay.connect(t, pub)
	b := broadcast.New(broadcast.Config{})
	for i := range 6 {
		tp, err := b.CreateTrack(broadcast.Track{Name: fmt.Sprint("t", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.WriteGroup(0, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.Publish(testCtx(t), "share", b.Consume()); err != nil {
		t.Fatal(err)
	}
	forwarded(t, relay, "share")
	subscribe := func(s *Session, track string) (*broadcast.TrackConsumer, error) {
		tc, err := s.Subscribe(testCtx(t), "share", track)
		if err == nil { // the refusal can come as the track's end, just after its SUBSCRIBE_OK
			if _, err = tc.RecvGroup(testCtx(t)); err != nil {
				tc.Close()
				return nil, err
			}
			t.Cleanup(tc.Close)
		}
		return tc, err
	}
	bounds := &broadcast.Error{Code: broadcast.CodeBoundsExceeded}

	hostile := newNode(t).connect(t, relay)
	for i := range 4 {
		_, err := subscribe(hostile, fmt.Sprint("t", i))
		switch {
		case i < 2 && err != nil:
			t.Fatalf("hostile session's track %d: %v", i, err)
		case i >= 2 && !errors.Is(err, bounds):
			t.Fatalf("hostile session's track %d: %v, want BoundsExceeded", i, err)
		}
	}
	honest := newNode(t).connect(t, relay)
	for _, track := range []string{"t4", "t5", "t0"} {
		if _, err := subscribe(honest, track); err != nil {
			t.Fatalf("honest session's %s: %v", track, err)
		}
	}
	if st, _ := relay.ForwardStats(testCtx(t)); st.Upstream != 4 {
		t.Fatalf("%d upstream subscriptions, want 4", st.Upstream)
	}
}
