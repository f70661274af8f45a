package moq

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A provider is not tried twice at once; one that failed is tried again
// after a pause that doubles with each failure, up to providerRetryMax; one
// never tried is ready at once.
func TestProviderTries(t *testing.T) {
	tries := providerTries{}
	const p = peer.ID("provider")
	now := time.Unix(1000, 0)
	if !tries.ready(p, now) {
		t.Fatal("a provider never tried is not ready")
	}
	tries.started(p)
	if tries.ready(p, now) {
		t.Fatal("a provider with an attempt running is ready")
	}
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		tries.failed(p, now)
		if tries.ready(p, now.Add(want-time.Millisecond)) {
			t.Fatalf("failure %d: ready before %v", i+1, want)
		}
		if !tries.ready(p, now.Add(want)) {
			t.Fatalf("failure %d: not ready after %v", i+1, want)
		}
		tries.started(p)
	}
	tries.failed(peer.ID("unknown"), now) // never started: nothing to note
	if !tries.ready(peer.ID("unknown"), now) {
		t.Fatal("a provider failed without an attempt is held back")
	}
}
