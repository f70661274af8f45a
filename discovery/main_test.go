package discovery_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 15*time.Second) }

// fakeRouter is a routing.ContentRouting that records provides and answers
// lookups with a fixed list.
type fakeRouter struct {
	mu       sync.Mutex
	provides map[cid.Cid][]time.Time
	fail     int // fail this many provides first
	found    []peer.AddrInfo
	stopped  chan struct{} // closed when a lookup goroutine ends
}

func newFakeRouter(found ...peer.AddrInfo) *fakeRouter {
	return &fakeRouter{provides: map[cid.Cid][]time.Time{}, found: found, stopped: make(chan struct{}, 16)}
}

func (f *fakeRouter) Provide(ctx context.Context, c cid.Cid, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return context.DeadlineExceeded
	}
	f.provides[c] = append(f.provides[c], time.Now())
	return nil
}

func (f *fakeRouter) count(c cid.Cid) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.provides[c])
}

func (f *fakeRouter) FindProvidersAsync(ctx context.Context, _ cid.Cid, _ int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		// Deferred calls run last-first: stopped is signalled before out
		// closes, so a caller that has drained out sees the lookup ended.
		defer close(out)
		defer func() { f.stopped <- struct{}{} }()
		for _, info := range f.found {
			select {
			case out <- info:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
