package moq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/pattern"
)

func newRelay(t testing.TB, f Forwarding) *node { return newNode(t, WithForwarding(f)) }

// feed publishes name with one track, "video", whose groups are written by
// run: frames frames of size bytes each, from pattern.Payload.
type feed struct {
	b      *broadcast.Producer
	tp     *broadcast.TrackProducer
	frames int
	size   int

	mu      sync.Mutex
	written map[uint64]time.Time // when each group was started
	next    uint64
}

func newFeed(t testing.TB, n *node, name string, frames, size int) *feed {
	t.Helper()
	f := &feed{frames: frames, size: size, written: map[uint64]time.Time{}}
	f.b = broadcast.New(broadcast.Config{})
	f.tp, _ = f.b.CreateTrack(broadcast.Track{Name: "video"})
	if _, err := n.Publish(testCtx(t), name, f.b.Consume()); err != nil {
		t.Fatal(err)
	}
	return f
}

// group writes the next group.
func (f *feed) group() {
	f.mu.Lock()
	seq := f.next
	f.next++
	f.written[seq] = time.Now()
	f.mu.Unlock()
	frames := make([][]byte, f.frames)
	for i := range frames {
		frames[i] = pattern.Payload(seq*uint64(f.frames)+uint64(i), f.size)
	}
	_ = f.tp.WriteGroup(seq, frames...)
}

// run writes a group every pace until ctx ends.
func (f *feed) run(ctx context.Context, pace time.Duration) {
	t := time.NewTicker(pace)
	defer t.Stop()
	for {
		f.group()
		select {
		case <-t.C: // a frame rate, not a wait
		case <-ctx.Done():
			return
		}
	}
}

func (f *feed) sentAt(seq uint64) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written[seq]
}

// received is what a reader got: groups in order, with arrival times.
type received struct {
	seqs  []uint64
	at    []time.Time
	delay []time.Duration // from the publisher's write
}

// read reads groups from tc in arrival order (one stream each: they may
// overtake one another), checking every frame byte for byte and that no
// group comes twice, until it has n of them; unless gaps is true, until it
// has n in a row (later ones may have overtaken the last of them).
func (f *feed) read(t testing.TB, tc *broadcast.TrackConsumer, n int, gaps bool) received {
	t.Helper()
	ctx := testCtx(t)
	var r received
	have := map[uint64]bool{}
	complete := func() bool {
		if gaps {
			return len(r.seqs) >= n
		}
		lo := slices.Min(r.seqs)
		for q := lo; q < lo+uint64(n); q++ {
			if !have[q] {
				return false
			}
		}
		return true
	}
	for len(r.seqs) == 0 || !complete() {
		if len(r.seqs) > 3*n {
			t.Fatalf("no %d groups in a row among %d: %v", n, len(r.seqs), slices.Sorted(slices.Values(r.seqs)))
		}
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("after %d groups: %v", len(r.seqs), err)
		}
		seq := g.Sequence()
		if have[seq] {
			t.Fatalf("group %d twice", seq)
		}
		have[seq] = true
		for i := range f.frames {
			fr, err := g.ReadFrame(ctx)
			if err != nil {
				t.Fatalf("group %d frame %d: %v", seq, i, err)
			}
			if want := pattern.Payload(seq*uint64(f.frames)+uint64(i), f.size); !bytes.Equal(fr, want) {
				t.Fatalf("group %d frame %d differs", seq, i)
			}
		}
		if _, err := g.ReadFrame(ctx); err == nil {
			t.Fatalf("group %d has an extra frame", seq)
		}
		now := time.Now()
		r.seqs, r.at = append(r.seqs, seq), append(r.at, now)
		r.delay = append(r.delay, now.Sub(f.sentAt(seq)))
	}
	return r
}

func (r received) max() uint64 { return slices.Max(r.seqs) }

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// forwarded waits until n forwards name.
func forwarded(t testing.TB, n *node, name string) *broadcast.Consumer {
	t.Helper()
	var b *broadcast.Consumer
	eventually(t, "forwarding "+name, func() bool {
		b = n.Forwarded().Get(name)
		return b != nil
	})
	return b
}

// TestForwardChain sends a track through a chain of five libp2p nodes (the
// publisher, three relays, the subscriber): every frame arrives byte for
// byte, the hop list names each relay, and the added latency per hop is
// logged next to a direct subscription's.
func TestForwardChain(t *testing.T) {
	pub := newNode(t)
	relays := []*node{newRelay(t, Forwarding{}), newRelay(t, Forwarding{}), newRelay(t, Forwarding{})}
	sub, direct := newNode(t), newNode(t)
	relays[0].connect(t, pub)
	relays[1].connect(t, relays[0])
	relays[2].connect(t, relays[1])
	last := sub.connect(t, relays[2])
	direct.connect(t, pub)
	f := newFeed(t, pub, "chain", 4, 1000)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 5*time.Millisecond)

	b := forwarded(t, relays[2], "chain")
	want := []uint64{HopID(pub.h.ID()), HopID(relays[0].h.ID()), HopID(relays[1].h.ID())}
	if got := b.Hops(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hops at the last relay %v, want %v", got, want)
	}
	eventually(t, "announcement at the subscriber", func() bool { return last.s.Remote().Get("chain") != nil })
	if got := last.s.Remote().Get("chain").Hops(); len(got) != 4 || got[3] != HopID(relays[2].h.ID()) {
		t.Fatalf("hops at the subscriber %v", got)
	}
	tc, err := sub.Subscribe(testCtx(t), "chain", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	dc, err := direct.Subscribe(testCtx(t), "chain", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	var wg sync.WaitGroup
	var viaDirect received
	wg.Go(func() { viaDirect = f.read(t, dc, 200, false) })
	viaChain := f.read(t, tc, 200, false)
	wg.Wait()
	chain, dir := mean(viaChain.delay[20:]), mean(viaDirect.delay[20:])
	t.Logf("latency: direct %v, through 3 relays %v (%v per hop)", dir, chain, (chain-dir)/3)
}

// TestForwardOneUpstream: a relay serving ten local subscribers and three
// downstream nodes takes each group from the publisher once.
func TestForwardOneUpstream(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{})
	up := relay.connect(t, pub)
	f := newFeed(t, pub, "one", 1, 100)
	forwarded(t, relay, "one")
	var tcs []*broadcast.TrackConsumer
	for range 10 {
		tc, err := relay.Subscribe(testCtx(t), "one", "video")
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		tcs = append(tcs, tc)
	}
	for range 3 {
		d := newNode(t)
		d.connect(t, relay)
		tc, err := d.Subscribe(testCtx(t), "one", "video")
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		tcs = append(tcs, tc)
	}
	st, err := relay.ForwardStats(testCtx(t))
	if err != nil || st.Upstream != 1 {
		t.Fatalf("upstream subscriptions %d (%v), want 1", st.Upstream, err)
	}
	before := up.s.Stats().GroupsReceived
	for range 50 {
		f.group()
	}
	for _, tc := range tcs {
		f.read(t, tc, 50, false)
	}
	if got := up.s.Stats().GroupsReceived - before; got != 50 {
		t.Fatalf("the relay received %d groups from the publisher for 50 written", got)
	}
}

// TestForwardLateJoinerWithinLinger: after the last subscriber leaves, the
// upstream subscription stays for the linger; a subscriber arriving then
// starts at the latest group without the publisher being asked again.
func TestForwardLateJoinerWithinLinger(t *testing.T) {
	pub, relay := newNode(t), newRelay(t, Forwarding{Linger: time.Minute})
	relay.connect(t, pub)
	var asked sync.Map // track name → times the publisher made it
	count := func(name string) int { v, _ := asked.Load(name); n, _ := v.(int); return n }
	var mu sync.Mutex
	var tracks []*broadcast.TrackProducer
	b := broadcast.New(broadcast.Config{OnTrack: func(tp *broadcast.TrackProducer) {
		mu.Lock()
		defer mu.Unlock()
		asked.Store(tp.Info().Name, count(tp.Info().Name)+1)
		tracks = append(tracks, tp)
	}})
	if _, err := pub.Publish(testCtx(t), "late", b.Consume()); err != nil {
		t.Fatal(err)
	}
	forwarded(t, relay, "late")
	d := newNode(t)
	d.connect(t, relay)
	tc, err := d.Subscribe(testCtx(t), "late", "video")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the publisher's track", func() bool { mu.Lock(); defer mu.Unlock(); return len(tracks) == 1 })
	mu.Lock()
	tp := tracks[0]
	mu.Unlock()
	for i := range 5 {
		_ = tp.WriteGroup(uint64(i), []byte{byte(i)})
	}
	g, err := tc.NextGroup(testCtx(t))
	for err == nil && g.Sequence() < 4 {
		g, err = tc.NextGroup(testCtx(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	tc.Close()
	eventually(t, "the relay's track to end", func() bool {
		st, _ := relay.ForwardStats(testCtx(t))
		return st.Upstream == 0
	})
	tc, err = d.Subscribe(testCtx(t), "late", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	g, err = tc.NextGroup(testCtx(t))
	if err != nil || g.Sequence() != 4 {
		t.Fatalf("late joiner starts at %v (%v), want the latest group 4", g, err)
	}
	if n := count("video"); n != 1 {
		t.Fatalf("the publisher made the track %d times", n)
	}
}

// TestForwardFailover: a subscriber reaches a publisher through two relays;
// the relay in use goes away mid-stream and the subscriber's track carries
// on through the other, at the next group, with no group twice.
func TestForwardFailover(t *testing.T) {
	pub := newNode(t)
	r1, r2 := newRelay(t, Forwarding{}), newRelay(t, Forwarding{})
	sub := newRelay(t, Forwarding{})
	r1.connect(t, pub)
	r2.connect(t, pub)
	f := newFeed(t, pub, "fo", 2, 500)
	forwarded(t, r1, "fo")
	forwarded(t, r2, "fo")
	sub.connect(t, r1) // the first route: kept while it works
	forwarded(t, sub, "fo")
	sub.connect(t, r2)
	eventually(t, "two routes", func() bool { st, _ := sub.ForwardStats(testCtx(t)); return st.Routes == 2 })
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 10*time.Millisecond)
	tc, err := sub.Subscribe(testCtx(t), "fo", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	before := f.read(t, tc, 30, false)
	killed := time.Now()
	// Dead-peer detection is the transport's (QUIC idle timeout); closing
	// the relay's connections stands in for a detected death.
	_ = r1.Shutdown(context.Background())
	after := f.read(t, tc, 30, true)
	gap := after.at[0].Sub(before.at[len(before.at)-1])
	if slices.Min(after.seqs) <= before.max() {
		t.Fatalf("group %d again after %d", slices.Min(after.seqs), before.max())
	}
	t.Logf("failover: gap %v (%v after the relay closed), resumed at group %d after %d", gap, after.at[0].Sub(killed), slices.Min(after.seqs), before.max())
	if gap > 500*time.Millisecond {
		t.Fatalf("failover gap %v, want at most 500 ms", gap)
	}
	st, _ := sub.ForwardStats(testCtx(t))
	if st.Switches == 0 {
		t.Fatal("no route switch counted")
	}
}

var _ = errors.Is
