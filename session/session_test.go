package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// waitAnnounced waits until the subscriber's Remote shows path active (or,
// with want false, ended).
func waitAnnounced(t *testing.T, s *Session, path string, want bool) *broadcast.Consumer {
	t.Helper()
	if !want { // an end that happened before an iteration starts is never yielded by it: poll
		eventually(t, func() bool { return s.Remote().Get(path) == nil })
		return nil
	}
	ctx := testCtx(t)
	for p, b := range s.Remote().Announced(ctx, "") {
		if p == path && (b != nil) == want {
			return b
		}
	}
	t.Fatalf("%s never became %v: %v", path, want, ctx.Err())
	return nil
}

func readGroup(t *testing.T, g *broadcast.GroupConsumer) []string {
	t.Helper()
	var out []string
	for {
		f, err := g.ReadFrame(testCtx(t))
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("group %d: %v", g.Sequence(), err)
		}
		out = append(out, string(f))
	}
}

func TestAnnounceAndUnannounce(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		a := broadcast.New(broadcast.Config{})
		_, _ = p.origin.Publish("room/a", a.Consume())
		b := waitAnnounced(t, p.sub, "room/a", true)
		if hops := b.Hops(); alpn == "moql" && len(hops) != 0 { // lite-02 carries no hops
			t.Errorf("hops %v over lite-02", hops)
		} else if alpn != "moql" && (len(hops) != 1 || (alpn == "moq-lite-04" && hops[0] != p.pub.hop)) {
			t.Errorf("hops %v: want the publisher's hop appended", hops)
		}
		c := broadcast.New(broadcast.Config{})
		unpub, _ := p.origin.Publish("room/c", c.Consume()) // announced after the session started
		waitAnnounced(t, p.sub, "room/c", true)
		unpub()
		waitAnnounced(t, p.sub, "room/c", false)
		a.Finish()
		waitAnnounced(t, p.sub, "room/a", false)
	})
}

func TestSubscribeReceivesGroupsAndEnd(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		_, _ = p.origin.Publish("cam", b.Consume())
		tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{Priority: 5})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		for gi := range 10 {
			g, _ := tp.AppendGroup()
			for fi := range 10 {
				_ = g.WriteFrame(fmt.Appendf(nil, "%d.%d", gi, fi))
			}
			_ = g.Finish()
		}
		_ = tp.Finish()
		for gi := range 10 {
			g, err := tc.RecvGroup(testCtx(t))
			if err != nil {
				t.Fatalf("group %d: %v", gi, err)
			}
			got := readGroup(t, g)
			if len(got) != 10 || got[0] != fmt.Sprintf("%d.0", g.Sequence()) || got[9] != fmt.Sprintf("%d.9", g.Sequence()) {
				t.Fatalf("group %d: %v", g.Sequence(), got)
			}
		}
		if _, err := tc.RecvGroup(testCtx(t)); !errors.Is(err, io.EOF) {
			t.Fatalf("after the publisher finished: %v, want EOF", err)
		}
		sent, recv := p.pub.Stats(), p.sub.Stats()
		if sent.FramesSent != 100 || recv.FramesReceived != 100 || sent.GroupsSent != 10 || recv.GroupsReceived != 10 ||
			sent.BytesSent != recv.BytesReceived || recv.BytesReceived == 0 {
			t.Errorf("stats: sent %+v, received %+v", sent, recv)
		}
	})
}

func TestLateJoinStartsAtLatestGroup(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		_, _ = p.origin.Publish("cam", b.Consume())
		for range 5 { // groups 0..4 exist before anyone subscribes
			_ = tp.WriteFrame([]byte("old"))
		}
		tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		g, err := tc.RecvGroup(testCtx(t))
		if err != nil || g.Sequence() != 4 {
			t.Fatalf("first group %v, %v; want the latest, 4", g, err)
		}
		_ = tp.WriteFrame([]byte("new"))
		if g, err := tc.RecvGroup(testCtx(t)); err != nil || g.Sequence() != 5 {
			t.Fatalf("next group %v, %v; want 5", g, err)
		}
	})
}

func TestSubscribeStartGroup(t *testing.T) {
	p := newPair(t, "moq-lite-04", Config{}, Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = p.origin.Publish("cam", b.Consume())
	for range 5 {
		_ = tp.WriteFrame([]byte("x"))
	}
	start, end := uint64(2), uint64(3)
	tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{Start: &start, End: &end})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	got := map[uint64]bool{}
	for range 2 { // separate streams: either may arrive first
		g, err := tc.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		got[g.Sequence()] = true
	}
	if !got[2] || !got[3] {
		t.Fatalf("got groups %v, want 2 and 3", got)
	}
}

func TestSubscribeUnknownIsNotFound(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		// Refused with Unroutable, which matches ErrNotFound.
		if _, err := p.sub.Subscribe(testCtx(t), "nope", "video", SubscribeOptions{}); !errors.Is(err, broadcast.ErrNotFound) ||
			broadcast.CodeOf(err) != broadcast.CodeUnroutable {
			t.Fatalf("unknown broadcast: %v, want ErrNotFound (Unroutable)", err)
		}
		b := broadcast.New(broadcast.Config{})
		_, _ = p.origin.Publish("cam", b.Consume())
		if _, err := p.sub.Subscribe(testCtx(t), "cam", "nope", SubscribeOptions{}); !errors.Is(err, broadcast.ErrNotFound) {
			t.Fatalf("unknown track: %v, want ErrNotFound", err)
		}
	})
}

// Local subscribers of one track share one wire subscription, and the wire
// subscription ends (the publisher stops serving) when the last one leaves.
func TestDuplicateSubscriptionsShareOneAndCancel(t *testing.T) {
	p := newPair(t, "moq-lite-04", Config{}, Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = p.origin.Publish("cam", b.Consume())
	first, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-tp.Used()
	if n := p.pub.served.Load(); n != 1 {
		t.Fatalf("publisher serves %d subscriptions, want 1 shared", n)
	}
	_ = tp.WriteFrame([]byte("both"))
	for _, c := range []*broadcast.TrackConsumer{first, second} {
		g, err := c.RecvGroup(testCtx(t))
		if err != nil || readGroup(t, g)[0] != "both" {
			t.Fatalf("shared subscriber: %v", err)
		}
	}
	first.Close()
	second.Close()
	select {
	case <-tp.Unused(): // the publisher's consumer went away: unsubscribed on the wire
	case <-time.After(5 * time.Second):
		t.Fatal("the wire subscription outlived its last consumer")
	}
	eventually(t, func() bool { return p.pub.served.Load() == 0 })
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, "the condition", cond)
}

// Unannouncing a broadcast ends subscriptions to it.
func TestUnannounceEndsSubscription(t *testing.T) {
	p := newPair(t, "moq-lite-04", Config{}, Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = p.origin.Publish("cam", b.Consume())
	waitAnnounced(t, p.sub, "cam", true)
	tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	b.Finish()
	_ = tp
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := tc.RecvGroup(ctx); !errors.Is(err, broadcast.ErrNotFound) {
		t.Fatalf("after unannounce: %v, want the broadcast's end", err)
	}
}

// GOAWAY (lite-04+) reaches the peer with its URI; older versions have none.
func TestGoaway(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		err := p.pub.Goaway(testCtx(t), "https://example.test/next")
		if alpn != "moq-lite-04" && alpn != "moq-lite-05" {
			if !errors.Is(err, ErrNoGoaway) {
				t.Fatalf("Goaway over %s: %v, want ErrNoGoaway", alpn, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.sub.GoingAway():
		case <-testCtx(t).Done():
			t.Fatal("GOAWAY never arrived")
		}
		if u := p.sub.GoawayURI(); u != "https://example.test/next" {
			t.Fatalf("uri %q", u)
		}
		if p.sub.Err() != nil || p.pub.Err() != nil {
			t.Fatal("GOAWAY must not end the session by itself")
		}
	})
}

// TestAnnounceChurn publishes and unpublishes many broadcasts from several
// goroutines while the session serves the peer's interest: the announcer
// runs only while there are changes, so this races its starts and stops
// against the origin's callbacks. The peer must end with exactly the set
// that is active at the end.
func TestAnnounceChurn(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		const workers, paths = 4, 25
		done := make(chan map[string]bool, workers)
		for w := range workers {
			go func() {
				keep := map[string]bool{}
				for i := range paths {
					path := fmt.Sprintf("churn/%d/%d", w, i)
					b := broadcast.New(broadcast.Config{})
					unpub, err := p.origin.Publish(path, b.Consume())
					if err != nil {
						t.Error(err)
					}
					if i%3 == 0 {
						unpub()
					} else {
						keep[path] = true
					}
				}
				done <- keep
			}()
		}
		want := map[string]bool{}
		for range workers {
			for path := range <-done {
				want[path] = true
			}
		}
		eventually(t, func() bool {
			got := p.sub.Remote().Active("churn")
			if len(got) != len(want) {
				return false
			}
			for path := range got {
				if !want[path] {
					return false
				}
			}
			return true
		})
	})
}

// TestAnnounceKickDuringRun: a change made just as the announcer found
// nothing more to send (its run is ending) must still be sent.
func TestAnnounceKickDuringRun(t *testing.T) {
	origin := broadcast.NewOrigin(0)
	var once sync.Once
	announcerDrained = func() {
		once.Do(func() { _, _ = origin.Publish("late", broadcast.New(broadcast.Config{}).Consume()) })
	}
	t.Cleanup(func() { announcerDrained = func() {} }) // after the pair's cleanup: its sessions are gone
	p := newPair(t, "moq-lite-04", Config{Publish: origin}, Config{})
	waitAnnounced(t, p.sub, "late", true)
}
