package broadcast

import (
	"errors"
	"sync"
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

// A node budget held by children whose groups never finish: a write of
// another child that shedding cannot fit takes the oldest groups of the
// child holding the most, aborting those still being written (their
// consumers read what was written, then ErrBudget), as long as that child
// holds more than the writer would; otherwise the write is refused.
func TestBudgetTakesFromTheChildHoldingTheMost(t *testing.T) {
	node := NewBudget(2000, nil)
	s1, s2, s3 := NewBudget(1500, node), NewBudget(1500, node), NewBudget(1500, node)
	a := NewTrack(Track{Name: "a"}, Limits{Budget: s1})
	b := NewTrack(Track{Name: "b"}, Limits{Budget: s2})
	c := NewTrack(Track{Name: "c"}, Limits{Budget: s3})
	ac := a.Consume()
	defer c.Consume().Close()     // a track nobody reads keeps no finished group for the budget to take
	stalled, _ := a.AppendGroup() // never finished
	_ = stalled.WriteFrames(make([]byte, 600), make([]byte, 500))
	if !stalled.Reserve(100) { // a frame being received
		t.Fatal("reserve within the budget refused")
	}
	stopped := 0
	stalled.OnReclaim(func() { stopped++ })
	g, err := ac.RecvGroup(testCtx(t)) // a consumer of the group before it is taken
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := b.AppendGroup()
	_ = gb.WriteFrame(make([]byte, 800)) // node full: nothing finished to shed
	if node.Used() != 2000 {
		t.Fatalf("node used %d, want 2000", node.Used())
	}
	gc, _ := c.AppendGroup()
	if err := gc.WriteFrame(make([]byte, 100)); err != nil {
		t.Fatalf("write of a child holding nothing: %v", err)
	}
	if s1.Used() != 0 || node.Used() != 900 || stopped != 1 {
		t.Fatalf("s1 %d node %d, OnReclaim called %d times; want 0 900 1", s1.Used(), node.Used(), stopped)
	}
	for range 2 {
		if _, err := g.ReadFrame(testCtx(t)); err != nil {
			t.Fatalf("a frame written before the abort: %v", err)
		}
	}
	if _, err := g.ReadFrame(testCtx(t)); !errors.Is(err, ErrBudget) {
		t.Fatalf("after the written frames: %v, want ErrBudget", err)
	}
	if err := stalled.WriteFrame(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("write to the aborted group: %v, want ErrClosed", err)
	}
	stalled.Release(100) // the frame being received was taken back with the group
	if stalled.Reserve(1) || s1.Used() != 0 {
		t.Fatalf("after the group was taken back: s1 %d, and a reserve for it accepted", s1.Used())
	}

	// s3 grows to 1100; s2 would hold as much with 300 more: refused.
	if err := gc.WriteFrame(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := gb.WriteFrame(make([]byte, 300)); !errors.Is(err, ErrBudget) {
		t.Fatalf("write of a child that would hold the most = %v, want ErrBudget", err)
	}
	if s2.Used() != 800 || s3.Used() != 1100 || node.Used() != 1900 {
		t.Fatalf("after the refusal: s2 %d s3 %d node %d, want 800 1100 1900", s2.Used(), s3.Used(), node.Used())
	}

	// A finished latest group is never shed, but can be taken; so can a
	// group the cache evicted while it was being written.
	_ = gc.Finish()
	if err := gb.WriteFrame(make([]byte, 200)); err != nil { // s2 1000 < s3 1100
		t.Fatalf("write once s3 holds the most: %v", err)
	}
	if s3.Used() != 0 || s2.Used() != 1000 {
		t.Fatalf("s2 %d s3 %d, want 1000 0", s2.Used(), s3.Used())
	}
	b.Abort(nil) // s2 gives its charges back
	a3 := NewTrack(Track{Name: "a3"}, Limits{Budget: s1})
	defer a3.Consume().Close()
	writeFinished(t, a3, 5) // older than old, but finished: taken after it
	a2 := NewTrack(Track{Name: "a2"}, Limits{Budget: s1, CacheMaxGroups: 1})
	defer a2.Consume().Close()
	old, _ := a2.AppendGroup()
	_ = old.WriteFrame(make([]byte, 1400))
	writeFinished(t, a2, 10) // evicts old from the cache, still being written
	if s1.Used() != 1415 || a2.t.bytes.Load() != 10 {
		t.Fatalf("s1 %d, cache %d; want 1415, 10", s1.Used(), a2.t.bytes.Load())
	}
	if err := c.WriteGroup(5, make([]byte, 700)); err != nil { // s1 holds the most
		t.Fatalf("write taking back an evicted group: %v", err)
	}
	if s1.Used() != 15 || s3.Used() != 700 {
		t.Fatalf("s1 %d s3 %d, want 15 (old aborted and given back, the finished groups kept) and 700", s1.Used(), s3.Used())
	}
	if err := old.Finish(); !errors.Is(err, ErrClosed) {
		t.Fatalf("finishing the taken group: %v, want ErrClosed", err)
	}
	for _, tp := range []*TrackProducer{a, a2, a3, b, c} {
		tp.Abort(nil)
	}
	gb.Abort(nil)
	ac.Close()
	if node.Used() != 0 || s1.Used() != 0 || s2.Used() != 0 || s3.Used() != 0 {
		t.Fatalf("charges left: node %d s1 %d s2 %d s3 %d", node.Used(), s1.Used(), s2.Used(), s3.Used())
	}
}

// Children writing at once into a full node budget, some never finishing
// their groups, take groups back from each other without losing count:
// once every track has ended, nothing is charged.
func TestBudgetTakingBackConcurrently(t *testing.T) {
	node := NewBudget(24<<10, nil)
	var wg sync.WaitGroup
	for w := range 8 {
		s := NewBudget(16<<10, node)
		tp := NewTrack(Track{Name: "t"}, Limits{Budget: s, CacheMaxGroups: 4})
		c := tp.Consume()
		wg.Go(func() {
			defer c.Close()
			for i := range 200 {
				g, err := tp.AppendGroup()
				if err != nil {
					t.Error(err)
					return
				}
				for range 4 {
					if !g.Reserve(1 << 10) {
						break
					}
					g.Release(1 << 10)
					if g.WriteFrame(make([]byte, 1<<10)) != nil {
						break
					}
				}
				if w%2 == 0 || i%3 == 0 { // the others leave some groups unfinished
					_ = g.Finish()
				}
			}
			tp.Abort(nil)
		})
	}
	wg.Wait()
	if node.Used() != 0 {
		t.Fatalf("node budget holds %d bytes after every track ended", node.Used())
	}
}
