package moq

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/discovery"
)

// fakeRouter is an in-memory content router: it counts provides per key
// and answers lookups with the providers a test set.
type fakeRouter struct {
	mu        sync.Mutex
	provides  map[cid.Cid]int
	providers map[cid.Cid][]peer.AddrInfo
}

func newFakeRouter() *fakeRouter {
	return &fakeRouter{provides: map[cid.Cid]int{}, providers: map[cid.Cid][]peer.AddrInfo{}}
}

func (f *fakeRouter) Provide(_ context.Context, c cid.Cid, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.provides[c]++
	return nil
}

func (f *fakeRouter) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.provides[discovery.Key(name)]
}

func (f *fakeRouter) set(name string, infos ...peer.AddrInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.providers[discovery.Key(name)] = infos
}

func (f *fakeRouter) FindProvidersAsync(ctx context.Context, c cid.Cid, _ int) <-chan peer.AddrInfo {
	f.mu.Lock()
	infos := f.providers[c]
	f.mu.Unlock()
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		for _, info := range infos {
			select {
			case out <- info:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// provideLoops counts the node-wide re-provide loops still running: once
// none runs, no name can be provided again.
func provideLoops() int { return runningIn("discovery.(*Provider).loop") }

// Publishing provides the name and re-provides it until Unpublish, the
// broadcast's end or Shutdown; WithProvide(false) keeps it off the DHT.
func TestPublishProvides(t *testing.T) {
	r := newFakeRouter()
	a := newNode(t, WithDHT(r), WithProvideInterval(20*time.Millisecond))
	cam := publish(t, a, "cam")
	eventually(t, "cam re-provided", func() bool { return r.count("cam") >= 3 })
	if n := provideLoops(); n != 1 { // else the checks for none below prove nothing
		t.Fatalf("%d re-provide loops for one publication, want 1", n)
	}
	cam.pub.Unpublish()
	eventually(t, "cam no longer provided after Unpublish", func() bool { return provideLoops() == 0 })
	mic := publish(t, a, "mic")
	eventually(t, "mic provided", func() bool { return r.count("mic") >= 1 })
	mic.b.Finish()
	eventually(t, "mic no longer provided after its end", func() bool { return provideLoops() == 0 })
	talk := publish(t, a, "talk")
	eventually(t, "talk provided", func() bool { return r.count("talk") >= 1 })
	if err := a.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if n := provideLoops(); n != 0 {
		t.Errorf("talk still provided after Shutdown (%d loops)", n)
	}
	talk.pub.Unpublish() // after Shutdown: harmless

	quiet := newNode(t, WithDHT(r), WithProvide(false))
	publish(t, quiet, "secret")
	// A provider would have started its loop before Publish returned.
	if n := provideLoops(); n != 0 || r.count("secret") != 0 {
		t.Errorf("provided with WithProvide(false) (%d loops)", n)
	}
}

// Subscribe by name uses a session that announces the broadcast, waits for
// one that will, and gives up at the deadline with ErrNoProviders; no DHT
// is needed for that.
func TestSubscribeByNameThroughSessions(t *testing.T) {
	a, b := newNode(t), newNode(t)
	b.connect(t, a)
	got := make(chan error, 1)
	go func() {
		tc, err := b.Subscribe(testCtx(t), "/cam/", "video")
		if err == nil {
			_, err = tc.NextGroup(testCtx(t))
			tc.Close()
		}
		got <- err
	}()
	eventually(t, "Subscribe to look and wait", func() bool { return parkedIn("moq.(*Moq).SubscribeWith") == 1 })
	cam := publish(t, a, "cam")
	live(t, cam)
	if err := <-got; err != nil {
		t.Fatalf("subscribe by name over an existing session: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := b.Subscribe(ctx, "nobody", "video")
	if !errors.Is(err, ErrNoProviders) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unknown name: %v, want ErrNoProviders and DeadlineExceeded", err)
	}
	if _, err := b.Subscribe(testCtx(t), "/", "video"); !errors.Is(err, broadcast.ErrInvalidPath) {
		t.Fatalf("empty name: %v", err)
	}
}

// Subscribe by name reads a broadcast this node publishes itself, at once
// and without any session; a start group is honoured, a missing track is
// the attempt's error, and an unpublished name is not served.
func TestSubscribeByNameToOwnPublication(t *testing.T) {
	a := newNode(t)
	cam := publish(t, a, "cam")
	if err := cam.track.WriteFrame([]byte("0")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	tc, err := a.Subscribe(ctx, "/cam/", "video")
	if err != nil {
		t.Fatalf("subscribe by name to the node's own publication: %v", err)
	}
	defer tc.Close()
	if err := cam.track.WriteFrame([]byte("1")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0", "1"} { // joined at the latest group, 0
		g, err := tc.NextGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f, err := g.ReadFrame(ctx); err != nil || string(f) != want {
			t.Fatalf("frame %q, %v; want %q", f, err, want)
		}
	}
	zero := uint64(0)
	from0, err := a.SubscribeWith(ctx, "cam", "video", SubscribeOptions{Start: &zero})
	if err != nil {
		t.Fatal(err)
	}
	defer from0.Close()
	if g, err := from0.RecvGroup(ctx); err != nil || g.Sequence() != 0 {
		t.Fatalf("subscription from group 0 got %v, %v", g, err)
	}

	short, cancelShort := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancelShort()
	if _, err := a.Subscribe(short, "cam", "audio"); !errors.Is(err, broadcast.ErrNotFound) || !errors.Is(err, ErrNoProviders) {
		t.Fatalf("a track the publication lacks: %v, want ErrNoProviders wrapping ErrNotFound", err)
	}
	cam.pub.Unpublish()
	short, cancelShort = context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancelShort()
	if _, err := a.Subscribe(short, "cam", "video"); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("an unpublished name: %v, want ErrNoProviders", err)
	}
}

// A session's Subscribe refuses an empty name at once, as Moq.Subscribe
// does, instead of waiting for an announcement that cannot come.
func TestSessionSubscribeEmptyNameFailsAtOnce(t *testing.T) {
	a, b := newNode(t), newNode(t)
	s := b.connect(t, a)
	for _, name := range []string{"", "/", "//"} {
		if _, err := s.Subscribe(testCtx(t), name, "video"); !errors.Is(err, broadcast.ErrInvalidPath) {
			t.Fatalf("Subscribe(%q) = %v, want ErrInvalidPath", name, err)
		}
	}
}

// A stale provider that is alive but no longer publishes the name is
// asked once, answers NotFound, and is not asked again; a live provider
// found after it serves the broadcast.
func TestSubscribeSkipsStaleProvider(t *testing.T) {
	r := newFakeRouter()
	stale, live1 := newNode(t), newNode(t)
	sub := newNode(t, WithDHT(r))
	r.set("cam", stale.info())

	ctx, cancel := context.WithTimeout(context.Background(), announceWait+time.Second)
	defer cancel()
	start := time.Now()
	_, err := sub.Subscribe(ctx, "cam", "video")
	if !errors.Is(err, ErrNoProviders) || !errors.Is(err, broadcast.ErrNotFound) {
		t.Fatalf("only a stale provider: %v, want ErrNoProviders and the provider's NotFound", err)
	}
	t.Logf("stale provider given up after %v: %v", time.Since(start), err)

	cam := publish(t, live1, "cam")
	live(t, cam)
	r.set("cam", stale.info(), live1.info())
	tc, err := sub.Subscribe(testCtx(t), "cam", "video")
	if err != nil {
		t.Fatalf("stale, then live provider: %v", err)
	}
	defer tc.Close()
	if _, err := tc.NextGroup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !sessionTo(t, sub, live1.h.ID()) {
		t.Fatal("no session to the live provider")
	}
}
