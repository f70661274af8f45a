package moq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
)

// refusingLate publishes name on n as a broadcast that takes a
// subscription to any track and then, after a moment, ends it with
// NotFound, as a relay does whose own upstream lacks the track (one that
// answers before it asked, as moqp2p's relays no longer do).
func refusingLate(t *testing.T, n *node, name string) *Publication {
	t.Helper()
	b := broadcast.New(broadcast.Config{OnTrack: func(tp *broadcast.TrackProducer) {
		time.AfterFunc(100*time.Millisecond, func() { tp.Abort(broadcast.ErrNotFound) })
	}})
	p, err := n.Publish(testCtx(t), name, b.Consume())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A resilient track whose publisher replaced its broadcast with one that
// accepts each subscription and then ends it with NotFound, through a
// relay: the accepted resubscriptions deliver no group, so they do not
// end the outage, and the track ends with ErrOutage once MaxOutage has
// passed since the loss.
func TestResilientOutageCountsUntilAGroup(t *testing.T) {
	pub, relay, sub := newNode(t), newRelay(t, Forwarding{}), newNode(t)
	relay.connect(t, pub)
	sub.connect(t, relay)
	m := publish(t, pub, "live")
	paced(t, m, 30)
	forwarded(t, relay, "live")
	const maxOutage = 2 * time.Second
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{MaxOutage: maxOutage})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := tr.RecvGroup(ctx); err != nil {
		t.Fatal(err)
	}
	var lostAt time.Time
	lives := 0
	events := make(chan struct{})
	go func() {
		defer close(events)
		for ev := range tr.Events(ctx) {
			switch {
			case ev.Kind == TrackLost && lostAt.IsZero():
				lostAt = ev.At
			case ev.Kind == TrackLive && !lostAt.IsZero():
				lives++
			}
		}
	}()
	m.pub.Unpublish()
	refusingLate(t, pub, "live")
	var end error
	for {
		if _, end = tr.RecvGroup(ctx); end != nil {
			break
		}
	}
	ended := time.Now()
	<-events
	if !errors.Is(end, ErrOutage) {
		t.Fatalf("track ended with %v, want ErrOutage", end)
	}
	if !errors.Is(end, broadcast.ErrNotFound) {
		t.Errorf("track ended with %v, want it to wrap the upstream's NotFound", end)
	}
	outage := ended.Sub(lostAt)
	t.Logf("ended %v after the loss, %d resubscriptions accepted meanwhile: %v", outage, lives, end)
	if lives < 2 {
		t.Errorf("%d resubscriptions accepted after the loss, want several accepted (and reset)", lives)
	}
	if outage < maxOutage || outage > maxOutage+2*time.Second {
		t.Errorf("ended %v after the loss, want about MaxOutage (%v)", outage, maxOutage)
	}
}

// A resilient track whose first subscription is accepted and then ended
// with NotFound before any group, while the publisher still announces the
// broadcast, fails at once with NotFound, as a refused first subscription
// does, rather than resubscribing forever (no MaxOutage here).
func TestResilientUnknownTrackAcceptedThenReset(t *testing.T) {
	pub, sub := newNode(t), newNode(t)
	sub.connect(t, pub)
	refusingLate(t, pub, "live")
	start := time.Now()
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "nope", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = tr.RecvGroup(ctx)
	if !errors.Is(err, broadcast.ErrNotFound) || errors.Is(err, ErrOutage) {
		t.Fatalf("got %v, want an error matching broadcast.ErrNotFound", err)
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// A relay refuses a subscription to a track its upstream lacks, with the
// upstream's NotFound, rather than accepting it and then resetting it.
func TestForwardRefusesUnknownTrack(t *testing.T) {
	pub, relay, sub := newNode(t), newRelay(t, Forwarding{}), newNode(t)
	relay.connect(t, pub)
	s := sub.connect(t, relay)
	paced(t, publish(t, pub, "live"), 30)
	forwarded(t, relay, "live")
	tc, err := s.Subscribe(testCtx(t), "live", "nope")
	if err == nil {
		tc.Close()
		t.Fatal("subscription to a track the publisher lacks accepted")
	}
	if !errors.Is(err, broadcast.ErrNotFound) {
		t.Fatalf("refused with %v, want an error matching broadcast.ErrNotFound", err)
	}
	// The tracks it has are still accepted, and deliver.
	tc, err = s.Subscribe(testCtx(t), "live", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.NextGroup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// A broadcast withdrawn before its first group also ends a relay's
// subscriptions with NotFound; a resilient track takes that as a loss,
// not as a missing track, and resumes once the publisher is back.
func TestResilientBroadcastGoneBeforeFirstGroup(t *testing.T) {
	pub, relay, sub := newNode(t), newRelay(t, Forwarding{}), newNode(t)
	relay.connect(t, pub)
	sub.connect(t, relay)
	m := publish(t, pub, "live") // no group yet
	forwarded(t, relay, "live")
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lost := make(chan error, 1)
	go func() {
		for ev := range tr.Events(ctx) {
			if ev.Kind == TrackLost {
				lost <- ev.Err
				return
			}
		}
	}()
	m.pub.Unpublish()
	select {
	case err := <-lost:
		t.Logf("lost: %v", err)
	case <-ctx.Done():
		t.Fatal("no loss reported after the broadcast was withdrawn")
	}
	time.Sleep(time.Second) // past the track's look at the announcement
	paced(t, publish(t, pub, "live"), 30)
	if _, err := tr.RecvGroup(ctx); err != nil {
		t.Fatalf("track ended with %v, want it to resume with the publisher", err)
	}
}

// dialSession opens another session from n to the peer to, as a link's
// redial does (a dial and a registration of its own, beside any session
// the two have already), offering to only n's publications under scope
// ("": all). It returns n's end of it.
func dialSession(t *testing.T, n, to *node, scope string) *Session {
	t.Helper()
	c, err := n.redialPeer(testCtx(t), to.info())
	if err != nil {
		t.Fatal(err)
	}
	s, err := n.a.RegisterWith(testCtx(t), c, actor.RegisterOptions{Dialed: true, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return &Session{s: s, m: n.Moq}
}

// twoSessions gives sub two sessions with pub: the older one dialed by the
// publisher, offering only its publications under /elsewhere (relative to
// it), the newer one dialed by sub, offering all. It returns sub's ends.
func twoSessions(t *testing.T, sub, pub *node) (older, newer *Session) {
	t.Helper()
	dialSession(t, pub, sub, "elsewhere")
	eventually(t, "the publisher's session registered", func() bool {
		list, _ := sub.Sessions(testCtx(t))
		if len(list) == 1 {
			older = list[0]
		}
		return older != nil
	})
	newer = dialSession(t, sub, pub, "")
	if older.RemotePeer() != pub.h.ID() || newer.RemotePeer() != pub.h.ID() {
		t.Fatalf("sessions with %s and %s, want both with the publisher %s", older.RemotePeer(), newer.RemotePeer(), pub.h.ID())
	}
	for _, s := range []*Session{older, newer} {
		if err := s.s.AwaitRemote(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	return older, newer
}

// With two sessions to the publisher, an older one that does not carry
// the broadcast and a newer one that does, a resilient track subscribes on
// the newer one, and judges the NotFound that ends its subscription before
// any group by that session's announcements: the broadcast is still
// announced there, so the track is missing, and the track fails at once,
// with no loss reported. Judged by the peer's oldest session, which does
// not announce the broadcast, the NotFound read as the broadcast's end: a
// loss, and a resubscription.
func TestResilientJudgesTheSessionSubscribedOn(t *testing.T) {
	pub, sub := newNode(t), newNode(t)
	refusingLate(t, pub, "live")
	older, newer := twoSessions(t, sub, pub)
	if older.s.Remote().Get("live") != nil {
		t.Fatal("the older session announces the broadcast: its scope did not hold")
	}
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "nope", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = tr.RecvGroup(ctx)
	if !errors.Is(err, broadcast.ErrNotFound) || errors.Is(err, ErrOutage) {
		t.Fatalf("got %v, want an error matching broadcast.ErrNotFound", err)
	}
	for ev := range tr.Events(ctx) { // the track has ended: the events kept, then the end
		if ev.Kind == TrackLost {
			t.Errorf("a loss reported (%v): the NotFound was judged by another session than the one subscribed on", ev.Err)
		}
	}
	if older.Err() != nil || newer.Err() != nil {
		t.Fatalf("a session ended meanwhile (older: %v, newer: %v)", older.Err(), newer.Err())
	}
}

// The other way round: the older session announces a broadcast at the
// name (another one: the publisher's elsewhere/live, which lacks the
// track and so refuses the subscription), the newer one the broadcast
// subscribed to, which the publisher then withdraws, ending the
// subscription with NotFound before any group. Judged by the session
// subscribed on, that is the broadcast's end, a loss: the track resumes
// once the broadcast is back. Judged by the peer's oldest session, whose
// broadcast at the name stays, the track was taken for missing and the
// resilient track ended for good.
func TestResilientWithdrawnOnTheSessionSubscribedOn(t *testing.T) {
	pub, sub := newNode(t), newNode(t)
	if _, err := pub.Publish(testCtx(t), "elsewhere/live", broadcast.New(broadcast.Config{}).Consume()); err != nil {
		t.Fatal(err)
	}
	tracks := make(chan *broadcast.TrackProducer, 4)
	live, err := pub.Publish(testCtx(t), "live", broadcast.New(broadcast.Config{OnTrack: func(tp *broadcast.TrackProducer) { tracks <- tp }}).Consume())
	if err != nil {
		t.Fatal(err)
	}
	older, newer := twoSessions(t, sub, pub)
	if older.s.Remote().Get("live") == nil {
		t.Fatal("the older session does not announce elsewhere/live as live")
	}
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var tp *broadcast.TrackProducer
	select {
	case tp = <-tracks:
	case <-ctx.Done():
		t.Fatal("the publisher's live broadcast was never subscribed to")
	}
	tp.Abort(broadcast.ErrNotFound)
	live.Unpublish()
	lost := false
	for ev := range tr.Events(ctx) {
		if ev.Kind == TrackLost {
			t.Logf("lost: %v", ev.Err)
			lost = true
			break
		}
	}
	if !lost {
		_, err := tr.RecvGroup(ctx)
		t.Fatalf("no loss reported; the track ended with %v", err)
	}
	paced(t, publish(t, pub, "live"), 30)
	if _, err := tr.RecvGroup(ctx); err != nil {
		t.Fatalf("track ended with %v, want it to resume with the publisher", err)
	}
	if older.Err() != nil || newer.Err() != nil {
		t.Fatalf("a session ended meanwhile (older: %v, newer: %v)", older.Err(), newer.Err())
	}
}
