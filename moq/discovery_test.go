package moq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// Short DHT lifetimes for tests: records live recordTTL unless refreshed
// every provideEvery.
const (
	recordTTL    = 3 * time.Second
	provideEvery = 300 * time.Millisecond
	// The lifetimes of TestDHT20, which is not about expiry: records that
	// outlive the test, however slow a loaded machine makes each provide
	// (a provide that takes longer than a short lifetime lets the record
	// lapse between refreshes, and lookups miss it), and provides rare
	// enough to leave the CPU to the lookups under test.
	stableTTL          = 10 * time.Minute
	stableProvideEvery = 5 * time.Second
	// dhtWait bounds waits for the DHT to do what it should: generous, as
	// 20 hosts under the race detector on a loaded machine are slow.
	dhtWait = 60 * time.Second
	// bucketSize k: records go to the k peers closest to the key, so with
	// 20 hosts most peers must really look a name up (k = 20 would store
	// every record on every host).
	bucketSize = 4
)

// dhtNode is a moq node with its own kad-dht on a QUIC host.
type dhtNode struct {
	*node
	d    *dht.IpfsDHT
	ttl  time.Duration // the DHT's record lifetime
	down func()        // shuts the node, its DHT and its host down; idempotent
}

// newDHTNode starts a host, a DHT server on it (private /moq protocol,
// loopback addresses only, short record lifetimes) and a moq node using it.
// wrap, if not nil, changes the router the node is given.
func newDHTNode(t testing.TB, wrap func(*dht.IpfsDHT) routing.ContentRouting, hostOpts []config.Option, opts ...Option) *dhtNode {
	t.Helper()
	return newDHTNodeTTL(t, recordTTL, wrap, hostOpts, opts...)
}

// newDHTNodeTTL is newDHTNode with records that live ttl.
func newDHTNodeTTL(t testing.TB, ttl time.Duration, wrap func(*dht.IpfsDHT) routing.ContentRouting, hostOpts []config.Option, opts ...Option) *dhtNode {
	t.Helper()
	q := p2pquic.New(p2pquic.Config{Logger: testLogger()})
	h, err := NewHost(HostConfig{QUIC: q, AddrsFactory: loopbackAddrs, Options: hostOpts})
	if err != nil {
		t.Fatal(err)
	}
	d, err := discovery.NewDHT(h,
		dht.Mode(dht.ModeServer), // loopback hosts never look public
		dht.DisableAutoRefresh(),
		dht.BucketSize(bucketSize),
		dht.AddressFilter(loopbackAddrs),
		discovery.RecordTTL(ttl),
	)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	var r routing.ContentRouting = d
	if wrap != nil {
		r = wrap(d)
	}
	all := append([]Option{WithLogger(testLogger()), WithShutdownGrace(time.Second), WithQUIC(q), WithDHT(r),
		WithProvideInterval(provideEvery), WithProviderTimeout(3 * time.Second)}, opts...)
	m, err := New(h, all...)
	if err != nil {
		_ = d.Close()
		_ = h.Close()
		t.Fatal(err)
	}
	var once sync.Once
	n := &dhtNode{node: &node{Moq: m, h: h}, d: d, ttl: ttl}
	n.down = func() {
		once.Do(func() {
			_ = m.Shutdown(context.Background())
			_ = d.Close()
			_ = h.Close()
		})
	}
	t.Cleanup(n.down)
	return n
}

// newDHTNet starts n DHT nodes and joins them through the first (a star:
// each connects to it), then lets each look itself up, which fills the
// routing tables. (A full RefreshRoutingTable on 20 hosts at once costs
// seconds of CPU under the race detector; one self-lookup suffices.)
func newDHTNet(t testing.TB, n int, opts ...Option) []*dhtNode {
	t.Helper()
	return newDHTNetTTL(t, n, recordTTL, opts...)
}

// newDHTNetTTL is newDHTNet with records that live ttl.
func newDHTNetTTL(t testing.TB, n int, ttl time.Duration, opts ...Option) []*dhtNode {
	t.Helper()
	nodes := make([]*dhtNode, n)
	for i := range nodes {
		nodes[i] = newDHTNodeTTL(t, ttl, nil, nil, opts...)
	}
	for _, nd := range nodes[1:] {
		if err := nd.h.Connect(testutil.Context(t, dhtWait), nodes[0].info()); err != nil {
			t.Fatal(err)
		}
	}
	joinDHT(t, nodes[0], nodes...)
	return nodes
}

// addDHTNode starts one more DHT node, with boot's record lifetime, and
// joins it through boot.
func addDHTNode(t testing.TB, boot *dhtNode, wrap func(*dht.IpfsDHT) routing.ContentRouting, hostOpts []libp2p.Option, opts ...Option) *dhtNode {
	t.Helper()
	n := newDHTNodeTTL(t, boot.ttl, wrap, hostOpts, opts...)
	if err := n.h.Connect(testutil.Context(t, dhtWait), boot.info()); err != nil {
		t.Fatal(err)
	}
	joinDHT(t, boot, n)
	return n
}

// joinDHT waits until the nodes are connected to the bootstrap node and
// have it in their routing tables, then has each look itself up.
func joinDHT(t testing.TB, boot *dhtNode, nodes ...*dhtNode) {
	t.Helper()
	ctx := testutil.Context(t, dhtWait)
	for _, n := range nodes {
		if n != boot {
			testutil.Until(t, ctx, "connected to the bootstrap node", func() bool { return len(n.h.Network().ConnsToPeer(boot.h.ID())) > 0 })
		}
		testutil.Until(t, ctx, "a peer in the routing table", func() bool { return n.d.RoutingTable().Size() > 0 })
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			if _, err := n.d.GetClosestPeers(ctx, string(n.h.ID())); err != nil {
				t.Errorf("self-lookup: %v", err)
			}
		})
	}
	wg.Wait()
}

// farthest is the node (other than except) farthest from name's DHT key:
// never one of the k peers that hold its records.
func farthest(nodes []*dhtNode, name string, except ...*dhtNode) *dhtNode {
	skip := map[peer.ID]bool{}
	for _, e := range except {
		skip[e.h.ID()] = true
	}
	byID := map[peer.ID]*dhtNode{}
	var ids []peer.ID
	for _, n := range nodes {
		if !skip[n.h.ID()] {
			byID[n.h.ID()] = n
			ids = append(ids, n.h.ID())
		}
	}
	sorted := kb.SortClosestPeers(ids, kb.ConvertKey(string(discovery.Key(name).Hash())))
	return byID[sorted[len(sorted)-1]]
}

// providers lists what a node's DHT lookup returns for name.
func providers(t testing.TB, n *dhtNode, name string) map[peer.ID]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := map[peer.ID]bool{}
	for info := range n.Find(ctx, name) {
		got[info.ID] = true
	}
	return got
}

// waitProvided waits until observer's lookup finds every publisher of name.
func waitProvided(t testing.TB, observer *dhtNode, name string, pubs ...*dhtNode) {
	t.Helper()
	for deadline := time.Now().Add(dhtWait); ; time.Sleep(20 * time.Millisecond) {
		got := providers(t, observer, name)
		missing := 0
		for _, p := range pubs {
			if !got[p.h.ID()] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d publishers of %s not in the DHT after %v", missing, len(pubs), name, dhtWait)
		}
	}
}

// firstFrames subscribes by name and reads n frames, returning them.
func firstFrames(t *testing.T, n *dhtNode, name string, count int) []string {
	t.Helper()
	ctx := testutil.Context(t, dhtWait)
	tc, err := n.Subscribe(ctx, name, "video")
	if err != nil {
		t.Fatalf("subscribe to %s by name: %v", name, err)
	}
	defer tc.Close()
	var out []string
	for len(out) < count {
		g, err := tc.NextGroup(ctx)
		if err != nil {
			t.Fatalf("%s after %d frames: %v", name, len(out), err)
		}
		f, err := g.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("%s frame: %v", name, err)
		}
		out = append(out, string(f))
	}
	return out
}

// sessionTo reports whether n has a session to p.
func sessionTo(t testing.TB, n *node, p peer.ID) bool {
	list, _ := n.Sessions(testCtx(t))
	for _, s := range list {
		if s.RemotePeer() == p {
			return true
		}
	}
	return false
}

// Finding a broadcast by name with no address, on 20 hosts that form a DHT
// on loopback (one DHT for the subtests, which use different names; the
// last one takes a host down). Its records outlive the test: expiry is
// TestDHTRecordExpiry's.
func TestDHT20(t *testing.T) {
	start := time.Now()
	nodes := newDHTNetTTL(t, 20, stableTTL, WithProvideInterval(stableProvideEvery))
	t.Logf("20 hosts with DHTs up and bootstrapped in %v", time.Since(start))
	t.Run("SubscribeByName", func(t *testing.T) { testSubscribeByName(t, nodes) })
	t.Run("ShortTicket", func(t *testing.T) { testShortTicket(t, nodes) })
	t.Run("ProviderDownNextUsed", func(t *testing.T) { testProviderDownNextUsed(t, nodes) })
}

// One host publishes; another, which has never heard of it and holds none
// of its records, subscribes by name and receives frames.
func testSubscribeByName(t *testing.T, nodes []*dhtNode) {
	pub := nodes[7]
	cam := publish(t, pub.node, "cam")
	live(t, cam)
	sub := farthest(nodes, "cam", pub)
	observer := farthest(nodes, "cam", pub, sub)
	t0 := time.Now()
	waitProvided(t, observer, "cam", pub)
	t.Logf("provided and found in %v", time.Since(t0))

	if sessionTo(t, sub.node, pub.h.ID()) {
		t.Fatal("the subscriber already has a session to the publisher")
	}
	t0 = time.Now()
	frames := firstFrames(t, sub, "cam", 5)
	t.Logf("subscribe by name → 5 frames in %v (%v)", time.Since(t0), frames)
	if !sessionTo(t, sub.node, pub.h.ID()) {
		t.Fatal("no session to the publisher after subscribing by name")
	}
}

// Re-providing keeps a record alive past its lifetime; after Unpublish it
// is no longer refreshed and lookups stop returning it once it expires.
// (8 hosts, short lifetimes: a DHT of its own.)
func TestDHTRecordExpiry(t *testing.T) {
	nodes := newDHTNet(t, 8)
	pub := nodes[3]
	cam := publish(t, pub.node, "cam")
	live(t, cam)
	observer := farthest(nodes, "cam", pub)
	waitProvided(t, observer, "cam", pub)

	// Found again after twice the record's lifetime: re-provided. The sleep
	// is the behaviour under test (records expire with time); any length
	// past one lifetime would do, and twice leaves room for a slow provide.
	time.Sleep(2 * recordTTL)
	waitProvided(t, observer, "cam", pub)
	cam.pub.Unpublish()
	unpublished := time.Now()
	// found is when the last lookup that returned the record began: a
	// lookup that begins after the record expired cannot find it, however
	// long a loaded machine makes the lookups (the one that first misses it
	// may begin up to a lookup's length after it expired). Three misses in
	// a row: the record is gone, not just missed by a lookup cut short.
	var found time.Duration
	for misses, deadline := 0, unpublished.Add(dhtWait); misses < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("lookups still return the publisher %v after Unpublish", dhtWait)
		}
		began := time.Now()
		if !providers(t, observer, "cam")[pub.h.ID()] {
			misses++
			continue
		}
		misses, found = 0, began.Sub(unpublished)
	}
	t.Logf("the last lookup that returned the publisher began %v after Unpublish (record lifetime %v, re-provided every %v)", found, recordTTL, provideEvery)
	// The margin covers a provide still on its way at Unpublish, which its
	// holders take in (and date) a little later.
	if found > recordTTL+3*time.Second {
		t.Errorf("the record outlived its lifetime: found by a lookup begun %v after Unpublish", found)
	}

	// Nothing serves cam any more: Subscribe gives up at the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	fresh := farthest(nodes, "cam", pub, observer)
	if _, err := fresh.Subscribe(ctx, "cam", "video"); !errors.Is(err, ErrNoProviders) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("subscribe to an expired name: %v, want ErrNoProviders and DeadlineExceeded", err)
	}
}

// A short ticket (peer ID and name, no address) resolves the publisher's
// addresses through the DHT's peer routing.
func testShortTicket(t *testing.T, nodes []*dhtNode) {
	pub := nodes[5]
	mic := publish(t, pub.node, "mic")
	live(t, mic)
	var finds atomic.Int32
	// The publisher must not reach the subscriber by itself (its providing
	// dials the peers closest to the name, and identify would then hand the
	// subscriber its addresses): only the subscriber's own lookup may.
	sub := addDHTNode(t, nodes[0], func(d *dht.IpfsDHT) routing.ContentRouting { return countFindPeer{d, &finds} },
		[]libp2p.Option{libp2p.ConnectionGater(refuseInbound{pub.h.ID()})})
	sub.h.Peerstore().ClearAddrs(pub.h.ID())
	_ = sub.h.Network().ClosePeer(pub.h.ID())

	text := mic.pub.Ticket().Short().String()
	tk, err := discovery.ParseTicket(text)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	ctx := testutil.Context(t, dhtWait)
	tc, err := sub.SubscribeTicket(ctx, tk, "video")
	if err != nil {
		t.Fatalf("subscribe with short ticket %s: %v", text, err)
	}
	defer tc.Close()
	if _, err := tc.NextGroup(ctx); err != nil {
		t.Fatalf("ticket subscription: %v", err)
	}
	t.Logf("short ticket %s → first group in %v (%d peer-routing lookups)", text, time.Since(t0), finds.Load())
	if finds.Load() == 0 {
		t.Error("the ticket resolved without peer routing")
	}
}

// refuseInbound is a connection gater that refuses connections one peer
// opens to us; we may still dial it.
type refuseInbound struct{ from peer.ID }

func (refuseInbound) InterceptPeerDial(peer.ID) bool               { return true }
func (refuseInbound) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (refuseInbound) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (refuseInbound) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
func (g refuseInbound) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return dir != network.DirInbound || p != g.from
}

// countFindPeer counts the DHT's peer-routing lookups.
type countFindPeer struct {
	*dht.IpfsDHT
	n *atomic.Int32
}

func (c countFindPeer) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	c.n.Add(1)
	return c.IpfsDHT.FindPeer(ctx, id)
}

// Two peers publish one name; the first goes down (its record stays in the
// DHT); a subscriber that tries it first moves on to the second.
func testProviderDownNextUsed(t *testing.T, nodes []*dhtNode) {
	first, second := nodes[3], nodes[11]
	for i, p := range []*dhtNode{first, second} {
		m := publish(t, p.node, "news")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for j := 0; ctx.Err() == nil; j++ {
				_ = m.track.WriteFrame(fmt.Appendf(nil, "%d-%d", i, j))
				time.Sleep(2 * time.Millisecond) // a frame rate, not a wait: readers wait for frames
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	observer := farthest(nodes, "news", first, second)
	waitProvided(t, observer, "news", first, second)

	// A subscriber whose lookups yield the first publisher first.
	firstInfo := peer.AddrInfo{ID: first.h.ID(), Addrs: first.h.Addrs()}
	tries := &triesLog{}
	sub := addDHTNode(t, nodes[0], func(d *dht.IpfsDHT) routing.ContentRouting { return preferFirst{d, firstInfo} },
		nil, WithLogger(slog.New(tries)))
	first.down()
	t0 := time.Now()
	frames := firstFrames(t, sub, "news", 3)
	t.Logf("with the first provider down: frames %v after %v", frames, time.Since(t0))
	if got := tries.peers(); len(got) < 2 || got[0] != first.h.ID().String() || got[1] != second.h.ID().String() {
		t.Errorf("providers tried %v, want the first (%s), then the second (%s)", got, first.h.ID(), second.h.ID())
	}
	for _, f := range frames {
		if f[:2] != "1-" {
			t.Fatalf("frame %q, want one from the second publisher", f)
		}
	}
	if !sessionTo(t, sub.node, second.h.ID()) {
		t.Fatal("no session to the second publisher")
	}
}

// WithBootstrap connects the host to the bootstrap peers when the node
// starts, and the DHT learns them.
func TestBootstrapOption(t *testing.T) {
	a, b := newDHTNode(t, nil, nil), newDHTNode(t, nil, nil)
	c := newDHTNode(t, nil, nil, WithBootstrap(a.info(), b.info()))
	eventually(t, "connected to both bootstrap peers", func() bool {
		return len(c.h.Network().ConnsToPeer(a.h.ID())) > 0 && len(c.h.Network().ConnsToPeer(b.h.ID())) > 0
	})
	eventually(t, "both in the routing table", func() bool { return c.d.RoutingTable().Size() == 2 })
}

// triesLog is a slog handler that records the providers Subscribe tries.
type triesLog struct {
	mu    sync.Mutex
	tried []string
}

func (l *triesLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *triesLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *triesLog) WithGroup(string) slog.Handler            { return l }
func (l *triesLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "trying provider" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "peer" {
			l.mu.Lock()
			l.tried = append(l.tried, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *triesLog) peers() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.tried)
}

// preferFirst is a DHT whose provider lookups yield one peer first (the
// rest in lookup order, without it), so a test can choose which provider a
// subscriber tries first. The first is yielded up front rather than when
// the lookup reaches it: a provider that is down answers no queries, and
// whether the lookup still returns its record in time is up to the DHT
// (waitProvided has already checked that the record is there).
type preferFirst struct {
	*dht.IpfsDHT
	first peer.AddrInfo
}

func (p preferFirst) FindProvidersAsync(ctx context.Context, key cid.Cid, count int) <-chan peer.AddrInfo {
	in := p.IpfsDHT.FindProvidersAsync(ctx, key, count)
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		defer func() {
			for range in {
			}
		}()
		select {
		case out <- p.first:
		case <-ctx.Done():
			return
		}
		for info := range in {
			if info.ID == p.first.ID {
				continue
			}
			select {
			case out <- info:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
