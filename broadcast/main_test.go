package broadcast

import (
	"context"
	"iter"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx returns a context that fails the test's waits after a few seconds
// instead of hanging the suite.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock is a settable clock for cache-age tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// iterPull adapts iter.Pull2 for tests.
func iterPull[K, V any](seq func(func(K, V) bool)) (func() (K, V, bool), func()) {
	return iter.Pull2(iter.Seq2[K, V](seq))
}
