package discovery_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// A Provider provides at once, again every interval, retries failures
// sooner, and stops on stop, on ctx's end and on Close.
func TestProviderReprovidesUntilStopped(t *testing.T) {
	before := goleak.IgnoreCurrent()
	r := newFakeRouter()
	r.fail = 1 // the first provide fails (e.g. an empty routing table)
	p := discovery.NewProvider(r, discovery.ProviderConfig{Interval: 40 * time.Millisecond, Logger: testutil.Logger()})
	defer p.Close()

	key := discovery.Key("cam")
	stop := p.Provide(context.Background(), "/cam/")
	testutil.Eventually(t, "three provides of cam", func() bool { return r.count(key) >= 3 })
	stop()
	// A loop that has ended cannot provide again: stop must not return
	// before cam's loop is gone.
	if err := goleak.Find(before); err != nil {
		t.Fatalf("cam's provide loop outlived stop: %v", err)
	}
	stop() // idempotent

	ctx, cancel := context.WithCancel(context.Background())
	stopMic := p.Provide(ctx, "mic")
	testutil.Eventually(t, "mic provided", func() bool { return r.count(discovery.Key("mic")) >= 1 })
	cancel()
	stopMic() // returns once the loop has ended

	p.Provide(context.Background(), "talk")
	testutil.Eventually(t, "talk provided", func() bool { return r.count(discovery.Key("talk")) >= 1 })
	p.Close() // stops talk
	if err := goleak.Find(before); err != nil {
		t.Fatalf("a provide loop outlived Close: %v", err)
	}
	p.Provide(context.Background(), "late")() // after Close: nothing
	if r.count(discovery.Key("late")) != 0 {
		t.Fatal("provided after Close")
	}
}

// Find deduplicates, stops when the caller breaks, and waits for the
// lookup to end.
func TestFindDeduplicatesAndStops(t *testing.T) {
	a, b, c := newPeerID(t), newPeerID(t), newPeerID(t)
	r := newFakeRouter(peer.AddrInfo{ID: a}, peer.AddrInfo{ID: b}, peer.AddrInfo{ID: a}, peer.AddrInfo{ID: c})
	var got []peer.ID
	for info := range discovery.Find(testCtx(t), r, "cam") {
		got = append(got, info.ID)
	}
	if len(got) != 3 || got[0] != a || got[1] != b || got[2] != c {
		t.Fatalf("Find yielded %v, want [a b c]", got)
	}
	<-r.stopped
	for range discovery.Find(testCtx(t), r, "cam") {
		break
	}
	select {
	case <-r.stopped: // Find returned after the lookup ended
	default:
		t.Fatal("Find returned while the lookup still ran")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for info := range discovery.Find(ctx, r, "cam") {
		t.Fatalf("yielded %s after ctx ended", info.ID)
	}
	<-r.stopped
}
