package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/loadtest"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// sendSetup05 sends the raw side's lite-05 SETUP stream.
func (p *rawPeer) sendSetup05(t *testing.T, ctx context.Context, m wire.Setup) {
	t.Helper()
	st, err := p.raw.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rawWrite(t, st, rawCat(rawVarint(uint64(wire.UniSetup)), p.msg(t, &m)))
	_ = st.Close()
}

// answerTrack05 accepts the session's TRACK stream and answers TRACK_INFO.
func (p *rawPeer) answerTrack05(t *testing.T, ctx context.Context, info wire.TrackInfo) wire.Track {
	t.Helper()
	st, err := p.raw.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(st)
	if typ, err := wire.ReadStreamType(br, p.v); err != nil || typ != wire.StreamTrack {
		t.Fatalf("first stream %v %v, want TRACK", typ, err)
	}
	var tr wire.Track
	if err := wire.ReadMessage(br, p.v, &tr, 1<<10); err != nil {
		t.Fatalf("TRACK %+v %v", tr, err)
	}
	rawWrite(t, st, p.msg(t, &info))
	_ = st.Close()
	return tr
}

// readSetupStream reads a lite-05 SETUP stream: type, SETUP, FIN.
func readSetupStream(t *testing.T, ctx context.Context, rs transport.ReceiveStream) wire.Setup {
	t.Helper()
	data, err := readStream(t, ctx, rs)
	if err != nil {
		t.Fatalf("SETUP stream: %v", err)
	}
	r := bufio.NewReader(bytes.NewReader(data))
	if typ, err := wire.ReadUniStreamType(r, wire.Lite05); err != nil || typ != wire.UniSetup {
		t.Fatalf("first uni stream: type %v %v (% x)", typ, err, data)
	}
	var m wire.Setup
	if err := wire.ReadMessage(r, wire.Lite05, &m, 1<<10); err != nil {
		t.Fatalf("SETUP: %v (% x)", err, data)
	}
	if r.Buffered() != 0 {
		t.Fatalf("bytes after SETUP: % x", data)
	}
	return m
}

// The server sends its SETUP at once, without waiting for the client's:
// moq-dev's server waits for the client's first.
func TestLite05SetupSentAtOnce(t *testing.T) {
	for _, sessDials := range []bool{false, true} {
		t.Run(fmt.Sprint("session dials ", sessDials), func(t *testing.T) {
			ctx := testCtx(t)
			p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, sessDials)
			p.sess.acceptGroups() // the peer's SETUP is read with its group streams, which a subscription starts
			rs, err := p.raw.AcceptUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m := readSetupStream(t, ctx, rs); m != (wire.Setup{Origin: p.sess.hop, EagerStart: true}) {
				t.Fatalf("SETUP %+v, want only our hop %d and eager START", m, p.sess.hop)
			}
			if _, ok := p.sess.PeerSetup(); ok {
				t.Fatal("peer SETUP before it was sent")
			}
			// @moq/net's SETUP: probe report and its origin.
			st, err := p.raw.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := wire.Setup{Probe: wire.ProbeReport, Origin: 99}
			rawWrite(t, st, rawCat(rawVarint(uint64(wire.UniSetup)), p.msg(t, &want)))
			_ = st.Close()
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				if got, ok := p.sess.PeerSetup(); ok {
					if got != want {
						t.Fatalf("peer SETUP %+v, want %+v", got, want)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("peer SETUP never recorded")
				}
			}
			p.wantUp(t)
			// A second SETUP stream violates the protocol.
			st, err = p.raw.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rawWrite(t, st, rawCat(rawVarint(uint64(wire.UniSetup)), p.msg(t, &wire.Setup{})))
			_ = st.Close()
			p.wantConnClosed(t, ctx, broadcast.CodeProtocol)
		})
	}
}

func TestLite05BadSetup(t *testing.T) {
	for name, tc := range map[string]struct {
		b    []byte
		fin  bool
		code broadcast.Code
	}{
		"duplicate param":  {rawCat([]byte{1}, []byte{7, 2, 5, 1, 1, 5, 1, 2}), true, broadcast.CodeDecode},
		"varint trailing":  {rawCat([]byte{1}, []byte{5, 1, 1, 2, 1, 0}), true, broadcast.CodeDecode},
		"data after SETUP": {[]byte{1, 1, 0, 0}, true, broadcast.CodeProtocol},
		"FIN inside SETUP": {[]byte{1, 3, 1}, true, broadcast.CodeDecode},
		"65 params":        {[]byte{1, 2, 0x40, 65}, true, broadcast.CodeDecode},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, false)
			p.sess.acceptGroups()
			st, err := p.raw.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rawWrite(t, st, tc.b)
			if tc.fin {
				_ = st.Close()
			}
			p.wantConnClosed(t, ctx, tc.code)
		})
	}
}

// acceptGroup05 returns the next group stream from the session, skipping
// its SETUP stream.
func (p *rawPeer) acceptGroup05(t *testing.T, ctx context.Context) parsedGroup {
	t.Helper()
	for {
		rs, err := p.raw.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data, err := readStream(t, ctx, rs)
		if err != nil {
			t.Fatalf("group stream: %v", err)
		}
		if len(data) > 0 && data[0] == byte(wire.UniSetup) {
			continue
		}
		g, err := p.parseGroup(data)
		if err != nil {
			t.Fatalf("group stream: %v (% x)", err, data)
		}
		return g
	}
}

// readResponse reads one subscribe response from r.
func (p *rawPeer) readResponse(t *testing.T, ctx context.Context, st transport.Stream, r *bufio.Reader) wire.Message {
	t.Helper()
	type res struct {
		m   wire.Message
		err error
	}
	got := awaitOrFail(t, ctx, "reading a subscribe response", func() { st.CancelRead(0) }, func() res {
		m, err := wire.ReadSubscribeResponse(r, p.v, 1<<10)
		return res{m, err}
	})
	if got.err != nil {
		t.Fatalf("subscribe response: %v", got.err)
	}
	return got.m
}

// The publisher side of lite-05: TRACK answered with TRACK_INFO, no
// SUBSCRIBE_OK, START at once, DROP for skipped groups, END
// (exclusive) when the track finishes, frames with timestamp deltas.
func TestLite05ServeSubscribe(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, false)

	st := p.openStream(t, ctx, rawCat(rawVarint(uint64(wire.StreamTrack)), p.msg(t, &wire.Track{Broadcast: "/cam", Track: "video"})), true)
	data, err := readStream(t, ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var info wire.TrackInfo
	if n, err := wire.DecodeMessage(data, p.v, &info); err != nil || n != len(data) ||
		info.Timescale != broadcast.DefaultTimescale || info.MaxLatency != broadcast.DefaultCacheMaxAge {
		t.Fatalf("TRACK_INFO %+v %v (% x)", info, err, data)
	}
	for _, tr := range []struct {
		b, t string
		code broadcast.Code
	}{{"/nope", "video", broadcast.CodeUnroutable}, {"/cam", "nope", broadcast.CodeNotFound}} {
		st := p.openStream(t, ctx, rawCat(rawVarint(uint64(wire.StreamTrack)), p.msg(t, &wire.Track{Broadcast: tr.b, Track: tr.t})), true)
		wantReset(t, ctx, st, tr.code)
	}

	id, b := p.subscribeMsg(t, "/cam", "video")
	sst := p.openStream(t, ctx, b, false)
	r := bufio.NewReader(sst)
	// START at once, the track having no group yet: 0, any group. A group
	// written once it arrived is served.
	if m := p.readResponse(t, ctx, sst, r); !equalMsg(m, &wire.SubscribeStart{Group: 0}) {
		t.Fatalf("first response %#v, want START 0", m)
	}
	g0, _ := p.track.CreateGroup(3) // the first group
	_ = g0.WriteFrame([]byte("a"))
	_ = g0.WriteFrame([]byte("b"))
	_ = g0.Finish()
	if g := p.acceptGroup05(t, ctx); g.hdr != (wire.Group{SubscribeID: id, Sequence: 3}) || !slices.Equal(g.frames, []string{"a", "b"}) {
		t.Fatalf("group %+v", g)
	}
	g1, _ := p.track.CreateGroup(6) // 4 never comes; 5 comes after 6
	_ = g1.WriteFrame([]byte("c"))
	_ = g1.Finish()
	if g := p.acceptGroup05(t, ctx); g.hdr.Sequence != 6 || !slices.Equal(g.frames, []string{"c"}) {
		t.Fatalf("group %+v", g)
	}
	if err := p.track.WriteGroup(5, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if g := p.acceptGroup05(t, ctx); g.hdr.Sequence != 5 || !slices.Equal(g.frames, []string{"late"}) {
		t.Fatalf("group %+v", g)
	}
	// Gaps are known only once the track finished: DROPs for them (the
	// sequences below the first group served, START having said 0, and
	// 4), then END.
	_ = p.track.Finish()
	for _, want := range []wire.Message{&wire.SubscribeDrop{Start: 0, End: 2}, &wire.SubscribeDrop{Start: 4, End: 4}, &wire.SubscribeEnd{Group: 7}} {
		if m := p.readResponse(t, ctx, sst, r); !equalMsg(m, want) {
			t.Fatalf("response %#v, want %#v", m, want)
		}
	}
	if _, err := wire.ReadSubscribeResponse(r, p.v, 1<<10); !errors.Is(err, io.EOF) {
		t.Fatalf("after END: %v, want FIN", err)
	}
}

func equalMsg(a, b wire.Message) bool { return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) }

// The subscriber side of lite-05: TRACK first, then SUBSCRIBE; frames with
// timestamp deltas are read; a group stream ending between a frame's
// timestamp and its size is WrongSize.
func TestLite05Subscribe(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, true)
	p.sendSetup05(t, ctx, wire.Setup{Origin: 7}) // as moq-net's: no eager START
	res := p.subscribeAsync(ctx, "cam", "video")
	if tr := p.answerTrack05(t, ctx, wire.TrackInfo{Timescale: 1000000}); tr != (wire.Track{Broadcast: "/cam", Track: "video"}) {
		t.Fatalf("TRACK %+v", tr)
	}
	// Settled by TRACK_INFO: such a publisher sends START with its first
	// group only, which may never come.
	sub := waitSub(t, ctx, res)
	if sub.err != nil {
		t.Fatal(sub.err)
	}
	sst, s := p.acceptSubscribe(t, ctx)
	rawWrite(t, sst, p.response(t, &wire.SubscribeStart{Group: 0}))
	gs := p.openGroup(t, ctx, s.ID, 0)
	ts := func(prev, ts uint64) []byte { b, _ := wire.AppendTimestamp(nil, prev, ts); return b }
	rawWrite(t, gs, rawCat(ts(0, 1000), rawFrame("x"), ts(1000, 900), rawFrame("y")))
	_ = gs.Close()
	g, err := sub.tc.RecvGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The publisher's microseconds become the track's milliseconds.
	if frames, stamps, err := groupFramesAt(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"x", "y"}) ||
		!slices.Equal(stamps, []uint64{1, 0}) {
		t.Fatalf("frames %q at %v, %v; want x, y at 1, 0 ms", frames, stamps, err)
	}
	gs = p.openGroup(t, ctx, s.ID, 1)
	rawWrite(t, gs, rawCat(ts(0, 5), rawFrame("z"), ts(5, 6)))
	_ = gs.Close()
	g, err = sub.tc.RecvGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if frames, err := groupFrames(ctx, g); !errors.Is(err, broadcast.ErrWrongSize) || !slices.Equal(frames, []string{"z"}) {
		t.Fatalf("frames %q %v, want z then WrongSize", frames, err)
	}
	rawWrite(t, sst, p.response(t, &wire.SubscribeEnd{Group: 2}))
	_ = sst.Close()
	if _, err := sub.tc.RecvGroup(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after END and FIN: %v", err)
	}
	p.wantUp(t)
}

// Announcements on lite-05: ANNOUNCE_OK first with our hop and the size
// of the active set, our hop left out of each hop list; as subscriber, the
// publisher's hop appended, and a repeated active replaces the first.
func TestLite05Announce(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{}, true)
	st := p.openStream(t, ctx, rawCat(rawVarint(uint64(wire.StreamAnnounce)), p.msg(t, &wire.AnnouncePlease{})), false)
	br := bufio.NewReader(st)
	var ok wire.AnnounceOK
	if err := wire.ReadMessage(br, p.v, &ok, 1<<10); err != nil || ok != (wire.AnnounceOK{Hop: p.sess.hop, Active: 1}) {
		t.Fatalf("ANNOUNCE_OK %+v %v, want hop %d, 1 active", ok, err, p.sess.hop)
	}
	var a wire.Announce
	if err := wire.ReadMessage(br, p.v, &a, 1<<10); err != nil || !a.Active || a.Suffix != "cam" || len(a.Hops) != 0 {
		t.Fatalf("ANNOUNCE %+v %v, want cam with no hops", a, err)
	}

	ist, please := p.acceptInterest(t, ctx)
	if please.ExcludeHop != p.sess.hop {
		t.Fatalf("exclude hop %d, want ours %d", please.ExcludeHop, p.sess.hop)
	}
	rawWrite(t, ist, rawCat(p.msg(t, &wire.AnnounceOK{Hop: 77, Active: 1}), p.announce(t, true, "x", 5)))
	waitRemote(t, p.sess, "x")
	if b := p.sess.Remote().Get("x"); b == nil || !slices.Equal(b.Hops(), []uint64{5, 77}) {
		t.Fatalf("remote x hops %v, want [5 77]", b.Hops())
	}
	rawWrite(t, ist, p.announce(t, true, "x", 6)) // a new route: replaces, not a violation
	rawWrite(t, ist, p.announce(t, false, "x"))
	for path, b := range p.sess.Remote().Announced(ctx, "") {
		if path == "x" && b == nil {
			break
		}
	}
	p.wantUp(t)
	rawWrite(t, ist, p.announce(t, true, "loop", p.sess.hop)) // looped: ignored
	rawWrite(t, ist, p.announce(t, true, "loop", 8))          // no longer looped: announced
	waitRemote(t, p.sess, "loop")
	p.wantUp(t)
}

// A lite-05 restart (a repeated active) whose route leads to the same
// publisher keeps the broadcast and its subscribers; one whose route
// leads to another publisher ends it and announces a new one with the new
// hops.
func TestLite05AnnounceRestartNewPublisher(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{}, true)
	ist, _ := p.acceptInterest(t, ctx)
	rawWrite(t, ist, rawCat(p.msg(t, &wire.AnnounceOK{Hop: 77, Active: 1}), p.announce(t, true, "x", 5, 8)))
	waitRemote(t, p.sess, "x")
	first := p.sess.Remote().Get("x")

	// The same publisher (5) by another route: unchanged.
	rawWrite(t, ist, rawCat(p.announce(t, true, "x", 5, 9), p.announce(t, true, "marker", 5)))
	waitRemote(t, p.sess, "marker")
	if b := p.sess.Remote().Get("x"); !first.Same(b) || first.Err() != nil {
		t.Fatalf("a new route to the same publisher replaced the broadcast (err %v)", first.Err())
	}

	// Another publisher (6): the broadcast ends, a new one has its hops.
	rawWrite(t, ist, p.announce(t, true, "x", 6))
	select {
	case <-first.Done():
	case <-ctx.Done():
		t.Fatal("the broadcast of the old publisher did not end")
	}
	eventually(t, func() bool {
		b := p.sess.Remote().Get("x")
		return b != nil && !first.Same(b) && slices.Equal(b.Hops(), []uint64{6, 77})
	})
	p.sess.mu.Lock()
	held := p.sess.announced
	p.sess.mu.Unlock()
	if held != 2 {
		t.Fatalf("%d announcements held, want 2 (x, marker)", held)
	}
	p.wantUp(t)
}

// On lite-05 the subscriber appends the responder's hop to each hop list.
// An announcement whose list is already at 32 has no room for it: a long
// route or a loop that a relay may forward, not a violation. That
// announcement alone is dropped and counted; it is remembered like a
// looped one, so its end, a restart with room and a restart full again
// all match it, and the session and the peer's other paths go on.
func TestLite05AnnounceHopsFull(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{}, true)
	ist, _ := p.acceptInterest(t, ctx)
	full := make([]uint64, wire.MaxHops)
	for i := range full {
		full[i] = uint64(100 + i)
	}
	rawWrite(t, ist, rawCat(p.msg(t, &wire.AnnounceOK{Hop: 77, Active: 2}),
		p.announce(t, true, "far", full...), p.announce(t, true, "near", 5)))
	waitRemote(t, p.sess, "near")
	wantRemote(t, p.sess, "near")
	wantIgnored(t, p.sess, 1)
	wantRemoteComplete(t, p.sess, false)
	p.wantUp(t)

	// Its end matches it; full again it is dropped again; a restart with
	// room announces it, the responder's hop making 32.
	rawWrite(t, ist, rawCat(p.announce(t, false, "far"), p.announce(t, true, "far", full...),
		p.announce(t, true, "far", full[1:]...)))
	waitRemote(t, p.sess, "far")
	if b := p.sess.Remote().Get("far"); b == nil || !slices.Equal(b.Hops(), append(slices.Clone(full[1:]), 77)) {
		t.Fatalf("far hops %v, want 101..131 then 77", b.Hops())
	}
	wantIgnored(t, p.sess, 2)

	// A restart whose chain is full again ends it; its end then matches the
	// remembered path.
	rawWrite(t, ist, rawCat(p.announce(t, true, "far", full...), p.announce(t, false, "far"),
		p.announce(t, true, "marker", 5)))
	waitRemote(t, p.sess, "marker")
	wantRemote(t, p.sess, "marker", "near")
	wantIgnored(t, p.sess, 3)
	p.sess.mu.Lock()
	held := p.sess.announced
	p.sess.mu.Unlock()
	if held != 2 {
		t.Fatalf("%d announcements held, want 2 (near, marker)", held)
	}
	p.wantUp(t)
}

// As publisher we never send a hop list the peer cannot hold: with our hop
// (lite-04 in the list, lite-05 appended by the peer from ANNOUNCE_OK) a
// broadcast that came through 31 hops goes out at 32, one that came
// through 32 is not announced.
func TestAnnounceHopsAtMost32(t *testing.T) {
	forEach(t, []string{"moq-lite-04", wire.ALPNLite05}, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{}, true)
		hops := make([]uint64, broadcast.MaxHops)
		for i := range hops {
			hops[i] = uint64(100 + i)
		}
		for path, h := range map[string][]uint64{"edge": hops[1:], "deep": hops} {
			if _, err := p.sess.publish.Publish(path, broadcast.New(broadcast.Config{Hops: h}).Consume()); err != nil {
				t.Fatal(err)
			}
		}
		st := p.openStream(t, testCtx(t), rawCat(rawVarint(uint64(wire.StreamAnnounce)), p.msg(t, &wire.AnnouncePlease{})), false)
		br := bufio.NewReader(st)
		if p.v.HasAnnounceOK() {
			var ok wire.AnnounceOK
			if err := wire.ReadMessage(br, p.v, &ok, 1<<10); err != nil || ok.Active != 2 {
				t.Fatalf("ANNOUNCE_OK %+v %v, want 2 active (cam, edge)", ok, err)
			}
		}
		got := map[string]int{} // path: hop count
		read := func() string {
			var a wire.Announce
			if err := wire.ReadMessage(br, p.v, &a, 1<<10); err != nil {
				t.Fatal(err)
			}
			got[a.Suffix] = len(a.Hops)
			return a.Suffix
		}
		read()
		read()
		// A later broadcast comes after anything deep could have sent.
		if _, err := p.sess.publish.Publish("marker", broadcast.New(broadcast.Config{}).Consume()); err != nil {
			t.Fatal(err)
		}
		for read() != "marker" {
		}
		want := map[string]int{"cam": 1, "edge": broadcast.MaxHops, "marker": 1}
		if p.v.HasAnnounceOK() { // our hop went in ANNOUNCE_OK: the peer appends it
			want = map[string]int{"cam": 0, "edge": broadcast.MaxHops - 1, "marker": 0}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("announced %v (path: hops), want %v", got, want)
		}
		p.wantUp(t)
	})
}

// A peer that opens TRACK streams and never reads the answers holds
// nothing: each is answered and closed at once (no goroutine stays), and
// no track is subscribed for it.
func TestBoundsLite05TrackFlood(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, false)
	msg := rawCat(rawVarint(uint64(wire.StreamTrack)), p.msg(t, &wire.Track{Broadcast: "/cam", Track: "video"}))
	runtime.GC()
	baseHeap, baseG := testutil.HeapAlloc(), runtime.NumGoroutine()
	const n = 500
	streams := make([]transport.Stream, 0, n)
	for range n {
		streams = append(streams, p.openStream(t, ctx, msg, true))
	}
	// Every stream was answered: wait for the last answer, unread by the others.
	if data, err := readStream(t, ctx, streams[n-1]); err != nil || len(data) == 0 {
		t.Fatalf("last TRACK: %v (% x)", err, data)
	}
	goroutinesBackTo(t, baseG)
	wantGoroutinesWithin(t, "500 TRACK streams, answers unread", baseG, 0)
	wantHeapWithin(t, "500 TRACK streams, answers unread", baseHeap, 4<<20) // the transport's per-stream state
	select {
	case <-p.track.Used():
		t.Fatal("TRACK subscribed to the track")
	default:
	}
	for _, st := range streams {
		reset(st, broadcast.CodeCancel)
	}
	p.wantUp(t)
}

// A SETUP over MaxMessageSize closes the session before its body is read.
func TestBoundsLite05SetupTooLarge(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}, Limits: Limits{MaxMessageSize: 1 << 10}}, false)
	p.sess.acceptGroups()
	st, err := p.raw.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rawWrite(t, st, rawCat([]byte{byte(wire.UniSetup)}, rawVarint(1<<20), []byte{1}))
	p.wantConnClosed(t, ctx, broadcast.CodeBoundsExceeded)
}

// groupFramesAt is groupFrames with the frames' timestamps.
func groupFramesAt(ctx context.Context, g *broadcast.GroupConsumer) ([]string, []uint64, error) {
	var out []string
	var stamps []uint64
	for {
		f, ts, err := g.ReadFrameAt(ctx)
		if err != nil {
			return out, stamps, err
		}
		out = append(out, string(f))
		stamps = append(stamps, ts)
	}
}

// Frame timestamps cross a lite-05 session as they were written (small
// groups written whole and frames streamed alike), converted from the
// publisher track's timescale to the subscriber track's (both the default
// here; TestLite05Subscribe converts); lite-03/04 carry none, so they
// arrive as 0.
func TestFrameTimestampsRoundTrip(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		_, _ = p.origin.Publish("cam", b.Consume())
		tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		want := [][]uint64{{3000, 6000, 4500}, {9000}} // a backward step, and a small group written whole
		big := make([]byte, 40<<10)                    // too big to go whole: streamed
		for gi, stamps := range want {
			g, _ := tp.AppendGroup()
			for i, ts := range stamps {
				payload := []byte(fmt.Sprint(gi, i))
				if gi == 0 && i == 1 {
					payload = big
				}
				_ = g.WriteFrameAt(ts, payload)
			}
			_ = g.Finish()
		}
		for range want {
			g, err := tc.RecvGroup(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			_, stamps, err := groupFramesAt(testCtx(t), g)
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			exp := want[g.Sequence()]
			if alpn != wire.ALPNLite05 {
				exp = make([]uint64, len(exp))
			}
			if !slices.Equal(stamps, exp) {
				t.Fatalf("group %d: timestamps %v, want %v", g.Sequence(), stamps, exp)
			}
		}
	})
}

// FETCH (lite-05): one group of a track, its frames and timestamps, from
// the publisher's cache; an unknown group, track or broadcast is NotFound;
// versions without FETCH say so.
func TestFetch(t *testing.T) {
	forEach(t, []string{wire.ALPNLite05, wire.ALPNLite04}, func(t *testing.T, alpn string) {
		pubTr, subTr := &countingTracer{}, &countingTracer{}
		p := newPair(t, alpn, Config{Metrics: pubTr}, Config{Metrics: subTr})
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		_, _ = p.origin.Publish("cam", b.Consume())
		for gi := range 3 {
			g, _ := tp.AppendGroup()
			for fi := range 4 {
				_ = g.WriteFrameAt(uint64(gi*100+fi), []byte(fmt.Sprint(gi, ".", fi)))
			}
			_ = g.Finish()
		}
		ctx := testCtx(t)
		g, err := p.sub.Fetch(ctx, "cam", "video", 1)
		if alpn != wire.ALPNLite05 {
			if !errors.Is(err, ErrNoFetch) {
				t.Fatalf("Fetch over %s: %v, want ErrNoFetch", alpn, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		frames, stamps, err := groupFramesAt(ctx, g)
		if !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"1.0", "1.1", "1.2", "1.3"}) ||
			!slices.Equal(stamps, []uint64{100, 101, 102, 103}) || g.Sequence() != 1 {
			t.Fatalf("group %d: %q at %v, %v", g.Sequence(), frames, stamps, err)
		}
		for _, c := range []struct {
			path, track string
			group       uint64
		}{{"cam", "nope", 0}, {"nope", "video", 0}} {
			if _, err := p.sub.Fetch(ctx, c.path, c.track, c.group); !errors.Is(err, broadcast.ErrNotFound) {
				t.Errorf("Fetch %s/%s/%d: %v, want NotFound", c.path, c.track, c.group, err)
			}
		}
		// A group older than the latest and not cached: NotFound at once.
		tp2, _ := b.CreateTrack(broadcast.Track{Name: "sparse"})
		_ = tp2.WriteGroup(5, []byte("x"))
		if _, err := p.sub.Fetch(ctx, "cam", "sparse", 2); !errors.Is(err, broadcast.ErrNotFound) {
			t.Errorf("Fetch of a never-cached older group: %v, want NotFound", err)
		}
		if err := p.sub.Err(); err != nil { // the session is still up
			t.Fatal(err)
		}
		// The one group served counts as media both ways.
		if ps, ss := p.pub.Stats(), p.sub.Stats(); ps.GroupsSent != 1 || ps.FramesSent != 4 || ps.BytesSent != 12 ||
			ss.GroupsReceived != 1 || ss.FramesReceived != 4 || ss.BytesReceived != 12 {
			t.Errorf("stats after one fetched group of 4 frames, 12 bytes: publisher %+v, subscriber %+v", ps, ss)
		}
		// And as media for the metrics, but as no subscription.
		for side, tr := range map[string]*countingTracer{"publisher": pubTr, "subscriber": subTr} {
			if tr.frames.Load() != 4 || tr.groups.Load() != 1 || tr.subs.Load() != 0 {
				t.Errorf("%s's tracer: %d frames, %d groups, %d subscriptions; want 4, 1, 0", side, tr.frames.Load(), tr.groups.Load(), tr.subs.Load())
			}
		}
	})
}

// A FETCH of a group still to come is answered when it arrives; the
// publisher waits for it at most its HeaderTimeout, then resets the stream
// with Timeout, not with a protocol violation.
func TestFetchFutureGroup(t *testing.T) {
	p := newPair(t, wire.ALPNLite05, Config{Limits: Limits{HeaderTimeout: 300 * time.Millisecond}}, Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = p.origin.Publish("cam", b.Consume())
	_ = tp.WriteGroup(0, []byte("0"))
	ctx := testCtx(t)
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = tp.WriteGroup(1, []byte("1"))
	}()
	g, err := p.sub.Fetch(ctx, "cam", "video", 1)
	if err != nil {
		t.Fatalf("Fetch of the next group: %v", err)
	}
	if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"1"}) {
		t.Fatalf("group 1: %q, %v", frames, err)
	}
	_, err = p.sub.Fetch(ctx, "cam", "video", 9)
	if c := broadcast.CodeOf(err); c != broadcast.CodeTimeout {
		t.Fatalf("Fetch of a group that never comes: %v (code %v), want Timeout", err, c)
	}
}

// BenchmarkGroupChurnVersions moves one-frame groups (64 bytes) through a
// session pair per version: what lite-05's timestamps and subscribe
// responses cost next to lite-04 (allocs/op is per group, both ends).
func BenchmarkGroupChurnVersions(b *testing.B) {
	for _, alpn := range []string{wire.ALPNLite04, wire.ALPNLite05} {
		b.Run(alpn, func(b *testing.B) {
			p := newPair(b, alpn, Config{}, Config{})
			bc := broadcast.New(broadcast.Config{})
			tp, _ := bc.CreateTrack(broadcast.Track{Name: "t"})
			_, _ = p.origin.Publish("bench", bc.Consume())
			ctx := context.Background()
			tc, err := p.sub.Subscribe(ctx, "bench", "t", SubscribeOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer tc.Close()
			b.ReportAllocs()
			b.ResetTimer()
			if err := loadtest.Pump(ctx, tp, tc, make([]byte, 64), b.N, 1, window); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// Datagrams (lite-05): a track that asks for them has its finished
// single-frame groups sent as datagrams; larger ones still go on streams.
//
// Datagrams are best effort and never resent, and even loopback drops one
// when a loaded machine leaves a socket buffer full. So the groups go one at
// a time, the next once the last arrived or, after lostAfter, is given up
// for lost (it may still come late: groups are matched by sequence), until
// want of them arrived; each that arrives must be intact, and the counters
// of both ends must account for every group sent and received.
func TestLite05Datagrams(t *testing.T) {
	const (
		want      = 20
		maxSent   = 200 // more losses than this on loopback is a bug, not load
		lostAfter = time.Second
	)
	p := newPair(t, wire.ALPNLite05, Config{}, Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "audio", Datagrams: true})
	_, _ = p.origin.Publish("cam", b.Consume())
	ctx := testutil.Context(t, 2*time.Minute)
	tc, err := p.sub.Subscribe(ctx, "cam", "audio", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	frame := func(seq uint64) string { return fmt.Sprint("frame ", seq) }
	var sent uint64
	datagrams := map[uint64]bool{} // the datagram groups that arrived
	streams := map[uint64]bool{}   // the two stream groups, once arrived
	got := func(g *broadcast.GroupConsumer) {
		t.Helper()
		seq := g.Sequence()
		if datagrams[seq] || streams[seq] {
			t.Fatalf("group %d arrived twice", seq)
		}
		frames, stamps, err := groupFramesAt(ctx, g)
		switch {
		case !errors.Is(err, io.EOF):
			t.Fatalf("group %d: %q, %v", seq, frames, err)
		case seq == sent: // two frames
			if !slices.Equal(frames, []string{"a", "b"}) {
				t.Fatalf("group %d: %q", seq, frames)
			}
			streams[seq] = true
		case seq == sent+1: // one frame over 1200 bytes
			if len(frames) != 1 || len(frames[0]) != 1300 {
				t.Fatalf("group %d: %d frames", seq, len(frames))
			}
			streams[seq] = true
		case !slices.Equal(frames, []string{frame(seq)}) || !slices.Equal(stamps, []uint64{seq * 20}):
			t.Fatalf("group %d: %q at %v", seq, frames, stamps)
		default:
			datagrams[seq] = true
		}
	}
	for len(datagrams) < want {
		if sent == maxSent {
			t.Fatalf("%d of %d datagrams arrived", len(datagrams), sent)
		}
		seq := sent
		sent++
		if err := tp.WriteGroupAt(seq, []uint64{seq * 20}, []byte(frame(seq))); err != nil {
			t.Fatal(err)
		}
		for !datagrams[seq] {
			wait, cancel := context.WithTimeout(ctx, lostAfter)
			g, err := tc.RecvGroup(wait)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				t.Logf("group %d: no datagram within %v", seq, lostAfter)
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got(g)
		}
	}
	// Two frames, and one frame over 1200 bytes: streams.
	_ = tp.WriteGroup(sent, []byte("a"), []byte("b"))
	_ = tp.WriteGroup(sent+1, make([]byte, 1300))
	for len(streams) < 2 {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got(g)
	}
	// The counters move just after the groups reach the track, and a
	// datagram given up for lost may still come: take in what arrived until
	// both ends' counters account for every group.
	done, cancel := context.WithCancel(ctx)
	cancel()
	wait, cancelWait := context.WithTimeout(ctx, 20*time.Second)
	defer cancelWait()
	testutil.Until(t, wait, "the counters to account for every group", func() bool {
		for {
			g, err := tc.RecvGroup(done) // only what has arrived
			if err != nil {
				break
			}
			got(g)
		}
		ps, ss := p.pub.Stats(), p.sub.Stats()
		n := uint64(len(datagrams))
		return ps.DatagramsSent == sent && ps.GroupsSent == sent+2 && ss.DatagramsReceived == n && ss.GroupsReceived == n+2
	})
	if n := len(datagrams); n < want {
		t.Fatalf("%d datagrams arrived, want %d", n, want)
	}
	t.Logf("%d of %d datagrams arrived", len(datagrams), sent)
}

// A datagram and a stream for the same group: the first to arrive wins, the
// other is refused. Datagrams for no subscription, or malformed, are
// dropped without ending the session.
func TestLite05DatagramDedup(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, true)
	dc, ok := p.raw.(transport.DatagramConn)
	if !ok || !dc.DatagramsSupported() {
		t.Fatal("raw QUIC carries no datagrams")
	}
	p.sendSetup05(t, ctx, wire.Setup{})
	res := p.subscribeAsync(ctx, "cam", "video")
	p.answerTrack05(t, ctx, wire.TrackInfo{Timescale: 1000})
	sub := waitSub(t, ctx, res)
	if sub.err != nil {
		t.Fatal(sub.err)
	}
	_, s := p.acceptSubscribe(t, ctx)
	send := func(d wire.Datagram) {
		b, err := wire.AppendDatagram(nil, wire.Lite05, &d)
		if err != nil {
			t.Fatal(err)
		}
		if err := dc.SendDatagram(b); err != nil {
			t.Fatal(err)
		}
	}
	send(wire.Datagram{SubscribeID: s.ID, Sequence: 3, Timestamp: 7, Payload: []byte("dg")})
	g, err := sub.tc.RecvGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if frames, stamps, err := groupFramesAt(ctx, g); !errors.Is(err, io.EOF) || g.Sequence() != 3 ||
		!slices.Equal(frames, []string{"dg"}) || !slices.Equal(stamps, []uint64{7}) {
		t.Fatalf("group %d: %q at %v, %v", g.Sequence(), frames, stamps, err)
	}
	gs := p.openGroup(t, ctx, s.ID, 3) // the same group by stream: refused
	rawWrite(t, gs, rawCat([]byte{0}, rawFrame("stream")))
	wantStopSending(t, ctx, gs, broadcast.CodeDuplicate)
	send(wire.Datagram{SubscribeID: s.ID, Sequence: 3, Payload: []byte("again")}) // refused by the track
	send(wire.Datagram{SubscribeID: 99, Sequence: 4, Payload: []byte("nobody")})
	if err := dc.SendDatagram([]byte{0x40}); err != nil { // a truncated varint
		t.Fatal(err)
	}
	send(wire.Datagram{SubscribeID: s.ID, Sequence: 5, Payload: []byte("still")})
	if g, err := sub.tc.RecvGroup(ctx); err != nil || g.Sequence() != 5 {
		t.Fatalf("next group: %v %v, want 5", g, err)
	}
	// One reader takes datagrams in order: the three before group 5 were
	// counted when it came (none of them is lost on loopback).
	if n := p.sess.Stats().DatagramsDropped; n != 3 {
		t.Fatalf("%d datagrams dropped, want 3", n)
	}
	p.wantUp(t)
}

// A group that came by stream first: its datagram is a duplicate, dropped
// (counted), and the session goes on taking datagrams of other groups.
func TestLite05DatagramAfterStream(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, true)
	dc, ok := p.raw.(transport.DatagramConn)
	if !ok || !dc.DatagramsSupported() {
		t.Fatal("raw QUIC carries no datagrams")
	}
	p.sendSetup05(t, ctx, wire.Setup{})
	res := p.subscribeAsync(ctx, "cam", "video")
	p.answerTrack05(t, ctx, wire.TrackInfo{Timescale: 1000})
	sub := waitSub(t, ctx, res)
	if sub.err != nil {
		t.Fatal(sub.err)
	}
	defer sub.tc.Close()
	_, s := p.acceptSubscribe(t, ctx)
	send := func(d wire.Datagram) {
		b, err := wire.AppendDatagram(nil, wire.Lite05, &d)
		if err != nil {
			t.Fatal(err)
		}
		if err := dc.SendDatagram(b); err != nil {
			t.Fatal(err)
		}
	}
	gs := p.openGroup(t, ctx, s.ID, 3)
	rawWrite(t, gs, rawCat(rawVarint(14), rawFrame("stream"))) // timestamp 7 (zigzag 14)
	_ = gs.Close()
	g, err := sub.tc.RecvGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if frames, stamps, err := groupFramesAt(ctx, g); !errors.Is(err, io.EOF) || g.Sequence() != 3 ||
		!slices.Equal(frames, []string{"stream"}) || !slices.Equal(stamps, []uint64{7}) {
		t.Fatalf("group %d: %q at %v, %v", g.Sequence(), frames, stamps, err)
	}
	send(wire.Datagram{SubscribeID: s.ID, Sequence: 3, Timestamp: 7, Payload: []byte("dg")})
	testutil.Until(t, ctx, "the duplicate datagram dropped", func() bool { return p.sess.Stats().DatagramsDropped == 1 })
	send(wire.Datagram{SubscribeID: s.ID, Sequence: 4, Timestamp: 8, Payload: []byte("next")})
	g, err = sub.tc.RecvGroup(ctx)
	if err != nil || g.Sequence() != 4 {
		t.Fatalf("next group: %v %v, want 4 (group 3 once)", g, err)
	}
	if frames, stamps, err := groupFramesAt(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"next"}) || !slices.Equal(stamps, []uint64{8}) {
		t.Fatalf("group 4: %q at %v, %v", frames, stamps, err)
	}
	if st := p.sess.Stats(); st.DatagramsReceived != 1 || st.DatagramsDropped != 1 || st.GroupsReceived != 2 {
		t.Fatalf("datagrams received %d, dropped %d, groups %d; want 1, 1, 2", st.DatagramsReceived, st.DatagramsDropped, st.GroupsReceived)
	}
	p.wantUp(t)
}

// Against a publisher whose SETUP promises an eager START (a moqp2p node),
// a lite-05 Subscribe returns only once the first response arrived, so
// the publisher holds the subscription: START, END (a finished track) or
// DROP settle it, a reset fails it with the publisher's code.
func TestLite05SubscribeAwaitsStart(t *testing.T) {
	for name, tc := range map[string]struct {
		answer func(p *rawPeer, st transport.Stream)
		err    error
	}{
		"START": {answer: func(p *rawPeer, st transport.Stream) {
			rawWrite(t, st, p.response(t, &wire.SubscribeStart{Group: 4}))
		}},
		"END then FIN": {answer: func(p *rawPeer, st transport.Stream) {
			rawWrite(t, st, p.response(t, &wire.SubscribeEnd{}))
			_ = st.Close()
		}},
		"DROP": {answer: func(p *rawPeer, st transport.Stream) {
			rawWrite(t, st, p.response(t, &wire.SubscribeDrop{Start: 0, End: 3}))
		}},
		"reset NotFound": {answer: func(p *rawPeer, st transport.Stream) {
			st.CancelWrite(uint32(broadcast.CodeNotFound))
		}, err: broadcast.ErrNotFound},
		// A current publisher's refusal of a broadcast it has no route to.
		"reset Unroutable": {answer: func(p *rawPeer, st transport.Stream) {
			st.CancelWrite(uint32(broadcast.CodeUnroutable))
		}, err: broadcast.ErrNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, true)
			p.sendSetup05(t, ctx, wire.Setup{EagerStart: true})
			res := p.subscribeAsync(ctx, "cam", "video")
			p.answerTrack05(t, ctx, wire.TrackInfo{Timescale: 1000})
			st, _ := p.acceptSubscribe(t, ctx)
			// Nothing but the publisher's response settles the subscription
			// now, and it has not been sent.
			select {
			case r := <-res:
				t.Fatalf("Subscribe returned before any response: %v", r.err)
			default:
			}
			tc.answer(p, st)
			r := waitSub(t, ctx, res)
			if tc.err != nil {
				if !errors.Is(r.err, tc.err) {
					t.Fatalf("Subscribe: %v, want %v", r.err, tc.err)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("Subscribe: %v", r.err)
			}
			p.wantUp(t)
		})
	}
}

// A lite-05 peer that never sends SETUP (so promises nothing) does not
// hold Subscribe up longer than HeaderTimeout: it returns once TRACK_INFO
// answered and the SETUP wait is over.
func TestLite05SubscribeNoSetup(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}, Limits: Limits{HeaderTimeout: 200 * time.Millisecond}}, true)
	res := p.subscribeAsync(ctx, "cam", "video")
	p.answerTrack05(t, ctx, wire.TrackInfo{Timescale: 1000})
	if r := waitSub(t, ctx, res); r.err != nil {
		t.Fatalf("Subscribe: %v", r.err)
	}
	p.acceptSubscribe(t, ctx) // SUBSCRIBE follows
	p.wantUp(t)
}

// START names the first group served: the latest when the track has one,
// the requested start when SUBSCRIBE asks for one.
func TestLite05StartNamesFirstGroup(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}}, false)
	for _, seq := range []uint64{2, 5} {
		if err := p.track.WriteGroup(seq, []byte(fmt.Sprint("g", seq))); err != nil {
			t.Fatal(err)
		}
	}
	id, b := p.subscribeMsg(t, "/cam", "video")
	st := p.openStream(t, ctx, b, false)
	r := bufio.NewReader(st)
	if m := p.readResponse(t, ctx, st, r); !equalMsg(m, &wire.SubscribeStart{Group: 5}) {
		t.Fatalf("response %#v, want START 5", m)
	}
	if g := p.acceptGroup05(t, ctx); g.hdr != (wire.Group{SubscribeID: id, Sequence: 5}) || !slices.Equal(g.frames, []string{"g5"}) {
		t.Fatalf("group %+v, want 5", g)
	}
	id2 := p.nextID
	p.nextID++
	st2 := p.openStream(t, ctx, rawCat(rawVarint(uint64(wire.StreamSubscribe)),
		p.msg(t, &wire.Subscribe{ID: id2, Broadcast: "/cam", Track: "video", Start: wire.GroupAt(8)})), false)
	if m := p.readResponse(t, ctx, st2, bufio.NewReader(st2)); !equalMsg(m, &wire.SubscribeStart{Group: 8}) {
		t.Fatalf("response %#v, want START 8", m)
	}
	p.wantUp(t)
}

// otherPublisher: the first hop names the publisher; a route that cannot
// tell (no hops, or 0 first) counts as another.
func TestOtherPublisher(t *testing.T) {
	for _, c := range []struct {
		old, hops []uint64
		want      bool
	}{
		{[]uint64{5, 77}, []uint64{5, 9, 77}, false},
		{[]uint64{5, 77}, []uint64{6, 77}, true},
		{nil, []uint64{5}, true},
		{[]uint64{5}, nil, true},
		{[]uint64{0, 77}, []uint64{0, 77}, true},
	} {
		if got := otherPublisher(c.old, c.hops); got != c.want {
			t.Errorf("otherPublisher(%v, %v) = %v, want %v", c.old, c.hops, got, c.want)
		}
	}
}
