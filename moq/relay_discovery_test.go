package moq

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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

	// The publisher is not provided: only the relay's announcement leads
	// to cam.
	if got := providers(t, sub, "cam"); len(got) != 0 {
		t.Fatalf("cam has providers %v; the test needs none", got)
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
