package actor

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

// BenchmarkConnectBurst is what a burst of Connect callers for one peer
// costs beside the dial: 1000 callers join while the one dial is held,
// then the dial fails and all of them wake. join-ns and wake-ns are per
// caller; allocs are per burst.
func BenchmarkConnectBurst(b *testing.B) {
	const n = 1000
	var hold atomic.Pointer[chan struct{}]
	errHeld := errors.New("held dial")
	a := New(Config{
		Dial: func(ctx context.Context, _ peer.AddrInfo) (Conn, error) {
			select {
			case <-*hold.Load():
			case <-ctx.Done():
			}
			return nil, errHeld
		},
		Session:       session.Config{Logger: quiet()},
		HopID:         broadcast.NewHopID(),
		ShutdownGrace: time.Second,
		Logger:        quiet(),
	})
	defer func() { _ = a.Shutdown(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // a context with a Done channel, as callers' have
	defer cancel()
	addr := peer.AddrInfo{ID: peer.ID("burst")}
	var join, wake time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		release := make(chan struct{})
		hold.Store(&release)
		var wg sync.WaitGroup
		start := time.Now()
		for range n {
			wg.Go(func() {
				if _, err := a.Connect(ctx, addr); !errors.Is(err, errHeld) {
					b.Errorf("got %v", err)
				}
			})
		}
		for a.connectCallers(addr.ID) < n {
			runtime.Gosched()
		}
		joined := time.Now()
		close(release)
		wg.Wait()
		join += joined.Sub(start)
		wake += time.Since(joined)
	}
	b.ReportMetric(float64(join)/float64(b.N*n), "join-ns/caller")
	b.ReportMetric(float64(wake)/float64(b.N*n), "wake-ns/caller")
}
