package server

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 15*time.Second) }

func testLogger() *slog.Logger { return testutil.Logger() }

var eventually = testutil.Eventually

// parkedIn counts the goroutines parked with fn on their stack.
func parkedIn(fn string) int { return testutil.Goroutines(fn, true) }

// iterating waits until n IncomingSessions iterations have subscribed (each
// then waits for its next session in the actor's Incoming.Next).
func iterating(t *testing.T, n int) {
	t.Helper()
	eventually(t, "IncomingSessions iterating", func() bool { return parkedIn("actor.(*Incoming).Next") == n })
}

// newNode starts a moq node on a NewHost host that listens for QUIC on
// loopback only; the node's libp2p side stays idle in these tests.
func newNode(t testing.TB, opts ...moq.Option) *moq.Moq {
	t.Helper()
	h, err := moq.NewHost(moq.HostConfig{
		ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")},
		AddrsFactory: func(addrs []ma.Multiaddr) []ma.Multiaddr {
			var out []ma.Multiaddr
			for _, a := range addrs {
				if manet.IsIPLoopback(a) {
					out = append(out, a)
				}
			}
			return out
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := moq.New(h, append([]moq.Option{moq.WithLogger(testLogger()), moq.WithShutdownGrace(time.Second)}, opts...)...)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		_ = h.Close()
	})
	return m
}

// media is a published broadcast with one track, "video".
type media struct {
	track *broadcast.TrackProducer
}

func publish(t *testing.T, n *moq.Moq, name string) *media {
	t.Helper()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	if _, err := n.Publish(testCtx(t), name, b.Consume()); err != nil {
		t.Fatal(err)
	}
	return &media{track: tp}
}

// live writes one frame per group, each naming its index, until the test
// ends.
func live(t *testing.T, m *media) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			_ = m.track.WriteFrame([]byte(fmt.Sprint(i)))
			time.Sleep(2 * time.Millisecond) // a frame rate, not a wait
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// receive reads n frames from the session's subscription to name/video.
func receive(t *testing.T, s *moq.Session, name string, n int) {
	t.Helper()
	tc, err := s.Subscribe(testCtx(t), name, "video")
	if err != nil {
		t.Fatalf("subscribe %s: %v", name, err)
	}
	defer tc.Close()
	for got := 0; got < n; got++ {
		g, err := tc.NextGroup(testCtx(t))
		if err != nil {
			t.Fatalf("%s after %d frames: %v", name, got, err)
		}
		if _, err := g.ReadFrame(testCtx(t)); err != nil {
			t.Fatalf("%s frame: %v", name, err)
		}
	}
}
