package moq

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// defaultMaxAnnounced is session.Limits' default MaxAnnounced.
const defaultMaxAnnounced = 4096

// A relay forwards more paths than a downstream session holds
// (Forwarding.MaxPaths is above session.Limits.MaxAnnounced), whether one
// peer announces them at its own session's bound or several peers share
// them: the downstream ignores the announcements beyond its bound, counts
// them, and keeps its session, and an honest track through the relay goes on.
func TestRelayForwardsMorePathsThanDownstreamHolds(t *testing.T) {
	for _, tc := range []struct {
		name           string
		peers, perPeer int
	}{
		{"one peer at its own bound", 1, 4096},
		{"two peers", 2, 2100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, relay := newNode(t), newRelay(t, Forwarding{})
			relay.connect(t, pub)
			f := newFeed(t, pub, "good", 1, 100)
			forwarded(t, relay, "good")
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			go f.run(ctx, 20*time.Millisecond)

			for h := range tc.peers {
				other := newNode(t)
				relay.connect(t, other)
				for i := range tc.perPeer {
					b := broadcast.New(broadcast.Config{})
					if _, err := other.Publish(testCtx(t), fmt.Sprintf("h%d/%04d", h, i), b.Consume()); err != nil {
						t.Fatal(err)
					}
				}
			}
			total := tc.peers*tc.perPeer + 1
			eventually(t, "the relay forwarding every path", func() bool {
				st, _ := relay.ForwardStats(testCtx(t))
				return st.Paths >= total
			})

			down := newNode(t)
			ds := down.connect(t, relay)
			track, err := ds.Subscribe(testCtx(t), "good", "video")
			if err != nil {
				t.Fatalf("downstream subscription through the relay: %v", err)
			}
			defer track.Close()
			gctx, gcancel := context.WithTimeout(testCtx(t), 5*time.Second)
			defer gcancel()
			for i := range 20 {
				if _, err := track.NextGroup(gctx); err != nil {
					t.Fatalf("downstream track, group %d: %v (session: %v)", i, err, context.Cause(ds.Context()))
				}
			}
			held := 0
			eventually(t, "every announcement held or ignored", func() bool {
				held = len(ds.s.Remote().Active(""))
				return uint64(held)+ds.Stats().Media.AnnouncementsIgnored == uint64(total)
			})
			if held != defaultMaxAnnounced {
				t.Fatalf("downstream holds %d announcements, want its bound, %d", held, defaultMaxAnnounced)
			}
			if !ds.remoteIncomplete() {
				t.Fatal("RemoteIncomplete not closed after announcements were ignored")
			}
			if err := context.Cause(ds.Context()); err != nil {
				t.Fatalf("downstream session to the relay ended: %v", err)
			}
		})
	}
}

// A subscription by name on a session whose peer announced more than the
// session holds goes to the peer without waiting for an announcement that
// may have been left out: every forwarded path is reachable, and a path
// the relay lacks is refused rather than waited for.
func TestSubscribeBeyondAnnounceBound(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{})
	relay.connect(t, pub)
	const n = 8
	for i := range n {
		f := newFeed(t, pub, fmt.Sprintf("b%d", i), 1, 100)
		f.group()
		forwarded(t, relay, fmt.Sprintf("b%d", i))
	}
	down := newNode(t, WithLimits(Limits{MaxAnnounced: 2}))
	ds := down.connect(t, relay)
	if err := ds.s.AwaitRemote(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "announcements ignored", ds.remoteIncomplete)
	if got := len(ds.s.Remote().Active("")); got != 2 {
		t.Fatalf("downstream holds %d announcements, want 2", got)
	}
	for i := range n {
		name := fmt.Sprintf("b%d", i)
		track, err := ds.Subscribe(testCtx(t), name, "video")
		if err != nil {
			t.Fatalf("Session.Subscribe %s: %v", name, err)
		}
		track.Close()
	}
	// By name on the node: the relay's session is a candidate too.
	for i := range n {
		name := fmt.Sprintf("b%d", i)
		if ds.s.Remote().Get(name) != nil {
			continue
		}
		track, err := down.Subscribe(testCtx(t), name, "video")
		if err != nil {
			t.Fatalf("Moq.Subscribe %s: %v", name, err)
		}
		track.Close()
		break
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	if _, err := ds.Subscribe(ctx, "missing", "video"); !errors.Is(err, broadcast.ErrNotFound) {
		t.Fatalf("subscription to a path nobody announces: %v, want NotFound", err)
	}
	if err := context.Cause(ds.Context()); err != nil {
		t.Fatalf("downstream session ended: %v", err)
	}
}
