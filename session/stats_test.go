package session

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// subStats returns the one subscription s lists, served or not.
func oneSub(t *testing.T, s *Session, served bool) SubscriptionStats {
	t.Helper()
	var found []SubscriptionStats
	for _, st := range s.Subscriptions() {
		if st.Served == served {
			found = append(found, st)
		}
	}
	if len(found) != 1 {
		t.Fatalf("subscriptions (served %v): %+v, want one", served, found)
	}
	return found[0]
}

// A known load: every payload byte, frame and group is counted on both
// sides, per subscription and per session, and the link's byte counters
// agree across the link within 1 %.
func TestStatsKnownLoad(t *testing.T) {
	const groups, frames, size = 40, 25, 1000
	p := newPair(t, "moq-lite-04", Config{}, Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = p.origin.Publish("cam", b.Consume())
	tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	payload := make([]byte, size)
	for range groups {
		g, _ := tp.AppendGroup()
		for range frames {
			_ = g.WriteFrame(payload)
		}
		_ = g.Finish()
		rg, err := tc.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := readGroup(t, rg); len(got) != frames {
			t.Fatalf("group %d: %d frames", rg.Sequence(), len(got))
		}
	}
	const wantBytes = groups * frames * size
	recv := oneSub(t, p.sub, false)
	if recv.Groups != groups || recv.Frames != groups*frames || recv.Bytes != wantBytes ||
		recv.Skipped != 0 || len(recv.Resets) != 0 || !recv.HasLatest || recv.Latest != groups-1 ||
		recv.Broadcast != "cam" || recv.Track != "video" {
		t.Errorf("subscriber's subscription: %+v", recv)
	}
	eventually(t, func() bool { return oneSub(t, p.pub, true).Groups == groups })
	sent := oneSub(t, p.pub, true)
	if sent.Frames != groups*frames || sent.Bytes != wantBytes || sent.Skipped != 0 || len(sent.Resets) != 0 ||
		sent.Latest != groups-1 || sent.Behind <= 0 || sent.Behind > 5*time.Second {
		t.Errorf("publisher's subscription: %+v", sent)
	}
	if st := p.sub.Stats(); st.BytesReceived != wantBytes || st.FramesReceived != groups*frames {
		t.Errorf("subscriber session: %+v", st)
	}
	// The link: what the publisher put on the wire towards the subscriber
	// is what the subscriber took off it (loopback loses nothing), and at
	// least the payload.
	pubLink := p.pub.conn.(transport.StatsConn).Stats()
	subLink := p.sub.conn.(transport.StatsConn).Stats()
	if pubLink.Transport != "quic" || subLink.PacketsReceived == 0 || pubLink.PacketsSent == 0 {
		t.Errorf("link stats: %+v", pubLink)
	}
	if subLink.BytesReceived < wantBytes {
		t.Errorf("subscriber received %d bytes on the wire, below the %d of payload", subLink.BytesReceived, wantBytes)
	}
	if d := diff(pubLink.BytesSent, subLink.BytesReceived); d > pubLink.BytesSent/100 {
		t.Errorf("publisher sent %d bytes, subscriber received %d: %d apart, over 1 %%", pubLink.BytesSent, subLink.BytesReceived, d)
	}
}

func diff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// Gaps in the sequence numbers count as skipped, and a group the publisher
// aborts counts as reset with its code, on both sides.
func TestStatsSkippedAndReset(t *testing.T) {
	p := newPair(t, "moq-lite-04", Config{}, Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = p.origin.Publish("cam", b.Consume())
	tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for _, seq := range []uint64{0, 1, 4, 5} { // 2 and 3 never made
		g, _ := tp.CreateGroup(seq)
		_ = g.WriteFrame([]byte("x"))
		_ = g.Finish()
		if _, err := tc.RecvGroup(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Group 6 goes out with a frame, then is aborted mid-stream.
	g, _ := tp.CreateGroup(6)
	_ = g.WriteFrame([]byte("first"))
	rg, err := tc.RecvGroup(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rg.ReadFrame(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	g.Abort(&broadcast.Error{Code: broadcast.CodeDropped})
	if _, err := rg.ReadFrame(testCtx(t)); broadcast.CodeOf(err) != broadcast.CodeDropped {
		t.Fatalf("aborted group: %v", err)
	}
	recv := oneSub(t, p.sub, false)
	if recv.Groups != 4 || recv.Skipped != 2 || recv.Resets[broadcast.CodeDropped] != 1 || recv.Latest != 6 || recv.Frames != 5 {
		t.Errorf("subscriber's subscription: %+v", recv)
	}
	eventually(t, func() bool { return oneSub(t, p.pub, true).Resets[broadcast.CodeDropped] == 1 })
	if sent := oneSub(t, p.pub, true); sent.Groups != 4 || sent.Skipped != 2 || sent.Latest != 6 {
		t.Errorf("publisher's subscription: %+v", sent)
	}
	tc.Close()
	eventually(t, func() bool { return len(p.sub.Subscriptions()) == 0 && len(p.pub.Subscriptions()) == 0 })
}

// impairedPair connects sessions over raw QUIC on loopback whose ends
// impair what they send as pubLink (the publisher, the server) and subLink
// say.
func impairedPair(t *testing.T, pubLink, subLink impair.Config) (pub, sub *Session) {
	t.Helper()
	pub, sub, _ = impairedPairWith(t, rawquic.Config(), pubLink, subLink)
	return pub, sub
}

// impairedPairWith is impairedPair over QUIC configured by qc; it also
// returns the publisher's link, whose impairment can be changed (Set).
func impairedPairWith(t *testing.T, qc *quic.Config, pubLink, subLink impair.Config) (pub, sub *Session, link *impair.Conn) {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	spc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cpc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	link = impair.New(spc, pubLink)
	ln := rawquic.NewEndpointConn(link, qc)
	if err := ln.Listen(&tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{"moq-lite-04"}}); err != nil {
		t.Fatal(err)
	}
	dialer := rawquic.NewEndpointConn(impair.New(cpc, subLink), qc)
	t.Cleanup(func() { _ = dialer.Close(); _ = ln.Close() })
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, _ := ln.Accept(testCtx(t))
		accepted <- c
	}()
	tc := cert.PinnedConfig(cert.Fingerprint(crt))
	tc.NextProtos = []string{"moq-lite-04"}
	cc, err := dialer.Dial(testCtx(t), ln.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	if pub, err = New(sc, Config{Publish: broadcast.NewOrigin(0), Logger: testLogger()}); err != nil {
		t.Fatal(err)
	}
	if sub, err = New(cc, Config{Client: true, Logger: testLogger()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close(broadcast.CodeCancel, "test over")
		_ = pub.Close(broadcast.CodeCancel, "test over")
	})
	return pub, sub, link
}

// 50 ms added to the path shows in the RTT both ends measure: the minimum
// within 20 %, the smoothed RTT at least that and at most twice the delay
// (a loaded machine adds scheduling delays to the samples, which the
// minimum of many round trips filters out and the average does not); the
// congestion window is reported too. The delay is added in user space
// (internal/impair's delaying PacketConn on one side), not by netem: the
// kernels the tests run on may lack sch_netem.
func TestStatsRTTReflectsDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	pub, sub := impairedPair(t, impair.Config{}, impair.Config{Delay: delay})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "t"})
	_, _ = pub.publish.Publish("b", b.Consume())
	ctx, cancel := context.WithTimeout(testCtx(t), 10*time.Second)
	defer cancel()
	tc, err := sub.Subscribe(ctx, "b", "t", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for range 40 { // round trips to sample
		g, _ := tp.AppendGroup()
		_ = g.WriteFrame(make([]byte, 3000))
		_ = g.Finish()
		if rg, err := tc.RecvGroup(ctx); err != nil {
			t.Fatal(err)
		} else {
			readGroup(t, rg)
		}
	}
	for name, s := range map[string]*Session{"publisher": pub, "subscriber": sub} {
		st := s.conn.(transport.StatsConn).Stats()
		t.Logf("%s: RTT %v, min %v, latest %v, var %v, cwnd %d", name, st.RTT, st.MinRTT, st.LatestRTT, st.RTTVar, st.CongestionWindow)
		lo, hi := delay*8/10, delay*12/10
		if st.MinRTT < lo || st.MinRTT > hi || st.RTT < lo || st.RTT > 2*delay {
			t.Errorf("%s: RTT %v, min %v with %v added: want the minimum within 20 %%, the smoothed one in [%v, %v]", name, st.RTT, st.MinRTT, delay, lo, 2*delay)
		}
		if st.CongestionWindow == 0 {
			t.Errorf("%s: congestion window %d, want it reported", name, st.CongestionWindow)
		}
	}
}

// Packets the link drops show as the loss rate over the window they fell
// in.
func TestStatsLossRate(t *testing.T) {
	pub, sub := impairedPair(t, impair.Config{DropEvery: 20}, impair.Config{})
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "t"})
	_, _ = pub.publish.Publish("b", b.Consume())
	tc, err := sub.Subscribe(testCtx(t), "b", "t", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	link := pub.conn.(transport.StatsConn)
	before := link.Stats()
	for range 50 {
		g, _ := tp.AppendGroup()
		_ = g.WriteFrame(make([]byte, 20000))
		_ = g.Finish()
		rg, err := tc.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		readGroup(t, rg)
	}
	after := link.Stats()
	rate := transport.LossRate(before, after)
	t.Logf("%d packets sent, %d declared lost: %.3f", after.PacketsSent-before.PacketsSent, after.PacketsLost-before.PacketsLost, rate)
	if rate < 0.03 || rate > 0.08 {
		t.Errorf("loss rate %.3f with every 20th packet dropped, want about 0.05", rate)
	}
	if transport.LossRate(after, after) != 0 {
		t.Error("loss over an empty window")
	}
}

// countingTracer is a SessionTracer that only counts, as a metrics
// implementation's must: atomically and without allocating.
type countingTracer struct{ frames, groups, resets, subs atomic.Int64 }

func (c *countingTracer) Frames(_ Direction, frames, _ uint64)     { c.frames.Add(int64(frames)) }
func (c *countingTracer) Group(Direction)                          { c.groups.Add(1) }
func (c *countingTracer) GroupReset(Direction, broadcast.Code)     { c.resets.Add(1) }
func (c *countingTracer) Subscription(_ Direction, delta int)      { c.subs.Add(int64(delta)) }
func (c *countingTracer) Closed()                                  {}
func (c *countingTracer) SessionStarted(SessionInfo) SessionTracer { return c }

// The session's side of the media path's counting allocates nothing.
func TestSubStatsNoAlloc(t *testing.T) {
	tr := &countingTracer{}
	o := observer{}
	o.tr = tr
	st := o.track(true, 1, "b", "t")
	defer o.untrack(st)
	seq := uint64(0)
	if n := testing.AllocsPerRun(1000, func() {
		st.groupStarted(seq, time.Time{})
		st.media(3, 3000)
		st.groupDone()
		st.reset(broadcast.CodeOld)
		seq++
	}); n > 0 {
		t.Errorf("%.1f allocations per group", n)
	}
	if got := st.snapshot(); int64(got.Groups) != tr.groups.Load() || int64(got.Frames) != tr.frames.Load() || got.Resets[broadcast.CodeOld] != uint64(tr.resets.Load()) {
		t.Errorf("counters %+v, tracer %d groups %d frames %d resets", got, tr.groups.Load(), tr.frames.Load(), tr.resets.Load())
	}
}

// Idle is closed at once with no subscription; it stays open while one
// is left, ours (on the subscriber) or the peer's we serve (on the
// publisher), and closes when the last one ends.
func TestIdle(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		for _, s := range []*Session{p.pub, p.sub} {
			select {
			case <-s.Idle():
			default:
				t.Fatal("Idle of a session without subscriptions must be closed at once")
			}
		}
		b := broadcast.New(broadcast.Config{})
		_, _ = b.CreateTrack(broadcast.Track{Name: "a"})
		_, _ = b.CreateTrack(broadcast.Track{Name: "b"})
		_, _ = p.origin.Publish("cam", b.Consume())
		tcA, err := p.sub.Subscribe(testCtx(t), "cam", "a", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer tcA.Close()
		tcB, err := p.sub.Subscribe(testCtx(t), "cam", "b", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer tcB.Close()
		eventually(t, func() bool { return len(p.pub.Subscriptions()) == 2 })
		subIdle, pubIdle := p.sub.Idle(), p.pub.Idle()

		tcA.Close()
		eventually(t, func() bool { return len(p.sub.Subscriptions()) == 1 && len(p.pub.Subscriptions()) == 1 })
		select {
		case <-subIdle:
			t.Fatal("the subscriber's Idle closed with a subscription left")
		case <-pubIdle:
			t.Fatal("the publisher's Idle closed with a subscription left")
		default:
		}

		tcB.Close()
		deadline := time.Now().Add(time.Second)
		for side, idle := range map[string]<-chan struct{}{"subscriber": subIdle, "publisher": pubIdle} {
			select {
			case <-idle:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("the %s's Idle still open 1 s after the last subscription ended: %+v", side, p.sub.Subscriptions())
			}
		}
		if n := len(p.sub.Subscriptions()) + len(p.pub.Subscriptions()); n != 0 {
			t.Fatalf("Idle closed with %d subscriptions listed", n)
		}
	})
}

// The observer's Idle channel: closed by the untrack that empties the set,
// not by one before; a subscription after it needs a new channel.
func TestObserverIdle(t *testing.T) {
	var o observer
	isClosed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	if !isClosed(o.idle()) {
		t.Fatal("no subscription: Idle must be closed")
	}
	a, b := o.track(false, 0, "p", "a"), o.track(true, 0, "p", "b")
	idle := o.idle()
	if o.idle() != idle {
		t.Fatal("waiters must share one channel")
	}
	o.untrack(a)
	o.untrack(a) // twice: no effect
	if isClosed(idle) {
		t.Fatal("closed with a subscription left")
	}
	o.untrack(b)
	if !isClosed(idle) || !isClosed(o.idle()) {
		t.Fatal("not closed once the last subscription ended")
	}
	c := o.track(false, 1, "p", "c")
	if again := o.idle(); isClosed(again) {
		t.Fatal("a new subscription must get a new, open channel")
	} else {
		o.untrack(c)
		if !isClosed(again) {
			t.Fatal("not closed once the new subscription ended")
		}
	}
}
