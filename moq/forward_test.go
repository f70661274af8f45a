package moq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/internal/testutil"
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

// mesh builds n forwarding nodes joined by the given links (i dials j).
func mesh(t *testing.T, n int, links [][2]int) []*node {
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = newRelay(t, Forwarding{})
	}
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Go(func() { nodes[l[0]].connect(t, nodes[l[1]]) })
	}
	wg.Wait()
	return nodes
}

// distances are the hop counts from node 0 over links.
func distances(n int, links [][2]int) []int {
	d := make([]int, n)
	for i := range d {
		d[i] = -1
	}
	d[0] = 0
	for changed := true; changed; {
		changed = false
		for _, l := range links {
			for _, e := range [][2]int{l, {l[1], l[0]}} {
				if d[e[0]] >= 0 && (d[e[1]] < 0 || d[e[0]]+1 < d[e[1]]) {
					d[e[1]] = d[e[0]] + 1
					changed = true
				}
			}
		}
	}
	return d
}

// converged waits until every node but the publisher (0) forwards name
// over a shortest route (node i's relay broadcast carries d[i] hops).
func converged(t *testing.T, nodes []*node, d []int, name string) {
	t.Helper()
	for i, n := range nodes[1:] {
		eventually(t, fmt.Sprintf("node %d forwarding %s over %d hops", i+1, name, d[i+1]), func() bool {
			b := n.Forwarded().Get(name)
			return b != nil && len(b.Hops()) == d[i+1]
		})
	}
}

func offers(t *testing.T, nodes []*node) (sum uint64, paths, routes int) {
	for _, n := range nodes {
		st, err := n.ForwardStats(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		sum += st.Offers
		paths += st.Paths
		routes += st.Routes
	}
	return sum, paths, routes
}

// TestForwardNoStorm: in a triangle, a full mesh of six and a chain of six
// forwarding nodes, an announcement reaches every node over a shortest
// route, each link carries it a bounded number of times (and a later one
// too, so the first has settled rather than storming on), and
// when the publisher leaves no node keeps a route that only its neighbours'
// echoes held up.
func TestForwardNoStorm(t *testing.T) {
	full := func(n int) (links [][2]int) {
		for i := range n {
			for j := i + 1; j < n; j++ {
				links = append(links, [2]int{j, i})
			}
		}
		return links
	}
	chain := func(n int) (links [][2]int) {
		for i := 1; i < n; i++ {
			links = append(links, [2]int{i, i - 1})
		}
		return links
	}
	for _, tc := range []struct {
		name  string
		n     int
		links [][2]int
	}{
		{"triangle", 3, full(3)},
		{"mesh of 6", 6, full(6)},
		{"chain of 6", 6, chain(6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := mesh(t, tc.n, tc.links)
			d := distances(tc.n, tc.links)
			b := broadcast.New(broadcast.Config{})
			pub, err := nodes[0].Publish(testCtx(t), "x", b.Consume())
			if err != nil {
				t.Fatal(err)
			}
			converged(t, nodes, d, "x")
			ox, _, _ := offers(t, nodes)
			// Each node offers its relay broadcast once per session but
			// the one it comes from, plus a re-announcement per improvement
			// of its route: a bounded number per directed link.
			if bound := uint64(3 * 2 * len(tc.links)); ox > bound {
				t.Fatalf("%d offers for one broadcast over %d links (bound %d)", ox, len(tc.links), bound)
			}
			y := broadcast.New(broadcast.Config{})
			if _, err := nodes[0].Publish(testCtx(t), "y", y.Consume()); err != nil {
				t.Fatal(err)
			}
			converged(t, nodes, d, "y")
			oxy, paths, routes := offers(t, nodes)
			t.Logf("offers: x %d, then y %d; %d paths, %d routes", ox, oxy-ox, paths, routes)
			// x has settled: what it cost and what y cost (x's own offers
			// included, were they still going) each stay within the bound.
			if bound := uint64(3 * 2 * len(tc.links)); oxy-ox > bound {
				t.Fatalf("y cost %d offers (bound %d): x's are still going", oxy-ox, bound)
			}
			pub.Unpublish()
			y.Finish()
			for i, n := range nodes[1:] {
				eventually(t, fmt.Sprintf("node %d forgetting every route", i+1), func() bool {
					st, _ := n.ForwardStats(testCtx(t))
					return st.Paths == 0 && st.Routes == 0
				})
			}
			end, _, _ := offers(t, nodes)
			t.Logf("offers while the routes died: %d", end-oxy)
			// Withdrawal explores the longer routes the neighbours still
			// offer until each meets its own hop ID: bounded by the
			// number of loop-free paths, small in these topologies.
			if bound := uint64(16 * 2 * len(tc.links)); end-oxy > bound {
				t.Fatalf("%d offers while the routes died (bound %d)", end-oxy, bound)
			}
		})
	}
}

// TestForwardTree: one publisher feeds relay A, relays B and C feed from A,
// and twenty subscribers sit on each relay: the publisher's uplink carries
// each group once (its session's byte counter), and every subscriber gets
// every frame.
func TestForwardTree(t *testing.T) {
	// 64 nodes in one process on two shared cores, under -race: a keep-alive
	// can starve past the 3 s default, and this test is not about dead peers.
	lenient := WithDeadPeerTimeout(20 * time.Second)
	pub := newNode(t, lenient)
	relay := func() *node { return newNode(t, WithForwarding(Forwarding{}), lenient) }
	a, b, c := relay(), relay(), relay()
	a.connect(t, pub)
	b.connect(t, a)
	c.connect(t, a)
	const frames, size, groups = 2, 600, 40
	f := newFeed(t, pub, "tree", frames, size)
	var subs []*broadcast.TrackConsumer
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, 6) // a few hosts starting at once: two shared cores
	for _, r := range []*node{a, b, c} {
		forwarded(t, r, "tree")
		for range 20 {
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				s := newNode(t, lenient)
				s.connect(t, r)
				tc, err := s.Subscribe(testCtx(t), "tree", "video")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				subs = append(subs, tc)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	defer func() {
		for _, tc := range subs {
			tc.Close()
		}
	}()
	sessions, err := pub.Sessions(testCtx(t))
	if err != nil || len(sessions) != 1 {
		t.Fatalf("publisher sessions %d (%v)", len(sessions), err)
	}
	up := sessions[0].s
	before := up.Stats()
	for range groups {
		f.group()
	}
	for _, tc := range subs {
		wg.Go(func() { f.read(t, tc, groups, false) })
	}
	wg.Wait()
	st := up.Stats()
	if g, by := st.GroupsSent-before.GroupsSent, st.BytesSent-before.BytesSent; g != groups || by != groups*frames*size {
		t.Fatalf("the publisher sent %d groups, %d payload bytes, for %d groups of %d bytes to 60 subscribers", g, by, groups, frames*size)
	}
}

// TestForwardLeak forwards many small groups through a relay: the heap and
// the goroutine count stay flat (each group's state goes with it).
func TestForwardLeak(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 20_000
	}
	pub, relay, sub := newNode(t), newRelay(t, Forwarding{}), newNode(t)
	relay.connect(t, pub)
	sub.connect(t, relay)
	f := newFeed(t, pub, "leak", 1, 16)
	forwarded(t, relay, "leak")
	tc, err := sub.Subscribe(testCtx(t), "leak", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx := testutil.Context(t, 5*time.Minute)
	// Write in batches, each after the subscriber saw the last one's end,
	// so the test measures what forwarding holds, not a backlog.
	batch := func(n int) {
		for range n {
			f.group()
		}
		want := f.next - 1
		for {
			g, err := tc.RecvGroup(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if g.Sequence() == want {
				return
			}
		}
	}
	batch(total / 10)
	heap0, gr0 := testutil.HeapAlloc(), runtime.NumGoroutine()
	for range 9 {
		batch(total / 10)
	}
	heap1, gr1 := testutil.HeapAlloc(), runtime.NumGoroutine()
	t.Logf("%d groups: heap %+d KiB over the last %d, goroutines %d → %d", total, (heap1-heap0)>>10, total*9/10, gr0, gr1)
	// Caches hold at most 1024 groups per track (about 0.5 KiB each here,
	// on three tracks: publisher, session, relay); anything per group
	// beyond that would show as tens of MiB.
	if heap1-heap0 > 8<<20 {
		t.Fatalf("heap grew %d KiB over %d groups", (heap1-heap0)>>10, total*9/10)
	}
	if gr1 > gr0+10 {
		t.Fatalf("goroutines %d → %d", gr0, gr1)
	}
}

// TestForwardBounds: a peer announcing more paths than MaxPaths gets only
// MaxPaths forwarded, within the documented heap per path, and
// subscriptions to more tracks than MaxUpstream are refused with
// BoundsExceeded, each pump a goroutine.
func TestForwardBounds(t *testing.T) {
	const maxPaths, announced = 500, 1500
	hostile := newNode(t)
	relay := newRelay(t, Forwarding{MaxPaths: maxPaths, MaxUpstream: 2})
	down := newNode(t)
	relay.connect(t, hostile)
	ds := down.connect(t, relay)
	heap0 := testutil.HeapAlloc()
	var bs []*broadcast.Producer
	for i := range announced {
		b := broadcast.New(broadcast.Config{OnTrack: func(tp *broadcast.TrackProducer) {}})
		bs = append(bs, b)
		if _, err := hostile.Publish(testCtx(t), fmt.Sprintf("room/%04d", i), b.Consume()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the refusals", func() bool {
		st, _ := relay.ForwardStats(testCtx(t))
		return st.Paths == maxPaths && st.Refused == announced-maxPaths
	})
	eventually(t, "the downstream announcements", func() bool { return len(ds.s.Remote().Active("")) == maxPaths })
	heap1 := testutil.HeapAlloc()
	// Everything in this process: the publisher's broadcasts and origin,
	// the relay's mirror of its announcements (measured 3.8 KiB per path
	// together, none of it forwarding's), then per forwarded path the
	// route, the relay broadcast, its offer and the downstream mirror
	// (measured 2.5 KiB). Budget: 5 KiB per announced path plus 3 KiB per
	// forwarded one.
	if got, budget := heap1-heap0, int64(announced*5<<10+maxPaths*3<<10); got > budget {
		t.Fatalf("heap +%d KiB, budget %d KiB", got>>10, budget>>10)
	}
	t.Logf("heap +%d KiB for %d announced, %d forwarded and mirrored downstream", (heap1-heap0)>>10, announced, maxPaths)

	path := slices.Sorted(func(yield func(string) bool) {
		for p := range ds.s.Remote().Active("") {
			if !yield(p) {
				return
			}
		}
	})[0]
	for i := range 2 {
		tc, err := ds.Subscribe(testCtx(t), path, fmt.Sprint("t", i))
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
	}
	tc2, err := ds.Subscribe(testCtx(t), path, "t2")
	if err == nil { // the refusal can come as the track's end, just after its SUBSCRIBE_OK
		_, err = tc2.RecvGroup(testCtx(t))
		tc2.Close()
	}
	if !errors.Is(err, &broadcast.Error{Code: broadcast.CodeBoundsExceeded}) {
		t.Fatalf("third forwarded track: %v, want BoundsExceeded", err)
	}
	if n := testutil.Goroutines("actor.(*forwarder).pump", false); n != 2 {
		t.Fatalf("%d pumps for 2 forwarded tracks", n)
	}
	for _, b := range bs {
		b.Finish()
	}
}

// TestForwardRefusesOwnHop: a broadcast whose hop list already holds this
// node's ID is not taken as a route (it would be a loop), while the same
// peer's other broadcasts are; and a path published here again after a
// local publication ends is forwarded from the peer.
func TestForwardRefusesOwnHop(t *testing.T) {
	relay, peerNode := newRelay(t, Forwarding{}), newNode(t)
	relay.connect(t, peerNode)
	looped := broadcast.New(broadcast.Config{Hops: []uint64{HopID(relay.h.ID())}})
	if _, err := peerNode.Publish(testCtx(t), "looped", looped.Consume()); err != nil {
		t.Fatal(err)
	}
	plain := broadcast.New(broadcast.Config{})
	if _, err := peerNode.Publish(testCtx(t), "plain", plain.Consume()); err != nil {
		t.Fatal(err)
	}
	forwarded(t, relay, "plain")
	if relay.Forwarded().Get("looped") != nil {
		t.Fatal("a broadcast that passed through this node was forwarded")
	}
	st, _ := relay.ForwardStats(testCtx(t))
	if st.Routes != 1 {
		t.Fatalf("%d routes, want 1", st.Routes)
	}

	// A local publication at a path wins over the peer's route; when it
	// ends, the peer's route is taken up again.
	mine := broadcast.New(broadcast.Config{})
	pub, err := relay.Publish(testCtx(t), "shared", mine.Consume())
	if err != nil {
		t.Fatal(err)
	}
	other := broadcast.New(broadcast.Config{})
	if _, err := peerNode.Publish(testCtx(t), "shared", other.Consume()); err != nil {
		t.Fatal(err)
	}
	// Announced after shared on the same stream, and taken in that order:
	// once shared2 is forwarded, shared has been considered.
	theirs := broadcast.New(broadcast.Config{})
	if _, err := peerNode.Publish(testCtx(t), "shared2", theirs.Consume()); err != nil {
		t.Fatal(err)
	}
	forwarded(t, relay, "shared2")
	if relay.Forwarded().Get("shared") != nil {
		t.Fatal("a path published here is forwarded from a peer")
	}
	pub.Unpublish()
	forwarded(t, relay, "shared")
}

// TestForwardNoSpliceAcrossPublishers: two publishers announce the same
// name; when the one in use goes, the relay's track ends (NotFound) rather
// than splicing the other's unrelated group numbers into it, and a new
// subscription reads the other publisher.
func TestForwardNoSpliceAcrossPublishers(t *testing.T) {
	p1, p2, relay := newNode(t), newNode(t), newRelay(t, Forwarding{})
	relay.connect(t, p1)
	f1 := newFeed(t, p1, "same", 1, 64)
	forwarded(t, relay, "same")
	relay.connect(t, p2) // the second route: a backup of equal rank
	f2 := newFeed(t, p2, "same", 1, 64)
	f2.next = 1_000_000 // another publisher's numbering
	eventually(t, "two routes", func() bool { st, _ := relay.ForwardStats(testCtx(t)); return st.Routes == 2 })
	sub := newNode(t)
	sub.connect(t, relay)
	tc, err := sub.Subscribe(testCtx(t), "same", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f1.run(ctx, 5*time.Millisecond)
	go f2.run(ctx, 5*time.Millisecond)
	f1.read(t, tc, 5, true)
	_ = p1.Shutdown(context.Background())
	for {
		g, err := tc.RecvGroup(testCtx(t))
		if err != nil {
			if !errors.Is(err, broadcast.ErrNotFound) {
				t.Fatalf("track ended with %v, want NotFound", err)
			}
			break
		}
		if g.Sequence() >= 1_000_000 {
			t.Fatalf("group %d of the other publisher spliced in", g.Sequence())
		}
	}
	// A new subscription reaches the other publisher once the ended route's
	// withdrawal has reached the subscriber's node (until then it may still
	// find the old relay broadcast, and end as the first did).
	testutil.Until(t, testCtx(t), "a new subscription on the other publisher", func() bool {
		tc2, err := sub.Subscribe(testCtx(t), "same", "video")
		if err != nil {
			return false
		}
		defer tc2.Close()
		ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
		defer cancel()
		g, err := tc2.RecvGroup(ctx)
		return err == nil && g.Sequence() >= 1_000_000
	})
}

// TestForwardFailoverTwoHops: the relay that fails over is not the
// subscriber's own: a middle relay switches from one upstream relay to the
// other and announces the new hop list downstream (ended, then active); the
// forwarding subscriber behind it takes that as one change of route and its
// track carries on at the next group.
func TestForwardFailoverTwoHops(t *testing.T) {
	pub := newNode(t)
	r1, r2, mid := newRelay(t, Forwarding{}), newRelay(t, Forwarding{}), newRelay(t, Forwarding{})
	sub := newRelay(t, Forwarding{})
	r1.connect(t, pub)
	r2.connect(t, pub)
	f := newFeed(t, pub, "fo2", 2, 500)
	forwarded(t, r1, "fo2")
	forwarded(t, r2, "fo2")
	mid.connect(t, r1)
	forwarded(t, mid, "fo2")
	mid.connect(t, r2)
	eventually(t, "two routes at the middle relay", func() bool { st, _ := mid.ForwardStats(testCtx(t)); return st.Routes == 2 })
	sub.connect(t, mid)
	forwarded(t, sub, "fo2")
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 10*time.Millisecond)
	tc, err := sub.Subscribe(testCtx(t), "fo2", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	before := f.read(t, tc, 30, false)
	_ = r1.Shutdown(context.Background())
	after := f.read(t, tc, 30, true)
	gap := after.at[0].Sub(before.at[len(before.at)-1])
	if slices.Min(after.seqs) <= before.max() {
		t.Fatalf("group %d again after %d", slices.Min(after.seqs), before.max())
	}
	t.Logf("failover two hops up: gap %v, resumed at group %d after %d", gap, slices.Min(after.seqs), before.max())
	if gap > 500*time.Millisecond {
		t.Fatalf("failover gap %v, want at most 500 ms", gap)
	}
}

// TestForwardKeepsLiveRouteAgainstOtherOrigin: while the route in use
// works, a route of another publisher to the same name does not take over,
// however it ranks (here one hop shorter at the same cost): the switch
// would cut every subscriber, so any peer could take a working broadcast
// from them by announcing its name.
func TestForwardKeepsLiveRouteAgainstOtherOrigin(t *testing.T) {
	p1, mid, relay := newNode(t), newRelay(t, Forwarding{}), newRelay(t, Forwarding{})
	mid.connect(t, p1)
	relay.connect(t, mid)
	f1 := newFeed(t, p1, "same", 1, 64)
	forwarded(t, relay, "same")
	sub := newNode(t)
	sub.connect(t, relay)
	tc, err := sub.Subscribe(testCtx(t), "same", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f1.run(ctx, 5*time.Millisecond)
	f1.read(t, tc, 5, true)

	p2 := newNode(t) // another publisher of the name, linked directly: fewer hops
	f2 := newFeed(t, p2, "same", 1, 64)
	f2.next = 1_000_000
	go f2.run(ctx, 5*time.Millisecond)
	relay.connect(t, p2)
	eventually(t, "two routes", func() bool { st, _ := relay.ForwardStats(testCtx(t)); return st.Routes == 2 })
	for range 40 { // about 200 ms of groups after the second route came
		g, err := tc.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatalf("the subscription ended when another publisher's route came: %v", err)
		}
		if g.Sequence() >= 1_000_000 {
			t.Fatalf("group %d of the other publisher", g.Sequence())
		}
	}
	if st, _ := relay.ForwardStats(testCtx(t)); st.Switches != 0 {
		t.Fatalf("%d route switches, want none while the first route works", st.Switches)
	}
}

// TestForwardRouteBack: a path withdrawn and announced again soon after by
// the same publisher (an upstream relay's failover announces its path so:
// ended, then active, and the two can reach run in separate batches)
// keeps its forwarded track: the pump waits for the route to come back and
// goes on at the next group, rather than the path ending under it.
func TestForwardRouteBack(t *testing.T) {
	// A grace far above the republish's round trip on a loaded machine: the
	// test is of the waiting, not of the default's size.
	pub, relay, sub := newNode(t), newRelay(t, Forwarding{WithdrawGrace: 10 * time.Second}), newNode(t)
	relay.connect(t, pub)
	f := &feed{frames: 1, size: 64, written: map[uint64]time.Time{}}
	f.b = broadcast.New(broadcast.Config{})
	f.tp, _ = f.b.CreateTrack(broadcast.Track{Name: "video"})
	p, err := pub.Publish(testCtx(t), "back", f.b.Consume())
	if err != nil {
		t.Fatal(err)
	}
	forwarded(t, relay, "back")
	sub.connect(t, relay)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	go f.run(ctx, 10*time.Millisecond)
	tc, err := sub.Subscribe(testCtx(t), "back", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	before := f.read(t, tc, 5, false)
	p.Unpublish()
	// The relay has taken the withdrawal alone: no route left.
	eventually(t, "the route withdrawn", func() bool { st, _ := relay.ForwardStats(testCtx(t)); return st.Routes == 0 })
	if _, err := pub.Publish(testCtx(t), "back", f.b.Consume()); err != nil {
		t.Fatal(err)
	}
	after := f.read(t, tc, 5, true)
	if slices.Min(after.seqs) <= before.max() {
		t.Fatalf("group %d again after %d", slices.Min(after.seqs), before.max())
	}
}
