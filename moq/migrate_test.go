package moq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// circuitOnly advertises only circuit addresses: peers learn no direct
// address from identify.
func circuitOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if strings.Contains(a.String(), "/p2p-circuit") {
			out = append(out, a)
		}
	}
	return out
}

// On loopback, without NATs: a session that started on a relayed circuit
// (the only address known) moves its subscription to raw QUIC when the
// hosts get a direct connection, with no group lost, and the relayed
// session closes after the grace.
func TestRelayedSessionMovesToDirect(t *testing.T) {
	r := newTCPNode(t)
	relay, err := relayv2.New(r.h, relayv2.WithLimit(&relayv2.RelayLimit{Duration: 10 * time.Minute, Data: 64 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	quicNode := func(factory func([]ma.Multiaddr) []ma.Multiaddr) *node {
		q := p2pquic.New(p2pquic.Config{Logger: testLogger()})
		return start(t, HostConfig{QUIC: q, Relay: true, AddrsFactory: factory},
			[]Option{WithQUIC(q), WithRelayedGrace(2 * time.Second)})
	}
	a := quicNode(loopbackAddrs)
	b := quicNode(circuitOnly)
	rInfo := r.info()
	if err := b.h.Connect(testCtx(t), rInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(testCtx(t), b.h, rInfo); err != nil {
		t.Fatal(err)
	}
	cam := publish(t, b, "cam")
	live(t, cam)

	circuit := ma.StringCast(r.h.Addrs()[0].String() + "/p2p/" + r.h.ID().String() + "/p2p-circuit")
	s, err := a.Connect(testCtx(t), peer.AddrInfo{ID: b.h.ID(), Addrs: []ma.Multiaddr{circuit}})
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Path(); p.Kind != PathRelayed || p.Transport != "libp2p streams" {
		t.Fatalf("first session %s over %s, want relayed libp2p streams", p, p.Transport)
	}
	ctx := testCtx(t)
	tc, err := s.Subscribe(ctx, "cam", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	seen := map[uint64]bool{}
	low, high := uint64(1<<63), uint64(0)
	var before, after int
	for after < 200 {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("after %d groups: %v", len(seen), err)
		}
		seq := g.Sequence()
		if seen[seq] {
			t.Fatalf("group %d twice", seq)
		}
		seen[seq] = true
		low, high = min(low, seq), max(high, seq)
		if _, err := g.ReadFrame(ctx); err != nil {
			t.Fatalf("group %d: %v", seq, err)
		}
		if a.directSession(b.h.ID()) != nil {
			after++
			continue
		}
		if before++; before == 50 {
			// A direct connection appears (hole punching would make one):
			// the node moves the subscription onto raw QUIC over it.
			listen, err := b.h.Network().InterfaceListenAddresses()
			if err != nil {
				t.Fatal(err)
			}
			// (The host would settle for the relayed connection it has.)
			dctx := network.WithForceDirectDial(ctx, "a direct path, as hole punching makes")
			if err := a.h.Connect(dctx, peer.AddrInfo{ID: b.h.ID(), Addrs: loopbackAddrs(listen)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for seq := low; seq+20 < high; seq++ {
		if !seen[seq] {
			t.Fatalf("group %d lost (received %d..%d)", seq, low, high)
		}
	}
	d := a.directSession(b.h.ID())
	if p := d.Path(); p.Kind != PathDirect || p.Transport != "raw QUIC" {
		t.Fatalf("direct session %s over %s", p, p.Transport)
	}
	select { // the relayed session ends after the grace
	case <-s.Closed():
	case <-ctx.Done():
		t.Fatal("the relayed session is still open")
	}
	t.Logf("groups %d..%d, none lost: %d relayed, then %d on %s", low, high, before, after, d.Path())
}

// Peers that run many hole-punching attempts (one record per peer ID,
// which cost nothing to make, each with a long error text) grow the node's
// records only up to maxPunchRecords: under 512 KiB of heap, the budget
// docs/limits.md states (measured: about 300 B a record).
func TestPunchRecordsBounded(t *testing.T) {
	var w pathWatch
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for i := range 10 * maxPunchRecords {
		id := peer.ID(fmt.Sprintf("%038d", i)) // the length of a real peer ID
		w.record(HolePunchEvent{Peer: id, Error: strings.Repeat("e", 128)})
	}
	grew := int64(heap()) - int64(before)
	if len(w.peers) > maxPunchRecords || len(w.order) > maxPunchRecords {
		t.Fatalf("%d records (%d in order), want at most %d", len(w.peers), len(w.order), maxPunchRecords)
	}
	if grew > 512<<10 {
		t.Fatalf("the records hold %d KiB, budget 512 KiB", grew>>10)
	}
	t.Logf("%d records: %d KiB", len(w.peers), grew>>10)
	runtime.KeepAlive(&w)
}

// A source that brings ever new group sequences grows a moving
// subscription's claims only up to maxClaims, and every group reaches the
// application's track.
func TestMovingClaimsBounded(t *testing.T) {
	n := newNode(t)
	src := broadcast.NewTrack(broadcast.Track{Name: "t"}, broadcast.Limits{Backpressure: true})
	ms := &movingSub{
		m: n.Moq, out: broadcast.NewTrack(broadcast.Track{Name: "t"}, broadcast.Limits{Backpressure: true}),
		claimed: map[uint64]int{}, partial: map[uint64]*broadcast.GroupProducer{}, live: map[int]*broadcast.TrackConsumer{},
		opts: SubscribeOptions{Backpressure: true},
	}
	ms.ctx, ms.cancel = context.WithCancel(context.Background())
	defer ms.cancel()
	app := ms.out.Consume()
	defer app.Close()
	ms.start(src.Consume(), true)
	const groups = 3 * maxClaims
	// The application reads with a context of its own: the moving
	// subscription's ends with the track, while groups may still wait in
	// the application's track (a reader woken by both would see the
	// cancellation and stop short).
	ctx := testutil.Context(t, time.Minute)
	received := make(chan int, 1)
	go func() {
		got := 0
		for {
			if _, err := app.RecvGroup(ctx); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("after %d groups: %v", got, err)
				}
				received <- got
				return
			}
			got++
		}
	}()
	for range groups {
		if err := src.WaitRoom(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if err := src.WriteFrame([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	_ = src.Finish()
	if got := <-received; got != groups {
		t.Fatalf("%d groups reached the application, want %d", got, groups)
	}
	ms.wg.Wait()
	if len(ms.claimed) > maxClaims || len(ms.order) > maxClaims {
		t.Fatalf("%d claims (%d in order), want at most %d", len(ms.claimed), len(ms.order), maxClaims)
	}
}

// A node knows whether its host hole-punches (and so whether a dial that
// reached a peer only through a relay should wait for a punch) from
// NewHost's mark, not from who subscribed to HolePunchEvent.
func TestHolePunchingMark(t *testing.T) {
	for _, on := range []bool{false, true} {
		n := start(t, HostConfig{AddrsFactory: loopbackAddrs, NAT: NATConfig{HolePunching: on}}, nil)
		if got := n.holePunches(); got != on {
			t.Errorf("HolePunching %v: the node says %v", on, got)
		}
	}
}

// A relayed session's reason tells what hole punching did: nothing seen,
// an attempt under way, or attempts that failed (each counted once though
// the node reads the host's events in two places).
func TestPunchStory(t *testing.T) {
	m := &Moq{punching: true}
	p := peer.ID("peer")
	want := func(sub string) {
		t.Helper()
		if got := m.punchStory(p); !strings.Contains(got, sub) {
			t.Fatalf("reason %q, want it to say %q", got, sub)
		}
	}
	want("no hole punching attempt seen yet")
	seq := uint64(0)
	ev := func(e HolePunchEvent) {
		seq++
		e.Peer, e.seq = p, seq
		m.paths.record(e)
		m.paths.record(e) // read twice: counted once
	}
	ev(HolePunchEvent{Started: true})
	want("hole punching under way (attempt 1)")
	ev(HolePunchEvent{Error: "timeout"})
	ev(HolePunchEvent{Started: true})
	ev(HolePunchEvent{Error: "no reply"})
	want("hole punching attempted 2 times and failed: no reply")
	m.paths.record(HolePunchEvent{Peer: "other", seq: 99, Error: "the hole-punching exchange failed: refused"})
	if got := m.punchStory("other"); !strings.Contains(got, "failed before any attempt") {
		t.Fatalf("reason %q", got)
	}
	m.punching = false
	want("does not hole-punch")
}

// A fallback source starts at the oldest group not yet copied whole:
// below the first that arrived too (older ones may have been in flight),
// and a half-done one is brought again; with nothing received, a
// back-pressured subscription asks from group 0, a live one as it did.
func TestResumeOptions(t *testing.T) {
	ms := &movingSub{claimed: map[uint64]int{}, whole: map[uint64]bool{}, partial: map[uint64]*broadcast.GroupProducer{}}
	if o := ms.resumeOptions(); o.Start != nil {
		t.Fatalf("live, nothing received: start %d, want none", *o.Start)
	}
	ms.opts.Backpressure = true
	if o := ms.resumeOptions(); o.Start == nil || *o.Start != 0 {
		t.Fatalf("back-pressured, nothing received: start %v, want 0", o.Start)
	}
	ms.started, ms.firstSeq = true, 2
	for _, seq := range []uint64{0, 1, 2, 4} {
		ms.claimed[seq], ms.whole[seq] = 0, true
	}
	ms.claimed[3] = 0 // claimed, never copied to its end
	if o := ms.resumeOptions(); *o.Start != 3 {
		t.Fatalf("start %d, want 3", *o.Start)
	}
	if _, ok := ms.claimed[3]; ok {
		t.Fatal("group 3 is still claimed by the failed source: the fallback would skip it")
	}
	ms.firstSeq = 30 // the first to arrive overtook older ones in flight
	if o := ms.resumeOptions(); *o.Start != 3 {
		t.Fatalf("start %d, want 3", *o.Start)
	}
	start := uint64(7)
	ms.opts.Start = &start
	if o := ms.resumeOptions(); *o.Start != 7 {
		t.Fatalf("the application's start: %d, want 7", *o.Start)
	}
}
