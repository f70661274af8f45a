package moq

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// BenchmarkSubscribeByName times Subscribe-to-first-frame on 20 hosts that
// form a DHT on loopback: by name (DHT lookup, connect, subscribe) next to a
// direct Connect with the publisher's addresses and Session.Subscribe, in
// the same run. Each iteration uses a fresh broadcast and a publisher and
// subscriber with no session between them, whose libp2p connections were
// just closed (DHT traffic may reopen them); the publisher's latest group
// is cached, so the first frame follows the subscription at once. Besides
// ns/op it reports the median and 90th percentile in ms.
func BenchmarkSubscribeByName(b *testing.B) {
	// Re-providing is not what is measured: once a minute is enough.
	nodes := newDHTNet(b, 20, WithProvideInterval(time.Minute))
	pair := 0
	// next returns a publisher with a fresh broadcast and a subscriber, with
	// no session or connection between them.
	next := func(b *testing.B, provided bool) (pub, sub *dhtNode, name string, end func()) {
		for {
			pub, sub = nodes[pair%len(nodes)], nodes[(pair*7+3)%len(nodes)]
			pair++
			if pub != sub {
				break
			}
		}
		name = fmt.Sprintf("bench/%d", pair)
		bp := broadcast.New(broadcast.Config{})
		tp, _ := bp.CreateTrack(broadcast.Track{Name: "video"})
		_ = tp.WriteFrame([]byte("first"))
		p, err := pub.Publish(context.Background(), name, bp.Consume())
		if err != nil {
			b.Fatal(err)
		}
		if provided {
			waitProvided(b, farthest(nodes, name, pub, sub), name, pub)
		}
		disconnect(b, pub, sub)
		return pub, sub, name, func() {
			p.Unpublish()
			bp.Finish()
			disconnect(b, pub, sub)
		}
	}
	firstFrame := func(b *testing.B, subscribe func(ctx context.Context) (*broadcast.TrackConsumer, error)) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		tc, err := subscribe(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer tc.Close()
		g, err := tc.NextGroup(ctx)
		if err == nil {
			_, err = g.ReadFrame(ctx)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	run := func(b *testing.B, provided bool, subscribe func(ctx context.Context, pub, sub *dhtNode, name string) (*broadcast.TrackConsumer, error)) {
		var took []time.Duration
		for range b.N {
			b.StopTimer()
			pub, sub, name, end := next(b, provided)
			b.StartTimer()
			t0 := time.Now()
			firstFrame(b, func(ctx context.Context) (*broadcast.TrackConsumer, error) { return subscribe(ctx, pub, sub, name) })
			took = append(took, time.Since(t0))
			b.StopTimer()
			end()
			b.StartTimer()
		}
		slices.Sort(took)
		b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
		b.ReportMetric(ms(took[len(took)*9/10]), "p90-ms")
	}
	b.Run("by-name", func(b *testing.B) {
		run(b, true, func(ctx context.Context, _, sub *dhtNode, name string) (*broadcast.TrackConsumer, error) {
			return sub.Subscribe(ctx, name, "video")
		})
	})
	b.Run("direct", func(b *testing.B) {
		run(b, false, func(ctx context.Context, pub, sub *dhtNode, name string) (*broadcast.TrackConsumer, error) {
			s, err := sub.Connect(ctx, pub.info())
			if err != nil {
				return nil, err
			}
			return s.Subscribe(ctx, name, "video")
		})
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// disconnect closes the sessions and libp2p connections between two nodes
// and waits until neither has a session to the other. (DHT traffic may
// reopen a libp2p connection at any time.)
func disconnect(t testing.TB, a, b *dhtNode) {
	for _, pair := range [][2]*dhtNode{{a, b}, {b, a}} {
		list, _ := pair[0].Sessions(context.Background())
		for _, s := range list {
			if s.RemotePeer() == pair[1].h.ID() {
				_ = s.Close(broadcast.CodeCancel, "benchmark")
			}
		}
		_ = pair[0].h.Network().ClosePeer(pair[1].h.ID())
	}
	eventually(t, "sessions closed", func() bool { return !sessionTo(t, a.node, b.h.ID()) && !sessionTo(t, b.node, a.h.ID()) })
}
