package moq

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/moqp2p/moqp2p/discovery"
)

// relaysFound runs one whole relay lookup from n.
func relaysFound(t testing.TB, n *dhtNode) []peer.ID {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []peer.ID
	for info := range n.FindRelays(ctx) {
		got = append(got, info.ID)
	}
	return got
}

// A relay advertised in a DHT of five hosts is found by a node that has
// never heard of it, and nodes without Advertise (forwarding or not) are
// not; through the relay found, a broadcast whose publisher is not in the
// DHT at all resolves by name, with no session to the publisher.
func TestRelayDiscoveryDHT(t *testing.T) {
	boot := newDHTNode(t, nil, nil)
	relay := addDHTNode(t, boot, nil, nil, WithForwarding(Forwarding{Advertise: true}))
	quiet := addDHTNode(t, boot, nil, nil, WithForwarding(Forwarding{})) // forwards, not advertised
	pub := addDHTNode(t, boot, nil, nil, WithProvide(false))
	sub := addDHTNode(t, boot, nil, nil)

	cam := publish(t, pub.node, "cam")
	live(t, cam)
	if _, err := pub.Connect(testCtx(t), relay.info()); err != nil {
		t.Fatal(err)
	}

	var found []peer.ID
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		found = relaysFound(t, sub)
		if len(found) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no relay found in the DHT after 15 s")
		}
	}
	if len(found) != 1 || found[0] != relay.h.ID() {
		t.Fatalf("relays found %v, want only %s (not %s, %s, %s, %s)", found, relay.h.ID(), boot.h.ID(), quiet.h.ID(), pub.h.ID(), sub.h.ID())
	}
	if got := relaysFound(t, relay); len(got) != 0 {
		t.Errorf("the relay found %v: it must not find itself", got)
	}

	// The publisher is not provided: only the relay leads to cam.
	if got := providers(t, sub, "cam"); got[pub.h.ID()] {
		t.Fatalf("cam's providers %v hold the publisher; the test needs it not to", got)
	}
	if _, err := sub.Connect(testCtx(t), peer.AddrInfo{ID: found[0]}); err != nil {
		t.Fatalf("connect to the relay found: %v", err)
	}
	frames := firstFrames(t, sub, "cam", 3)
	t.Logf("through the relay found in the DHT: %v", frames)
	if sessionTo(t, sub.node, pub.h.ID()) {
		t.Error("the subscriber opened a session to the publisher: the relay was not used")
	}
}

// nearer puts a peer the host is connected to first, then peers by the
// round trip measured to them, then peers never measured, keeping the
// lookup's order among equals.
func TestNearerOrder(t *testing.T) {
	a, conn, fast, slow, none := newNode(t), newNode(t), newNode(t), newNode(t), newNode(t)
	if err := a.h.Connect(testCtx(t), conn.info()); err != nil {
		t.Fatal(err)
	}
	ps := a.h.Peerstore()
	ps.RecordLatency(fast.h.ID(), 2*time.Millisecond)
	ps.RecordLatency(slow.h.ID(), 40*time.Millisecond)
	for _, n := range []*node{fast, slow, none} {
		if a.connected(n.h.ID()) {
			t.Fatalf("%s is connected; the test needs it not to be", n.h.ID())
		}
	}
	order := []peer.AddrInfo{none.info(), slow.info(), fast.info(), conn.info()}
	sortNearest(a.Moq, order)
	want := []peer.ID{conn.h.ID(), fast.h.ID(), slow.h.ID(), none.h.ID()}
	for i := range want {
		if order[i].ID != want[i] {
			t.Fatalf("position %d: %s, want %s (order %v)", i, order[i].ID, want[i], order)
		}
	}
}

// countProvides is the node's real DHT, noting the keys it provides.
type countProvides struct {
	*dht.IpfsDHT
	mu   sync.Mutex
	keys map[cid.Cid]bool
}

func (c *countProvides) Provide(ctx context.Context, key cid.Cid, announce bool) error {
	c.mu.Lock()
	c.keys[key] = true
	c.mu.Unlock()
	return c.IpfsDHT.Provide(ctx, key, announce)
}

func (c *countProvides) provided(key cid.Cid) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[key]
}

func (c *countProvides) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

// An advertised relay provides the names it forwards: a broadcast whose
// publisher is not in the DHT resolves by name to the relay, with no
// session to the publisher and no address in hand. Past MaxAdvertised the
// names are forwarded but not provided.
func TestRelayAdvertisesForwarded(t *testing.T) {
	var counter *countProvides
	wrap := func(d *dht.IpfsDHT) routing.ContentRouting {
		counter = &countProvides{IpfsDHT: d, keys: map[cid.Cid]bool{}}
		return counter
	}
	skipped := &skipLog{}
	boot := newDHTNode(t, nil, nil)
	relay := addDHTNode(t, boot, wrap, nil, WithForwarding(Forwarding{Advertise: true, MaxAdvertised: 2}),
		WithLogger(slog.New(skipped)))
	pub := addDHTNode(t, boot, nil, nil, WithProvide(false))
	sub := addDHTNode(t, boot, nil, nil)

	cam := publish(t, pub.node, "cam")
	live(t, cam)
	if _, err := pub.Connect(testCtx(t), relay.info()); err != nil {
		t.Fatal(err)
	}
	waitProvided(t, sub, "cam", relay)
	if sessionTo(t, sub.node, relay.h.ID()) || sessionTo(t, sub.node, pub.h.ID()) {
		t.Fatal("the subscriber already has a session to the relay or the publisher")
	}
	frames := firstFrames(t, sub, "cam", 3)
	t.Logf("cam resolved by name through the relay: %v", frames)
	if !sessionTo(t, sub.node, relay.h.ID()) {
		t.Error("no session to the relay after subscribing by name")
	}
	if sessionTo(t, sub.node, pub.h.ID()) {
		t.Error("a session to the publisher, which is not in the DHT")
	}

	// Four more paths: one more name fits (2 with cam), three do not.
	for _, name := range []string{"x1", "x2", "x3", "x4"} {
		live(t, publish(t, pub.node, name))
	}
	eventually(t, "three names refused for the bound", func() bool { return skipped.count() == 3 })
	eventually(t, "a second forwarded name provided", func() bool { return counter.count() >= 3 }) // the relay key, cam, one x
	if n := counter.count(); n != 3 {
		t.Errorf("%d keys provided, want 3: the relay key and MaxAdvertised = 2 names", n)
	}
	if !counter.provided(discovery.RelayKey()) || !counter.provided(discovery.Key("cam")) {
		t.Error("the relay key or cam not provided")
	}
}

// skipLog counts the forwarded names not provided for MaxAdvertised.
type skipLog struct {
	mu sync.Mutex
	n  int
}

func (l *skipLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *skipLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *skipLog) WithGroup(string) slog.Handler            { return l }
func (l *skipLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "forwarded broadcast not provided: MaxAdvertised reached" {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
	return nil
}

func (l *skipLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
