package actor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Shutdown with a context that had already ended still begins the shutdown,
// and a later Shutdown with a live context returns only once the actor has
// stopped, so a caller that gave up can still wait for the stop.
func TestShutdownAfterEndedContextWaitsForStop(t *testing.T) {
	for i := range 10 {
		nw := newNetwork(t)
		a, b := nw.add(t), nw.add(t)
		s := a.connect(t, b)
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		if err := a.a.Shutdown(ended); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: Shutdown(ended ctx): %v", i, err)
		}
		select {
		case <-a.a.ShuttingDown():
		case <-time.After(5 * time.Second):
			t.Fatalf("run %d: Shutdown with an ended context never began the shutdown", i)
		}
		if err := a.a.Shutdown(testCtx(t)); err != nil {
			t.Fatalf("run %d: second Shutdown: %v", i, err)
		}
		select {
		case <-a.a.Stopped():
		default:
			t.Fatalf("run %d: second Shutdown returned before the actor stopped", i)
		}
		select {
		case <-s.Done():
		default:
			t.Fatalf("run %d: a session outlived the shutdown", i)
		}
	}
}
