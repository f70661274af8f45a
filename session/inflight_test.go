package session

// The session-wide bound on groups in flight on the publish path
// (Limits.MaxSessionGroupsInFlight): a hostile subscriber that never reads,
// its fairness between subscriptions, and transfers that must not lose a
// group to it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
)

// waiting is how many subscriptions wait for a session token.
func (p *groupTokens) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// A raw peer subscribes many times to a track with many groups, grants
// stream credit and reads no group stream: the connection's flow-control
// window fills and the group writers block. With the defaults (64 per
// subscription, 256 per session) the subscriptions could hold 12 × 64 = 768
// writers; the session holds MaxSessionGroupsInFlight, within the
// documented ~48 KiB each, and keeps serving: a new SUBSCRIBE is taken in
// (its SUBSCRIBE_OK waits like everything else we send, since the peer's
// connection window stays full until it reads), unsubscribing frees every
// token, and once the peer reads, a fresh subscription gets its group.
func TestBadInputSessionGroupsInFlight(t *testing.T) {
	const (
		subs      = 12
		groups    = 100
		frameSize = 4 << 10 // over inlineBytes: every group gets a writer
		perWriter = 48 << 10
	)
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}}, false)
	ctx := testCtx(t)
	limit := p.sess.lim.MaxSessionGroupsInFlight
	if limit != 256 || p.sess.lim.MaxGroupsInFlight*subs <= limit {
		t.Fatalf("defaults: %d per session, %d per subscription", limit, p.sess.lim.MaxGroupsInFlight)
	}
	streams := make([]transport.Stream, subs)
	for i := range streams {
		_, streams[i] = p.subscribe(t, ctx, "/cam", "video")
	}
	before, goroutines := testutil.HeapAlloc(), runtime.NumGoroutine()
	frame := bytes.Repeat([]byte{'x'}, frameSize)
	for range groups {
		if err := p.track.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	// Every token held by a writer stuck on flow control, subscriptions
	// waiting in line for the next (those not at their own bound); or more
	// writers than the bound, which fails below.
	eventually(t, func() bool {
		return p.sess.inFlight.inUse() == limit && p.sess.inFlight.waiting() > 0 ||
			runtime.NumGoroutine()-goroutines > limit+8
	})
	grew := testutil.HeapAlloc() - before
	g := runtime.NumGoroutine() - goroutines
	t.Logf("%d subscriptions, %d groups of %d KiB unread: %d tokens held, heap +%d KiB (%d B per writer), goroutines +%d",
		subs, groups, frameSize>>10, p.sess.inFlight.inUse(), grew>>10, grew/int64(limit), g)
	if g > limit+8 {
		t.Fatalf("%d more goroutines, want at most MaxSessionGroupsInFlight (%d) and a few", g, limit)
	}
	// The cached groups and the raw side's buffers of the streams that
	// got through come on top of the writers.
	if maxHeap := int64(limit*perWriter + groups*(frameSize+1<<10) + 1<<20); grew > maxHeap {
		t.Fatalf("heap grew %d KiB, over %d KiB", grew>>10, maxHeap>>10)
	}

	// Accepting a subscription does not wait for tokens.
	_, msg := p.subscribeMsg(t, "/cam", "video")
	late := p.openStream(t, ctx, msg, false)
	eventually(t, func() bool { return p.sess.served.Load() == subs+1 })
	reset(late, broadcast.CodeCancel)
	for _, st := range streams {
		reset(st, broadcast.CodeCancel)
	}
	// Every writer ends with its subscription and gives its token back.
	eventually(t, func() bool {
		return p.sess.inFlight.inUse() == 0 && p.sess.inFlight.waiting() == 0 && p.sess.served.Load() == 0
	})

	// The peer starts reading, which reopens its connection window, and a
	// fresh subscription gets its group.
	dctx, stop := context.WithCancel(ctx)
	got := make(chan parsedGroup)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			rs, err := p.raw.AcceptUniStream(dctx)
			if err != nil {
				return
			}
			// Each stream on its own: one that is slow to end must not keep
			// the others, and the connection window they hold, unread.
			wg.Go(func() {
				defer context.AfterFunc(dctx, func() { rs.CancelRead(0) })()
				data, err := io.ReadAll(rs)
				if err != nil {
					return // a group of an unsubscribed subscription, reset
				}
				if g, err := p.parseGroup(data); err == nil {
					select {
					case got <- g:
					case <-dctx.Done():
					}
				}
			})
		}
	}()
	defer func() { stop(); <-drained }()
	id, st := p.subscribe(t, ctx, "/cam", "video")
	defer reset(st, broadcast.CodeCancel)
	if err := p.track.WriteFrame([]byte("alive")); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case g := <-got:
			if g.hdr.SubscribeID == id && slices.Contains(g.frames, "alive") {
				return
			}
		case <-ctx.Done():
			t.Fatal("no group for the fresh subscription")
		}
	}
}

// A subscription that holds no token gets the next one freed, ahead of a
// subscription that holds them all: tokens go out in the order asked.
func TestSessionGroupsInFlightFair(t *testing.T) {
	const limit = 2
	lim := Limits{MaxGroupsInFlight: limit, MaxSessionGroupsInFlight: limit}
	p := newPair(t, "moq-lite-04", Config{Limits: lim}, Config{})
	ctx := testCtx(t)
	b := broadcast.New(broadcast.Config{})
	ta, _ := b.CreateTrack(broadcast.Track{Name: "a"})
	tb, _ := b.CreateTrack(broadcast.Track{Name: "b"})
	_, _ = p.origin.Publish("cam", b.Consume())
	waitAnnounced(t, p.sub, "cam", true)
	ca, err := p.sub.Subscribe(ctx, "cam", "a", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := p.sub.Subscribe(ctx, "cam", "b", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()

	// Track a: three groups left open, so their writers keep their tokens.
	open := make([]*broadcast.GroupProducer, 3)
	for i := range open {
		if open[i], err = ta.AppendGroup(); err != nil {
			t.Fatal(err)
		}
		if err := open[i].WriteFrame([]byte(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, g := range open {
			_ = g.Finish()
		}
	}()
	eventually(t, func() bool { return p.pub.inFlight.inUse() == limit })
	// Track b's group, not small, waits in line for a token.
	want := bytes.Repeat([]byte{'b'}, 2<<10)
	if err := tb.WriteFrame(want); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return p.pub.inFlight.waiting() == 1 })
	// a0 ends: its token goes to b, not to a2 (which would stay open and
	// hold it).
	if err := open[0].Finish(); err != nil {
		t.Fatal(err)
	}
	g, err := cb.RecvGroup(ctx)
	if err != nil {
		t.Fatalf("b's group while a holds the other token: %v", err)
	}
	f, err := g.ReadFrame(ctx)
	if err != nil || !bytes.Equal(f, want) {
		t.Fatalf("b's frame: %d bytes, %v", len(f), err)
	}
	// Then a's last group gets its turn as the others end.
	for _, g := range open {
		_ = g.Finish()
	}
	seen := map[uint64]bool{}
	for len(seen) < len(open) {
		g, err := ca.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("a's groups: %v after %d", err, len(seen))
		}
		seen[g.Sequence()] = true
	}
	eventually(t, func() bool { return p.pub.inFlight.inUse() == 0 })
}

// Normal transfers under a session cap smaller than what the subscriptions
// ask for together: every group of every track arrives whole.
func TestSessionGroupsInFlightDeliversAll(t *testing.T) {
	const (
		tracks = 6
		groups = 120
	)
	lim := Limits{MaxGroupsInFlight: 4, MaxSessionGroupsInFlight: 8}
	p := newPair(t, "moq-lite-04", Config{Limits: lim}, Config{})
	ctx := testCtx(t)
	b := broadcast.New(broadcast.Config{})
	producers := make([]*broadcast.TrackProducer, tracks)
	for i := range producers {
		producers[i], _ = b.CreateTrack(broadcast.Track{Name: fmt.Sprint("t", i)})
	}
	_, _ = p.origin.Publish("cam", b.Consume())
	waitAnnounced(t, p.sub, "cam", true)
	consumers := make([]*broadcast.TrackConsumer, tracks)
	for i := range consumers {
		tc, err := p.sub.Subscribe(ctx, "cam", fmt.Sprint("t", i), SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		consumers[i] = tc
	}
	// A group's payload names its track and sequence; every third is small
	// (written inline, without a token), the others 6 KiB in two frames.
	payload := func(track, seq int) [][]byte {
		tag := []byte(fmt.Sprintf("t%d g%d ", track, seq))
		if seq%3 == 0 {
			return [][]byte{tag}
		}
		return [][]byte{tag, bytes.Repeat(tag[:1], 6<<10)}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*tracks)
	for i, tp := range producers {
		wg.Go(func() {
			for seq := range groups {
				if err := tp.WriteGroup(uint64(seq), payload(i, seq)...); err != nil {
					errs <- err
					return
				}
			}
			errs <- tp.Finish()
		})
	}
	for i, tc := range consumers {
		wg.Go(func() {
			seen := map[uint64]bool{}
			for {
				g, err := tc.RecvGroup(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					errs <- fmt.Errorf("track %d after %d groups: %w", i, len(seen), err)
					return
				}
				want := payload(i, int(g.Sequence()))
				for _, w := range want {
					f, err := g.ReadFrame(ctx)
					if err != nil || !bytes.Equal(f, w) {
						errs <- fmt.Errorf("track %d group %d: frame of %d bytes, %v", i, g.Sequence(), len(f), err)
						return
					}
				}
				seen[g.Sequence()] = true
			}
			if len(seen) != groups {
				errs <- fmt.Errorf("track %d: %d of %d groups", i, len(seen), groups)
				return
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	eventually(t, func() bool { return p.pub.inFlight.inUse() == 0 })
}
