// Package testutil holds the helpers moqp2p's tests share: bounded contexts,
// a logger that is quiet unless asked, and polling for a condition.
package testutil

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"
)

// Context returns a context that ends after d (or when the test does), so a
// failing wait fails the test instead of hanging the suite.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Logger discards everything unless MOQ_TEST_LOG is set, then logs at debug
// level to stderr.
func Logger() *slog.Logger {
	if os.Getenv("MOQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Eventually polls cond every few milliseconds for up to five seconds and
// fails the test if it never holds.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	Until(t, ctx, what, cond)
}

// Until polls cond every 5 ms until it holds, and fails the
// test if ctx ends first: Eventually for waits whose bound is not five
// seconds (a browser starting, a DHT lookup). For tests only: the poll sets
// how soon a test notices, never what it asserts.
func Until(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
