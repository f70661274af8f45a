package session

// Hostile peers against the bounds in Limits: each test drives a raw peer
// (badinput_test.go's) past one bound and checks the session's answer (the
// moq-lite code), that the session keeps working where only a stream is at
// fault, and that the heap and goroutines the peer made the session hold
// stay within the budget the bound's doc comment states.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// heapSlack absorbs what the heap does on its own between two readings
// (QUIC buffers, the race detector, the runtime's own bookkeeping).
const heapSlack = 1 << 20

// wantHeapWithin fails if the heap grew past budget since base.
func wantHeapWithin(t *testing.T, what string, base, budget int64) int64 {
	t.Helper()
	grew := testutil.HeapAlloc() - base
	t.Logf("%s: heap grew %d KiB (budget %d KiB + %d KiB slack)", what, grew>>10, budget>>10, heapSlack>>10)
	if grew > budget+heapSlack {
		t.Errorf("%s: heap grew %d KiB, over the budget of %d KiB", what, grew>>10, (budget+heapSlack)>>10)
	}
	return grew
}

// goroutineSlack absorbs goroutines that come and go on their own (quic-go's
// timers, the test's helpers).
const goroutineSlack = 8

// wantGoroutinesWithin fails if more than budget goroutines were added
// since base.
func wantGoroutinesWithin(t *testing.T, what string, base, budget int) {
	t.Helper()
	n := runtime.NumGoroutine() - base
	t.Logf("%s: %d more goroutines (budget %d + %d slack)", what, n, budget, goroutineSlack)
	if n > budget+goroutineSlack {
		t.Errorf("%s: %d more goroutines, over the budget of %d", what, n, budget+goroutineSlack)
	}
}

// goroutinesBackTo waits until the goroutines the test made the session
// start are gone again.
func goroutinesBackTo(t *testing.T, base int) {
	t.Helper()
	eventually(t, func() bool { return runtime.NumGoroutine() <= base+goroutineSlack })
}

// loopPath is a distinct 4 KiB broadcast suffix.
func loopPath(i int) string {
	s := fmt.Sprintf("loop%06d-", i)
	return s + strings.Repeat("x", 4<<10-len(s))
}

// A peer that learned our hop ID sends announcements that look looped: the
// session refuses them but must remember them until they end, and that
// memory counts. With the default limits the paths run into
// MaxAnnouncedBytes (1 MiB) after 255 of 4 KiB; the session then ignores
// however many more the peer sends, holding little more than the paths,
// and stays up.
func TestBoundsLoopedAnnouncementFlood(t *testing.T) {
	p := newRawPeer(t, "moq-lite-04", Config{}, true)
	ctx := testCtx(t)
	st, please := p.acceptInterest(t, ctx)
	hop := please.ExcludeHop
	if hop == 0 || hop != p.sess.hop {
		t.Fatalf("ANNOUNCE_PLEASE excludes hop %d, want the session's %d", hop, p.sess.hop)
	}
	lim := p.sess.lim
	base, g0 := testutil.HeapAlloc(), runtime.NumGoroutine()

	fit := lim.MaxAnnouncedBytes/len(loopPath(0)) - 1 // and room for the marker
	var burst []byte
	for i := range fit {
		burst = append(burst, p.announce(t, true, loopPath(i), 7, hop)...)
	}
	rawWrite(t, st, rawCat(burst, p.announce(t, true, "marker", 7)))
	burst = nil
	waitRemote(t, p.sess, "marker") // every looped one before it was read
	if p.sess.Remote().Get(loopPath(0)) != nil {
		t.Fatal("a looped announcement is in Remote")
	}
	p.wantUp(t)
	// The documented budget: the paths, and 256 B per announcement for the
	// record of it (map entry, string header).
	wantHeapWithin(t, fmt.Sprintf("%d looped announcements of 4 KiB held", fit), base, int64(lim.MaxAnnouncedBytes)+int64(fit)*256)
	wantGoroutinesWithin(t, "looped announcements", g0, 0)

	// The flood goes on (4096 more, 16 MiB): each is over the budget,
	// ignored and forgotten; a short path still fits after them.
	const more = 4096
	for n := fit; n < fit+more; n++ {
		b, err := wire.AppendMessage(nil, p.v, &wire.Announce{Active: true, Suffix: loopPath(n), Hops: []uint64{7, hop}})
		if err != nil {
			t.Fatal(err)
		}
		rawWrite(t, st, b)
	}
	rawWrite(t, st, p.announce(t, true, "marker2", 7))
	waitRemote(t, p.sess, "marker2")
	p.wantUp(t)
	if got := p.sess.Stats().AnnouncementsIgnored; got != more {
		t.Fatalf("%d announcements ignored, want %d", got, more)
	}
	wantHeapWithin(t, fmt.Sprintf("%d looped announcements of 4 KiB held, %d ignored", fit, more), base, int64(lim.MaxAnnouncedBytes)+int64(fit)*256)
	wantGoroutinesWithin(t, "looped announcements ignored", g0, 0)
}

// The same with a count limit: MaxAnnounced 4, looped announcements of
// 4 KiB. Announcements that end free their place, so a peer that keeps
// announcing and ending loops stays within it and the session stays up.
func TestBoundsLoopedAnnouncementCount(t *testing.T) {
	p := newRawPeer(t, "moq-lite-04", Config{Limits: Limits{MaxAnnounced: 4}}, true)
	ctx := testCtx(t)
	st, please := p.acceptInterest(t, ctx)
	hop := please.ExcludeHop
	base := testutil.HeapAlloc()

	// Churn: 500 loops announced and ended, four at a time.
	for i := 0; i < 500; i += 4 {
		var b []byte
		for j := i; j < i+4; j++ {
			b = append(b, p.announce(t, true, loopPath(j), hop)...)
		}
		for j := i; j < i+4; j++ {
			b = append(b, p.announce(t, false, loopPath(j))...)
		}
		rawWrite(t, st, b)
	}
	rawWrite(t, st, p.announce(t, true, "marker", 7))
	waitRemote(t, p.sess, "marker")
	p.wantUp(t)
	wantHeapWithin(t, "500 looped announcements announced and ended", base, 0)

	// Three more loops fill the four places with the marker; one more is
	// over, ignored, and its end frees nothing: with the marker ended, one
	// place is free for marker2, none for marker3.
	rawWrite(t, st, rawCat(p.announce(t, true, loopPath(0), hop), p.announce(t, true, loopPath(1), hop), p.announce(t, true, loopPath(2), hop)))
	rawWrite(t, st, rawCat(p.announce(t, true, loopPath(3), hop), p.announce(t, false, loopPath(3)),
		p.announce(t, false, "marker"), p.announce(t, true, "marker2", 7), p.announce(t, true, "marker3", 7), p.announce(t, true, "marker4", 7)))
	waitRemote(t, p.sess, "marker2")
	p.wantUp(t)
	wantIgnored(t, p.sess, 3) // loop 3, marker3, marker4
	if p.sess.Remote().Get("marker3") != nil || p.sess.Remote().Get("marker4") != nil {
		t.Fatal("an announcement over MaxAnnounced is in Remote")
	}
}

// Active announcements within MaxAnnounced cost what its doc comment says
// (2 KiB each besides the path); more are ignored and cost nothing.
func TestBoundsAnnouncedHeap(t *testing.T) {
	const n = 1000
	p := newRawPeer(t, "moq-lite-04", Config{Limits: Limits{MaxAnnounced: n}}, true)
	ctx := testCtx(t)
	st, _ := p.acceptInterest(t, ctx)
	base, g0 := testutil.HeapAlloc(), runtime.NumGoroutine()
	var b []byte
	for i := range n - 1 {
		b = append(b, p.announce(t, true, fmt.Sprintf("b%04d", i), 7)...)
	}
	rawWrite(t, st, rawCat(b, p.announce(t, true, "marker", 7)))
	waitRemote(t, p.sess, "marker")
	p.wantUp(t)
	wantHeapWithin(t, fmt.Sprintf("%d active announcements", n), base, n*2<<10)
	wantGoroutinesWithin(t, "active announcements", g0, 0)
	var more []byte
	for i := range n {
		more = append(more, p.announce(t, true, fmt.Sprintf("over%04d", i), 7)...)
	}
	rawWrite(t, st, rawCat(more, p.announce(t, false, "marker"), p.announce(t, true, "marker2", 7)))
	waitRemote(t, p.sess, "marker2")
	p.wantUp(t)
	wantIgnored(t, p.sess, n)
	wantHeapWithin(t, fmt.Sprintf("%d active announcements, %d ignored", n, n), base, n*2<<10)
	if len(p.sess.Remote().Active("")) != n {
		t.Fatalf("Remote holds %d broadcasts, want %d", len(p.sess.Remote().Active("")), n)
	}
}

// A group stream whose header never arrives must not hold up the end of a
// finished subscription: once the publisher FINs the subscribe stream, the
// track ends after FinishGrace even though the stalled streams are still
// unsorted and their header deadline is an hour away.
func TestBoundsStalledGroupHeaderDoesNotHoldFinish(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		lim := Limits{FinishGrace: 100 * time.Millisecond, HeaderTimeout: time.Hour}
		p := newRawPeer(t, alpn, Config{Interest: []string{}, Limits: lim}, true)
		ctx := testCtx(t)
		tc, st, sub := p.sessionSubscribe(t, ctx)
		gs := p.openGroup(t, ctx, sub.ID, 0)
		rawWrite(t, gs, rawFrame("zero"))
		_ = gs.Close()

		// One stream with its type alone, one cut inside the GROUP header.
		for _, b := range [][]byte{
			rawVarint(uint64(wire.UniGroup)),
			rawCat(rawVarint(uint64(wire.UniGroup)), rawVarint(10), []byte{1}),
		} {
			us, err := p.raw.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rawWrite(t, us, b)
			defer us.CancelWrite(0)
		}
		eventually(t, func() bool { return p.sess.unsorted.Load() == 2 })
		_ = st.Close() // the publisher finished the track

		// Far less than the header deadline: only FinishGrace can end it.
		finish, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var groups int
		for {
			g, err := tc.RecvGroup(finish)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("after %d groups: %v (want the track finished within FinishGrace of the FIN; %d streams still unsorted)", groups, err, p.sess.unsorted.Load())
			}
			groups++
			if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || len(frames) != 1 {
				t.Fatalf("group %d: %q, %v", g.Sequence(), frames, err)
			}
		}
		if groups != 1 {
			t.Fatalf("%d groups before the end, want 1", groups)
		}
		if n := p.sess.unsorted.Load(); n != 2 {
			t.Fatalf("%d streams unsorted, want the 2 stalled ones (the test proves nothing otherwise)", n)
		}
		p.wantUp(t)
	})
}

// Streams whose header stalls or trickles are abandoned with Timeout after
// Group streams the peer opens before we subscribe to anything wait unread
// in the transport: no goroutine each, the transport's stream state and
// their bytes within its stream credit and flow-control windows. Once our
// first subscription starts the accept loop, it refuses them (no
// subscription has their ID) and the session serves on.
func TestBoundsUnaskedGroupStreams(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, false)
		ctx := testCtx(t)
		if p.sess.uniAccepting.Load() {
			t.Fatal("the group-stream accept loop runs before any subscription")
		}
		base, g0 := testutil.HeapAlloc(), runtime.NumGoroutine()
		const unasked, size = 500, 1 << 10
		payload := rawCat(rawVarint(uint64(wire.UniGroup)), p.msg(t, &wire.Group{SubscribeID: 9, Sequence: 0}), rawFrame(strings.Repeat("x", size)))
		var streams []transport.SendStream
		for range unasked {
			us, err := p.raw.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rawWrite(t, us, payload)
			streams = append(streams, us)
		}
		defer func() {
			for _, us := range streams {
				us.CancelWrite(0)
			}
		}()
		// Both ends' stream state is in this process (4 KiB), the bytes on
		// both sides until acknowledged (2 KiB).
		wantHeapWithin(t, fmt.Sprintf("%d unasked group streams of %d bytes", unasked, len(payload)), base, unasked*(6<<10))
		wantGoroutinesWithin(t, "unasked group streams", g0, 0)
		// Our first subscription starts the loop (every subscribing test
		// relies on that); here it starts alone.
		p.sess.acceptGroups()
		for _, us := range streams[:3] {
			wantStopSending(t, ctx, us, broadcast.CodeCancel)
		}
		eventually(t, func() bool { return p.sess.unsorted.Load() == 0 })
		p.checkServing(t)
	})
}

// HeaderTimeout: bidi streams are reset, group streams stopped. While they
// wait they cost one goroutine each; afterwards nothing, and the session
// serves on.
func TestBoundsStalledHeaders(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}, Limits: Limits{HeaderTimeout: time.Second}}, false)
		p.sess.acceptGroups() // as our first subscription would
		ctx := testCtx(t)
		base, g0 := testutil.HeapAlloc(), runtime.NumGoroutine()
		sub := rawVarint(uint64(wire.StreamSubscribe))
		cases := [][]byte{
			sub,                                 // a type and nothing else
			rawCat(sub, []byte{20}),             // a length and no body
			rawCat(sub, []byte{20, 0x00, 0x01}), // cut inside the body
		}
		if p.v == wire.Lite04 {
			cases = append(cases, rawVarint(uint64(wire.StreamGoaway)))
		}
		// Many of each: every one waits at once.
		const each = 40
		var streams []transport.Stream
		for range each {
			for _, b := range cases {
				streams = append(streams, p.openStream(t, ctx, b, false))
			}
		}
		// Announce interests that never come hold a place under
		// MaxAnnounceInterests while they wait: fewer of those.
		annType := rawVarint(uint64(wire.StreamAnnounce))
		for range p.sess.lim.MaxAnnounceInterests / 2 {
			streams = append(streams, p.openStream(t, ctx, annType, false), p.openStream(t, ctx, rawCat(annType, rawVarint(1000)), false))
		}
		// Group streams cut after their type, and one whose header trickles
		// in a byte at a time.
		const stalledUni = 100
		for range stalledUni {
			us, err := p.raw.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rawWrite(t, us, rawVarint(uint64(wire.UniGroup)))
			defer us.CancelWrite(0)
		}
		trickle, err := p.raw.OpenUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rawWrite(t, trickle, rawCat(rawVarint(uint64(wire.UniGroup)), rawVarint(60000)))

		eventually(t, func() bool { return p.sess.unsorted.Load() == stalledUni+1 })
		// A waiting bidi stream holds a goroutine and a control buffer, a
		// waiting group stream a goroutine and a group reader (16 KiB);
		// the transport's state of each stream comes on top (4 KiB: both
		// ends are in this process).
		wantHeapWithin(t, fmt.Sprintf("%d bidi and %d uni streams waiting for their header", len(streams), stalledUni+1),
			base, int64(len(streams))*(5<<10)+(stalledUni+1)*(21<<10))
		wantGoroutinesWithin(t, "streams waiting for their header", g0, len(streams)+stalledUni+1)
		for _, st := range streams {
			wantReset(t, ctx, st, broadcast.CodeTimeout)
			reset(st, broadcast.CodeCancel)
		}
		wantStopSending(t, ctx, trickle, broadcast.CodeTimeout)
		eventually(t, func() bool { return p.sess.unsorted.Load() == 0 })
		goroutinesBackTo(t, g0)
		p.checkServing(t)
	})
}

// Served subscriptions are bounded by MaxSubscriptions; each costs two
// goroutines and a few KiB (its doc comment's budget) while it waits for
// groups, however long the peer spelled the broadcast path, and the rest
// are refused with BoundsExceeded.
func TestBoundsSubscriptions(t *testing.T) {
	const limit = 64
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: Limits{MaxSubscriptions: limit}}, false)
	ctx := testCtx(t)
	base, g0 := testutil.HeapAlloc(), runtime.NumGoroutine()
	// The broadcast path spelled as long as a message allows: it names
	// "cam" all the same.
	padded := strings.Repeat("/", p.sess.lim.MaxMessageSize-32) + "cam"
	var open []transport.Stream
	for range limit {
		_, st := p.subscribe(t, ctx, padded, "video")
		open = append(open, st)
	}
	eventually(t, func() bool { return p.sess.served.Load() == limit })
	wantHeapWithin(t, fmt.Sprintf("%d served subscriptions", limit), base, limit*10<<10)
	wantGoroutinesWithin(t, "served subscriptions", g0, 2*limit)
	for range 3 * limit {
		_, b := p.subscribeMsg(t, "/cam", "video")
		st := p.openStream(t, ctx, b, false)
		wantReset(t, ctx, st, broadcast.CodeBoundsExceeded)
		reset(st, broadcast.CodeCancel)
	}
	wantGoroutinesWithin(t, "served subscriptions after the refused ones", g0, 2*limit)
	for _, st := range open {
		reset(st, broadcast.CodeCancel)
	}
	eventually(t, func() bool { return p.sess.served.Load() == 0 })
	goroutinesBackTo(t, g0)
	p.checkServing(t)
}

// A SUBSCRIBE_UPDATE that stalls part way holds about what arrived of it,
// not its declared length (up to MaxMessageSize) per subscription; a flood
// of updates holds nothing.
func TestBoundsSubscribeUpdates(t *testing.T) {
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}}, false)
	ctx := testCtx(t)
	update := p.msg(t, &wire.SubscribeUpdate{Priority: 3})

	base := testutil.HeapAlloc()
	_, st := p.subscribe(t, ctx, "/cam", "video")
	flood := make([]byte, 0, 20000*len(update))
	for range 20000 {
		flood = append(flood, update...)
	}
	rawWrite(t, st, flood)
	flood = nil
	rawWrite(t, st, withTrailingByte(t, update)) // read only once the flood is
	wantReset(t, ctx, st, broadcast.CodeDecode)
	reset(st, broadcast.CodeCancel)
	eventually(t, func() bool { return p.sess.served.Load() == 0 })
	wantHeapWithin(t, "20 000 updates read", base, 0)

	const subs = 64
	base = testutil.HeapAlloc()
	var open []transport.Stream
	for range subs {
		_, st := p.subscribe(t, ctx, "/cam", "video")
		rawWrite(t, st, rawCat(rawVarint(60000), []byte{3})) // a 60 000-byte update, 1 byte of it
		open = append(open, st)
	}
	defer func() {
		for _, st := range open {
			reset(st, broadcast.CodeCancel)
		}
	}()
	// Wait until each subscription's reader is inside the stalled body.
	eventually(t, func() bool { return testutil.Goroutines("internal/wire.readBody", false) == subs })
	wantHeapWithin(t, fmt.Sprintf("%d subscriptions each inside a stalled 60 000-byte update", subs), base, subs*(10<<10+8<<10))
	p.checkServing(t)
}

// Announce interests are bounded by MaxAnnounceInterests: each holds a
// goroutine, its prefix and a watch of the origin; more are refused with
// BoundsExceeded, and a freed place can be used again.
func TestBoundsAnnounceInterests(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, false)
		ctx := testCtx(t)
		limit := p.sess.lim.MaxAnnounceInterests
		annType := rawVarint(uint64(wire.StreamAnnounce))
		base, g0 := testutil.HeapAlloc(), runtime.NumGoroutine()
		// The longest prefixes a message may carry, matching nothing.
		long := "/" + strings.Repeat("p", p.sess.lim.MaxMessageSize-16) + "/"
		var open []transport.Stream
		for range limit {
			open = append(open, p.openStream(t, ctx, rawCat(annType, p.msg(t, &wire.AnnouncePlease{Prefix: long})), false))
		}
		defer func() {
			for _, st := range open {
				reset(st, broadcast.CodeCancel)
			}
		}()
		eventually(t, func() bool { return p.sess.interests.Load() == int32(limit) })
		wantHeapWithin(t, fmt.Sprintf("%d announce interests with 64 KiB prefixes", limit), base, int64(limit)*(64<<10+8<<10))
		wantGoroutinesWithin(t, "announce interests", g0, limit)
		// Idle, they hold no goroutine on this transport: nothing reads the
		// peer's side, whose end is reported by a callback.
		goroutinesBackTo(t, g0)
		please := rawCat(annType, p.msg(t, &wire.AnnouncePlease{Prefix: "/"}))
		for range 2 * limit {
			st := p.openStream(t, ctx, please, false)
			wantReset(t, ctx, st, broadcast.CodeBoundsExceeded)
			reset(st, broadcast.CodeCancel)
		}
		reset(open[0], broadcast.CodeCancel) // frees a place
		eventually(t, func() bool { return p.sess.interests.Load() == int32(limit-1) })
		st := p.openStream(t, ctx, please, true)
		want := p.msg(t, &wire.Announce{Active: true, Suffix: "cam", Hops: []uint64{p.sess.hop}})
		if data, err := readStream(t, ctx, st); err != nil || string(data) != string(want) {
			t.Fatalf("announce stream in the freed place: % x, %v; want % x then FIN", data, err, want)
		}
		p.wantUp(t)
	})
}

// Probe streams are bounded by MaxProbes: the peer may hold that many open
// (one goroutine each); more are refused with BoundsExceeded.
func TestBoundsProbes(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, false)
		ctx := testCtx(t)
		limit := p.sess.lim.MaxProbes
		probe := rawVarint(uint64(wire.StreamProbe))
		g0 := runtime.NumGoroutine()
		var open []transport.Stream
		for range limit {
			open = append(open, p.openStream(t, ctx, probe, false))
		}
		defer func() {
			for _, st := range open {
				reset(st, broadcast.CodeCancel)
			}
		}()
		eventually(t, func() bool { return p.sess.probes.Load() == int32(limit) })
		wantGoroutinesWithin(t, "probe streams", g0, limit)
		for range 10 {
			st := p.openStream(t, ctx, probe, false)
			wantReset(t, ctx, st, broadcast.CodeBoundsExceeded)
			reset(st, broadcast.CodeCancel)
		}
		_ = open[0].Close() // the peer ends a probe: its place is free
		eventually(t, func() bool { return p.sess.probes.Load() == int32(limit-1) })
		open[0] = p.openStream(t, ctx, probe, false)
		eventually(t, func() bool { return p.sess.probes.Load() == int32(limit) })
		p.wantUp(t)
	})
}

// GOAWAY repeated many times: the first counts, the rest are answered and
// forgotten, and nothing stays behind.
func TestBoundsGoawayRepeats(t *testing.T) {
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}}, false)
	ctx := testCtx(t)
	g0, base := runtime.NumGoroutine(), testutil.HeapAlloc()
	goaway := rawVarint(uint64(wire.StreamGoaway))
	for i := range 500 {
		st := p.openStream(t, ctx, rawCat(goaway, p.msg(t, &wire.Goaway{URI: fmt.Sprintf("moq://elsewhere/%d", i)})), true)
		if _, err := readStream(t, ctx, st); err != nil {
			t.Fatalf("GOAWAY %d: %v, want a clean FIN", i, err)
		}
	}
	select {
	case <-p.sess.GoingAway():
	default:
		t.Fatal("GoingAway not closed")
	}
	if got := p.sess.GoawayURI(); got != "moq://elsewhere/0" {
		t.Fatalf("GoawayURI %q, want the first one's", got)
	}
	goroutinesBackTo(t, g0)
	wantHeapWithin(t, "500 GOAWAYs", base, 0)
	p.checkServing(t)
}
