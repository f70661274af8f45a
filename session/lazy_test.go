package session

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// With LazyInterest the subscriber asks for the peer's announcements only at
// its first Remote call. AwaitRemote then returns once what the peer had
// announced before is in Remote (versions that mark that set), and later
// announcements and withdrawals still arrive.
func TestLazyInterest(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		early := broadcast.New(broadcast.Config{})
		tp, _ := early.CreateTrack(broadcast.Track{Name: "video"})
		defer tp.Finish()
		origin := broadcast.NewOrigin(0)
		unpubEarly, _ := origin.Publish("room/early", early.Consume())
		p := newPair(t, alpn, Config{Publish: origin}, Config{LazyInterest: true})
		ctx := testCtx(t)
		select {
		case <-p.sub.Ready():
		case <-ctx.Done():
			t.Fatal("no version")
		}
		lazy := marksInitialSet(p.sub.version)
		if alpn == "moq-lite-03" || alpn == "moq-lite-04" {
			if lazy {
				t.Fatalf("%s marks its first set?", alpn)
			}
		} else if !lazy {
			t.Fatalf("%s: the first set is marked, so the interest should wait", alpn)
		}
		// A subscription needs no announcement: a round trip with the
		// publisher, after which it has served an announce stream only if
		// one was opened.
		tc, err := p.sub.Subscribe(ctx, "room/early", "video", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tc.Close()
		if lazy {
			if n := p.pub.interests.Load(); n != 0 {
				t.Fatalf("%d announce streams served before anything read Remote", n)
			}
			if p.sub.remoteWanted.Load() {
				t.Fatal("the interest was asked for before anything read Remote")
			}
		}
		if err := p.sub.AwaitRemote(ctx); err != nil {
			t.Fatal(err)
		}
		if lazy && p.sub.Remote().Get("room/early") == nil {
			t.Fatal("after AwaitRemote, Remote lacks a broadcast announced before")
		}
		waitAnnounced(t, p.sub, "room/early", true)
		if n := p.pub.interests.Load(); n != 1 {
			t.Fatalf("%d announce streams served, want 1", n)
		}
		late := broadcast.New(broadcast.Config{})
		unpubLate, _ := origin.Publish("room/late", late.Consume())
		waitAnnounced(t, p.sub, "room/late", true)
		unpubLate()
		waitAnnounced(t, p.sub, "room/late", false)
		unpubEarly()
		waitAnnounced(t, p.sub, "room/early", false)
		if err := p.sub.AwaitRemote(ctx); err != nil { // again: at once
			t.Fatal(err)
		}
	})
}

// AwaitRemote called before the version is known (the compat SETUP still
// running) opens the interest once it is, and returns with the first set;
// an empty set is a set too.
func TestLazyInterestBeforeVersion(t *testing.T) {
	forEach(t, []string{"moql", "moq-lite-05"}, func(t *testing.T, alpn string) {
		origin := broadcast.NewOrigin(0)
		b := broadcast.New(broadcast.Config{})
		_, _ = origin.Publish("cam", b.Consume())
		p := newPair(t, alpn, Config{Publish: origin}, Config{LazyInterest: true})
		if err := p.sub.AwaitRemote(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if p.sub.Remote().Get("cam") == nil {
			t.Fatal("after AwaitRemote, Remote lacks cam")
		}
		empty := newPair(t, alpn, Config{}, Config{LazyInterest: true})
		if err := empty.sub.AwaitRemote(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if got := empty.sub.Remote().Active(""); len(got) != 0 {
			t.Fatalf("Remote of a peer announcing nothing: %v", got)
		}
	})
}

// AwaitRemote with no prefix to ask for returns at once; on a session that
// ended, it returns rather than wait for ctx.
func TestAwaitRemoteSessionEnds(t *testing.T) {
	p := newPair(t, "moq-lite-05", Config{}, Config{LazyInterest: true, Interest: []string{}})
	if err := p.sub.AwaitRemote(testCtx(t)); err != nil { // no prefix: nothing to wait for
		t.Fatal(err)
	}
	q := newPair(t, "moq-lite-05", Config{}, Config{LazyInterest: true})
	_ = q.pub.Close(broadcast.CodeCancel, "bye")
	<-q.sub.Done()
	// It returns (the interest cannot open: nothing will come), not at
	// ctx's end.
	if err := q.sub.AwaitRemote(testCtx(t)); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("AwaitRemote on an ended session: %v", err)
	}
	if got := q.sub.Remote().Active(""); len(got) != 0 {
		t.Fatalf("an ended session's Remote lists %v", got)
	}
}

// An idle lazy pair on lite-05 parks one goroutine per side, the accept
// loop for the peer's bidi streams: no announce stream is open, the SETUP
// writers are done and the group-stream loops stopped after taking the
// peer's SETUP. A subscription then starts its loop again.
func TestLazyIdlePairGoroutines(t *testing.T) {
	sc, cc := conns(t, "moq-lite-05")
	base := runtime.NumGoroutine()
	pub, err := New(sc, Config{Publish: broadcast.NewOrigin(0), Logger: testLogger(), LazyInterest: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(broadcast.CodeCancel, "test over")
	sub, err := New(cc, Config{Client: true, Logger: testLogger(), LazyInterest: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(broadcast.CodeCancel, "test over")
	testutil.Until(t, testutil.Context(t, 15*time.Second), "an idle pair's goroutines settle at 2", func() bool {
		return runtime.NumGoroutine()-base <= 2
	})
	// Each side took the other's SETUP, and its group-stream accept loop
	// stopped after it: no subscription wants it yet.
	for _, s := range []*Session{pub, sub} {
		if s.peerSetup.msg.Load() == nil || s.uniAccepting.Load() {
			t.Fatalf("SETUP read %v, group-stream loop running %v", s.peerSetup.msg.Load() != nil, s.uniAccepting.Load())
		}
	}
	// Asking for announcements opens the interest: the publisher serves it.
	if err := sub.AwaitRemote(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the interest served", func() bool { return pub.interests.Load() == 1 })
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = pub.publish.Publish("cam", b.Consume())
	tc, err := sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	g, _ := tp.CreateGroup(0)
	_ = g.WriteFrame([]byte("after the loop stopped"))
	_ = g.Finish()
	gc, err := tc.RecvGroup(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := readGroup(t, gc); len(got) != 1 || got[0] != "after the loop stopped" {
		t.Fatalf("group %q", got)
	}
	tp.Finish()
}
