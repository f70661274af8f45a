package broadcast

import (
	"errors"
	"testing"
)

func writeFinished(t *testing.T, tp *TrackProducer, size int) {
	t.Helper()
	if err := tp.WriteFrame(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
}

// A write over the budget evicts finished cached groups of any track
// sharing it first; what still does not fit is refused, and what was
// written stays.
func TestBudgetShedsThenRefuses(t *testing.T) {
	b := NewBudget(3000, nil)
	lim := Limits{Budget: b}
	a, c := NewTrack(Track{Name: "a"}, lim), NewTrack(Track{Name: "c"}, lim)
	for range 3 {
		writeFinished(t, a, 900) // 2700 charged: groups 0, 1 and the latest, 2
	}
	if b.Used() != 2700 {
		t.Fatalf("used %d, want 2700", b.Used())
	}
	g, _ := c.AppendGroup()
	if err := g.WriteFrame(make([]byte, 1000)); err != nil { // evicts a's group 0, enough
		t.Fatalf("write within the budget once a's cache is evicted: %v", err)
	}
	if b.Used() != 2800 {
		t.Fatalf("used %d, want 2800 (a's 1 and 2, and c's group)", b.Used())
	}
	if err := g.WriteFrame(make([]byte, 1200)); !errors.Is(err, ErrBudget) || CodeOf(err) != CodeBoundsExceeded {
		t.Fatalf("write past the budget with nothing left to evict = %v, want ErrBudget (BoundsExceeded)", err)
	}
	if g.FrameCount() != 1 || b.Used() != 1900 { // a's group 1 was evicted trying
		t.Fatalf("after the refusal: %d frames, %d used; want 1, 1900", g.FrameCount(), b.Used())
	}
	if err := c.WriteGroup(9, make([]byte, 1200)); !errors.Is(err, ErrBudget) {
		t.Fatalf("a whole group past the budget = %v, want ErrBudget", err)
	}
	g.Abort(nil)
	a.Abort(nil) // an aborted track gives its cache back
	c.Abort(nil)
	if b.Used() != 0 || len(b.tracks) != 0 {
		t.Fatalf("after both tracks ended: %d used, %d tracks registered", b.Used(), len(b.tracks))
	}
}

// A group the cache evicted while it is still being written stays charged
// until it ends; appends also evict by the cache bound, not only new groups.
func TestBudgetChargesGroupsInFlight(t *testing.T) {
	b := NewBudget(1<<20, nil)
	tp := NewTrack(Track{Name: "v"}, Limits{Budget: b, CacheMaxGroups: 1, CacheMaxBytes: 1000})
	c := tp.Consume()
	old, _ := tp.AppendGroup()
	_ = old.WriteFrame(make([]byte, 600))
	newer, _ := tp.AppendGroup() // evicts old from the cache
	if err := old.WriteFrame(make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	if b.Used() != 1200 || tp.t.bytes.Load() != 0 {
		t.Fatalf("used %d, cache %d: want the evicted group's 1200 charged, outside the cache", b.Used(), tp.t.bytes.Load())
	}
	_ = old.Finish()
	if b.Used() != 0 {
		t.Fatalf("used %d after the evicted group ended, want 0", b.Used())
	}
	_ = newer.WriteFrame(make([]byte, 100))
	_ = newer.Finish()
	last, _ := tp.AppendGroup() // evicts newer, finished: one group cached
	_ = last.WriteFrame(make([]byte, 800))
	if b.Used() != 800 {
		t.Fatalf("used %d, want 800", b.Used())
	}
	// Evict on append: an older group still being written grows the cache
	// past its bound without any new group arriving.
	tp2 := NewTrack(Track{Name: "w"}, Limits{Budget: b, CacheMaxBytes: 1000})
	g, _ := tp2.AppendGroup()
	writeFinished(t, tp2, 100) // the latest
	_ = g.WriteFrame(make([]byte, 600))
	_ = g.WriteFrame(make([]byte, 600)) // 1200 besides the latest: g leaves the cache
	if n := tp2.t.bytes.Load(); n != 100 {
		t.Fatalf("cache holds %d bytes after the append, want 100 (the latest)", n)
	}
	c2 := tp2.Consume()
	if _, err := c2.GetGroup(testCtx(t), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("group 0 after the append-time eviction: %v, want ErrNotFound", err)
	}
	c2.Close()
	_ = g.Finish()
	_ = last.Finish()
	_ = tp.Finish()
	_ = tp2.Finish() // no consumer: drained at once
	c.Close()        // the last consumer of a finished track: drained
	if b.Used() != 0 {
		t.Fatalf("used %d after the tracks finished and their consumers left, want 0", b.Used())
	}
}

// A node budget over session budgets: a write must fit in both, and the
// node's evicts from every session's tracks.
func TestBudgetNested(t *testing.T) {
	node := NewBudget(2000, nil)
	s1, s2 := NewBudget(1500, node), NewBudget(1500, node)
	a := NewTrack(Track{Name: "a"}, Limits{Budget: s1})
	c := NewTrack(Track{Name: "c"}, Limits{Budget: s2})
	writeFinished(t, a, 700)
	writeFinished(t, a, 700) // s1 1400, node 1400
	g, _ := c.AppendGroup()
	if err := g.WriteFrame(make([]byte, 1000)); err != nil { // node over: evicts a's group 0
		t.Fatal(err)
	}
	if s1.Used() != 700 || s2.Used() != 1000 || node.Used() != 1700 {
		t.Fatalf("used s1 %d s2 %d node %d, want 700 1000 1700", s1.Used(), s2.Used(), node.Used())
	}
	if err := g.WriteFrame(make([]byte, 600)); !errors.Is(err, ErrBudget) { // s2 would be 1600
		t.Fatalf("write past the session budget = %v", err)
	}
	if s2.Used() != 1000 || node.Used() != 1700 {
		t.Fatalf("a refused write left charges: s2 %d node %d", s2.Used(), node.Used())
	}
	g.Abort(nil)
	a.Abort(nil)
	c.Abort(nil)
	if node.Used() != 0 || s1.Used() != 0 || s2.Used() != 0 {
		t.Fatalf("charges left: node %d s1 %d s2 %d", node.Used(), s1.Used(), s2.Used())
	}
}
