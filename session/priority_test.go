package session

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

func TestUrgencyMapping(t *testing.T) {
	for p, want := range map[uint8]int8{255: 0, 200: 1, 128: 3, 1: 6, 0: 6} {
		if got := urgency(p); got != want {
			t.Errorf("urgency(%d) = %d, want %d", p, got, want)
		}
	}
}

// With both groups ready at once, the higher-priority subscription's group
// finishes first even though the other one started earlier.
func TestPriorityOrdersGroupsOnTheWire(t *testing.T) {
	p := newPair(t, "moq-lite-04", Config{}, Config{})
	b := broadcast.New(broadcast.Config{})
	lo, _ := b.CreateTrack(broadcast.Track{Name: "lo"})
	hi, _ := b.CreateTrack(broadcast.Track{Name: "hi"})
	_, _ = p.origin.Publish("cam", b.Consume())
	loC, err := p.sub.Subscribe(testCtx(t), "cam", "lo", SubscribeOptions{Priority: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer loC.Close()
	hiC, err := p.sub.Subscribe(testCtx(t), "cam", "hi", SubscribeOptions{Priority: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer hiC.Close()

	finished := make(chan string, 2)
	drain := func(name string, c *broadcast.TrackConsumer) {
		g, err := c.RecvGroup(testCtx(t))
		if err != nil {
			t.Error(err)
			finished <- name + " failed"
			return
		}
		for {
			if _, err := g.ReadFrame(testCtx(t)); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Error(err)
				}
				finished <- name
				return
			}
		}
	}
	go drain("lo", loC)
	go drain("hi", hiC)

	payload := make([]byte, 64<<10)
	write := func(tp *broadcast.TrackProducer) {
		g, _ := tp.AppendGroup()
		for range 64 { // 4 MiB: far more than one flow-control window
			_ = g.WriteFrame(payload)
		}
		_ = g.Finish()
	}
	write(lo) // the low-priority group is queued first
	write(hi)
	first, second := <-finished, <-finished
	if first != "hi" || second != "lo" {
		t.Fatalf("completion order %s, %s; want hi before lo", first, second)
	}
}

// A group older than the subscriber's max latency is reset with code Old once
// a newer group starts, rather than being queued behind it forever; frames
// already delivered stay readable.
func TestMaxLatencyResetsStaleGroup(t *testing.T) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "v"})
		_, _ = p.origin.Publish("cam", b.Consume())
		tc, err := p.sub.Subscribe(testCtx(t), "cam", "v", SubscribeOptions{MaxLatency: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		old, _ := tp.AppendGroup()
		_ = old.WriteFrame([]byte("partial")) // never finished: stuck in flight
		g0, err := tc.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if f, err := g0.ReadFrame(testCtx(t)); err != nil || string(f) != "partial" {
			t.Fatalf("first frame %q, %v", f, err)
		}
		time.Sleep(100 * time.Millisecond) // older than the 50 ms budget
		_ = tp.WriteFrame([]byte("fresh"))
		if _, err := g0.ReadFrame(testCtx(t)); broadcast.CodeOf(err) != broadcast.CodeOld {
			t.Fatalf("stale group: %v, want code Old (2)", err)
		}
		g1, err := tc.RecvGroup(testCtx(t))
		if err != nil || g1.Sequence() != 1 {
			t.Fatalf("fresh group %v, %v", g1, err)
		}
	})
}
