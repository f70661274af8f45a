package broadcast

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkFanout writes 1 KiB frames (64 per group) to a track read by N
// consumers concurrently. One op is one frame delivered to every consumer; the
// per-consumer figures are reported as ns/frame/consumer and
// allocs/frame/consumer.
func BenchmarkFanout(b *testing.B) {
	for _, consumers := range []int{1, 10, 1000} {
		b.Run(fmt.Sprintf("consumers=%d", consumers), func(b *testing.B) { benchFanout(b, consumers) })
	}
}

func benchFanout(b *testing.B, consumers int) {
	const framesPerGroup = 64
	payload := make([]byte, 1024)
	// A cache large enough that no consumer is evicted: this measures delivery.
	tp := NewTrack(Track{Name: "bench"}, Limits{CacheMaxAge: time.Hour, CacheMaxBytes: 1 << 50, CacheMaxGroups: 1 << 30})
	ctx := context.Background()
	var ready, wg sync.WaitGroup
	start := make(chan struct{})
	for range consumers {
		c := tp.Consume()
		ready.Add(1)
		wg.Go(func() {
			defer c.Close()
			ready.Done()
			<-start
			read := 0
			for read < b.N {
				g, err := c.RecvGroup(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				for {
					if _, err := g.ReadFrame(ctx); err != nil {
						break
					}
					read++
				}
			}
		})
	}
	ready.Wait()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	close(start)
	var g *GroupProducer
	for i := range b.N {
		if i%framesPerGroup == 0 {
			if g != nil {
				_ = g.Finish()
			}
			g, _ = tp.AppendGroup()
		}
		_ = g.WriteFrame(payload)
	}
	_ = g.Finish()
	wg.Wait()
	b.StopTimer()
	runtime.ReadMemStats(&after)
	deliveries := float64(b.N) * float64(consumers)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/frame/consumer")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/frame/consumer")
}

// BenchmarkGroupChurn writes one-frame groups of 64 bytes to a track whose
// cache is full (CacheMaxGroups), so that every group evicts the oldest,
// and reads each with a consumer, as a session's tracks do at both ends of
// a stream of small groups (bench row P6). One op is one group.
func BenchmarkGroupChurn(b *testing.B) {
	tp := NewTrack(Track{Name: "t"}, Limits{Budget: NewBudget(1<<30, nil)})
	tc := tp.Consume()
	defer tc.Close()
	payload := make([]byte, 64)
	ctx := context.Background()
	churn := func() {
		if err := tp.WriteFrame(payload); err != nil {
			b.Fatal(err)
		}
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.ReadFrame(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for range 2 * DefaultCacheMaxGroups { // fill the cache, and the heap with what a live track holds
		churn()
	}
	b.ReportAllocs()
	for b.Loop() {
		churn()
	}
}
