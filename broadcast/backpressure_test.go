package broadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func bpTrack(groups int) *TrackProducer {
	return NewTrack(Track{Name: "file"}, Limits{Backpressure: true, CacheMaxGroups: groups})
}

// A producer pacing itself with WaitRoom hands every group to a consumer
// that reads slower than it writes, and never holds more than the cache
// bounds.
func TestBackpressureDeliversEveryGroup(t *testing.T) {
	const n, cache = 2000, 4
	tp := bpTrack(cache)
	c := tp.Consume()
	defer c.Close()
	errc := make(chan error, 1)
	maxCached := 0
	go func() {
		for i := range n {
			if err := tp.WaitRoom(testCtx(t)); err != nil {
				errc <- err
				return
			}
			if err := tp.WriteFrame([]byte(fmt.Sprint(i))); err != nil {
				errc <- err
				return
			}
			tp.t.mu.RLock()
			maxCached = max(maxCached, tp.t.cached)
			tp.t.mu.RUnlock()
		}
		errc <- tp.Finish()
	}()
	for i := 0; ; i++ {
		g, err := c.RecvGroup(testCtx(t))
		if errors.Is(err, io.EOF) {
			if i != n {
				t.Fatalf("EOF after %d groups, want %d", i, n)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f, err := g.ReadFrame(testCtx(t))
		if err != nil || string(f) != fmt.Sprint(i) || g.Sequence() != uint64(i) {
			t.Fatalf("group %d: seq %d frame %q, %v", i, g.Sequence(), f, err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if maxCached > cache {
		t.Fatalf("the track cached %d groups, over its bound of %d", maxCached, cache)
	}
}

// Without waiting, the producer overfills the cache, but nothing a
// consumer has not received is evicted; what every consumer has is.
func TestBackpressureKeepsUnreceivedGroups(t *testing.T) {
	tp := bpTrack(2)
	slow, fast := tp.Consume(), tp.Consume()
	defer slow.Close()
	appendGroups(t, tp, 10)
	if tp.HasRoom() {
		t.Fatal("HasRoom with 10 groups unread by both consumers and a cache of 2")
	}
	if got, err := seqs(t, 10, fast.RecvGroup); err != nil || fmt.Sprint(got) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("fast consumer got %v, %v", got, err)
	}
	fast.Close()
	if got, err := seqs(t, 5, slow.RecvGroup); err != nil || fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("slow consumer got %v, %v", got, err)
	}
	appendGroups(t, tp, 1) // evicts what slow has received
	tp.t.mu.RLock()
	cached := tp.t.cached
	tp.t.mu.RUnlock()
	if cached != 6 {
		t.Fatalf("%d groups cached, want 6 (5..10: what slow has not received)", cached)
	}
	if got, err := seqs(t, 6, slow.RecvGroup); err != nil || fmt.Sprint(got) != "[5 6 7 8 9 10]" {
		t.Fatalf("slow consumer got %v, %v", got, err)
	}
}

// WaitRoom returns once the slowest consumer moves on, or leaves; it
// reports the track's end.
func TestBackpressureWaitRoomWakes(t *testing.T) {
	tp := bpTrack(2)
	c1, c2 := tp.Consume(), tp.Consume()
	appendGroups(t, tp, 2)
	if tp.HasRoom() {
		t.Fatal("HasRoom with a full cache unread")
	}
	if _, err := seqs(t, 2, c1.RecvGroup); err != nil {
		t.Fatal(err)
	}
	if tp.HasRoom() {
		t.Fatal("HasRoom while c2 has read nothing")
	}
	done := make(chan error, 1)
	go func() { done <- tp.WaitRoom(testCtx(t)) }()
	if _, err := seqs(t, 1, c2.RecvGroup); err != nil { // frees group 0
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitRoom after the slowest consumer moved on: %v", err)
	}
	appendGroups(t, tp, 1)
	go func() { done <- tp.WaitRoom(testCtx(t)) }()
	c2.Close() // c1 is at the end: room
	if err := <-done; err != nil {
		t.Fatalf("WaitRoom after the slowest consumer left: %v", err)
	}
	appendGroups(t, tp, 3)
	go func() { done <- tp.WaitRoom(testCtx(t)) }()
	tp.Abort(ErrNotFound)
	if err := <-done; !errors.Is(err, ErrNotFound) {
		t.Fatalf("WaitRoom on an aborted track = %v, want its abort error", err)
	}
	c1.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tp = bpTrack(1)
	defer tp.Consume().Close()
	appendGroups(t, tp, 2)
	if err := tp.WaitRoom(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitRoom with an ended context = %v", err)
	}
	_ = tp.Finish()
	if err := tp.WaitRoom(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitRoom on a finished track = %v, want ErrClosed", err)
	}
}

// A consumer that joined at the live edge needs only the latest group, and
// a track without Backpressure always has room.
func TestBackpressureLateJoinerAndLive(t *testing.T) {
	tp := bpTrack(2)
	appendGroups(t, tp, 2)
	c := tp.Consume() // at group 1
	defer c.Close()
	if !tp.HasRoom() {
		t.Fatal("no room: a late joiner pins groups older than its start")
	}
	live := NewTrack(Track{Name: "live"}, Limits{CacheMaxGroups: 2})
	lc := live.Consume()
	defer lc.Close()
	appendGroups(t, live, 5)
	if !live.HasRoom() || live.WaitRoom(testCtx(t)) != nil {
		t.Fatal("a live track waits for its consumers")
	}
}

// SkipEvicted lets a reader go on from the oldest frame a group still holds.
func TestGroupSkipEvicted(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{GroupMaxFrames: 2})
	g, _ := tp.AppendGroup()
	_ = g.WriteFrames([]byte("0"), []byte("1"), []byte("2"), []byte("3"))
	_ = g.Finish()
	c := g.Consume()
	if _, err := c.ReadFrame(testCtx(t)); !errors.Is(err, ErrEvicted) {
		t.Fatalf("first frame: %v, want ErrEvicted", err)
	}
	if n := c.SkipEvicted(); n != 2 {
		t.Fatalf("skipped %d, want 2", n)
	}
	if f, err := c.ReadFrame(testCtx(t)); err != nil || string(f) != "2" {
		t.Fatalf("after skipping: %q, %v", f, err)
	}
	if n := c.SkipEvicted(); n != 0 {
		t.Fatalf("skipped %d more, want 0", n)
	}
}
