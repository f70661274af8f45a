package broadcast

import (
	"context"
	"math"
	"testing"
	"time"
)

// SubscribeTrackAt notes the start on a new track before its OnTrack
// handler runs, lowers it for later subscribers (never raises it), and
// starts each consumer at its own start within the cache.
func TestSubscribeTrackAtAskedStart(t *testing.T) {
	var seen []uint64
	var tp *TrackProducer
	b := New(Config{OnTrack: func(p *TrackProducer) {
		tp = p
		s, ok := p.AskedStart()
		if !ok {
			t.Error("OnTrack: no start asked")
		}
		seen = append(seen, s)
	}})
	c := b.Consume()
	first, err := c.SubscribeTrackAt(Track{Name: "v"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if len(seen) != 1 || seen[0] != 5 {
		t.Fatalf("OnTrack saw starts %v, want [5]", seen)
	}
	for seq := range uint64(10) {
		if err := tp.WriteGroup(seq, []byte{byte(seq)}); err != nil {
			t.Fatal(err)
		}
	}
	later, err := c.SubscribeTrackAt(Track{Name: "v"}, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	earlier, err := c.SubscribeTrackAt(Track{Name: "v"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer earlier.Close()
	live, err := c.SubscribeTrack(Track{Name: "v"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if s, ok := tp.AskedStart(); !ok || s != 2 {
		t.Fatalf("asked start %d (%v), want the earliest, 2", s, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		c    *TrackConsumer
		from uint64
	}{{"first", first, 5}, {"later", later, 7}, {"earlier", earlier, 2}, {"live", live, 9}} {
		for want := tc.from; want < 10; want++ {
			g, err := tc.c.RecvGroup(ctx)
			if err != nil || g.Sequence() != want {
				t.Fatalf("%s: group %v (%v), want %d", tc.name, g, err, want)
			}
		}
	}
	// One past the largest sequence is not representable: ignored.
	tp.t.askStart(math.MaxUint64)
	if s, _ := tp.AskedStart(); s != 2 {
		t.Fatalf("asked start %d after MaxUint64, want 2", s)
	}
	if _, ok := NewTrack(Track{Name: "x"}, Limits{}).AskedStart(); ok {
		t.Fatal("a track nobody asked a start of reports one")
	}
}

// Asked wakes a relay when a joining subscriber wants groups not asked for
// before (the first live one, a lower start), and only then; a start past
// the latest group of a track that has groups is not noted at all.
func TestSubscribeTrackAsked(t *testing.T) {
	var tp *TrackProducer
	b := New(Config{OnTrack: func(p *TrackProducer) { tp = p }})
	c := b.Consume()
	fired := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	first, err := c.SubscribeTrackAt(Track{Name: "v"}, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if tp.AskedLive() {
		t.Fatal("live asked by a subscriber with a start")
	}
	asked := tp.Asked()
	same, _ := c.SubscribeTrackAt(Track{Name: "v"}, 1<<41) // higher: nothing new
	defer same.Close()
	if fired(asked) {
		t.Fatal("Asked fired for a higher start")
	}
	lower, _ := c.SubscribeTrackAt(Track{Name: "v"}, 1<<39)
	defer lower.Close()
	if !fired(asked) {
		t.Fatal("Asked did not fire for a lower start")
	}
	if s, _ := tp.AskedStart(); s != 1<<39 {
		t.Fatalf("asked start %d, want 2^39", s)
	}
	asked = tp.Asked()
	live, _ := c.SubscribeTrack(Track{Name: "v"})
	defer live.Close()
	if !fired(asked) || !tp.AskedLive() {
		t.Fatal("Asked did not fire for the first live subscriber")
	}
	asked = tp.Asked()
	live2, _ := c.SubscribeTrack(Track{Name: "v"})
	defer live2.Close()
	if fired(asked) {
		t.Fatal("Asked fired for a second live subscriber")
	}
	for seq := range uint64(5) {
		if err := tp.WriteGroup(seq, nil); err != nil {
			t.Fatal(err)
		}
	}
	ahead, _ := c.SubscribeTrackAt(Track{Name: "v"}, 10)
	defer ahead.Close()
	if s, _ := tp.AskedStart(); s != 1<<39 {
		t.Fatalf("a start past the latest group (4) was noted: asked start %d", s)
	}
	if fired(asked) {
		t.Fatal("Asked fired for a start past the latest group")
	}
	within, _ := c.SubscribeTrackAt(Track{Name: "v"}, 4)
	defer within.Close()
	if s, _ := tp.AskedStart(); s != 4 || !fired(asked) {
		t.Fatalf("asked start %d, want 4, with Asked fired", s)
	}
}

// A track made on demand carries the tag of the consumer whose
// subscription made it; joining it later leaves it as it is.
func TestSubscribeTrackTag(t *testing.T) {
	var tags []any
	b := New(Config{OnTrack: func(p *TrackProducer) { tags = append(tags, p.Tag()) }})
	c := b.Consume()
	a, err := c.Tagged(uint64(7)).SubscribeTrack(Track{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	again, _ := c.Tagged(uint64(8)).SubscribeTrack(Track{Name: "a"}) // joins: no OnTrack
	defer again.Close()
	plain, _ := c.SubscribeTrack(Track{Name: "b"})
	defer plain.Close()
	if len(tags) != 2 || tags[0] != uint64(7) || tags[1] != nil {
		t.Fatalf("OnTrack saw tags %v, want [7 <nil>]", tags)
	}
}
