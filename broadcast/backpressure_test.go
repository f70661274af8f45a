package broadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"
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
	if _, err := c.ReadFrame(testCtx(t)); !errors.Is(err, ErrLagged) {
		t.Fatalf("first frame: %v, want ErrLagged", err)
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

// writeBP writes groups 0..n-1 of one frame each, waiting for room before
// each; swapped writes each pair in reverse (1, 0, 3, 2, ...), as groups
// racing on their own streams arrive. It reports the most groups cached.
func writeBP(t *testing.T, tp *TrackProducer, n int, swapped bool) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			seq := uint64(i)
			if swapped && seq^1 < uint64(n) {
				seq ^= 1
			}
			if err := tp.WaitRoom(testCtx(t)); err != nil {
				errc <- fmt.Errorf("WaitRoom before group %d: %w", seq, err)
				return
			}
			if err := tp.WriteGroup(seq, []byte(fmt.Sprint(seq))); err != nil {
				errc <- err
				return
			}
		}
		errc <- tp.Finish()
	}()
	return errc
}

// maxCachedWhile returns the most groups tp cached while read ran.
func maxCachedWhile(tp *TrackProducer, read func()) int {
	stop, most := make(chan struct{}), make(chan int, 1)
	go func() {
		m := 0
		for {
			tp.t.mu.RLock()
			m = max(m, tp.t.cached)
			tp.t.mu.RUnlock()
			select {
			case <-stop:
				most <- m
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	read()
	close(stop)
	return <-most
}

// Reading a lossless track in sequence order with GetGroup lets the
// producer go on: each group GetGroup returned counts as received, so a
// reader by sequence is not stuck once the cache is full. Groups arriving
// out of order are waited for, not refused.
func TestBackpressureGetGroupReadsEveryGroupInOrder(t *testing.T) {
	for _, swapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("swapped=%v", swapped), func(t *testing.T) {
			const n, cache = 600, 4
			tp := bpTrack(cache)
			c := tp.Consume()
			defer c.Close()
			c.StartAt(0)
			errc := writeBP(t, tp, n, swapped)
			most := maxCachedWhile(tp, func() {
				for i := range n {
					g, err := c.GetGroup(testCtx(t), uint64(i))
					if err != nil {
						t.Fatalf("GetGroup(%d): %v", i, err)
					}
					if f, err := g.ReadFrame(testCtx(t)); err != nil || string(f) != fmt.Sprint(i) {
						t.Fatalf("group %d: frame %q, %v", i, f, err)
					}
				}
			})
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetGroup(testCtx(t), n); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetGroup past the end of the finished track = %v, want ErrNotFound", err)
			}
			if most > cache+1 { // + the group a late WaitRoom check may let in
				t.Fatalf("the track cached %d groups, over its bound of %d", most, cache)
			}
			if len(c.taken) > 1 {
				t.Fatalf("the consumer remembers %d groups taken out of arrival order", len(c.taken))
			}
		})
	}
}

// NextGroup on a lossless track skips a late group, and the skipped group
// counts as received: the producer is not held back by it.
func TestBackpressureNextGroupSkipsLateGroups(t *testing.T) {
	const n, cache = 600, 4
	tp := bpTrack(cache)
	c := tp.Consume()
	defer c.Close()
	errc := writeBP(t, tp, n, true)
	got := 0
	for {
		g, err := c.NextGroup(testCtx(t))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d groups: %v", got, err)
		}
		if g.Sequence()%2 == 0 {
			t.Fatalf("NextGroup returned late group %d", g.Sequence())
		}
		got++
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got != n/2 {
		t.Fatalf("NextGroup returned %d groups, want the %d odd ones", got, n/2)
	}
}

// GetGroup under Backpressure still refuses what will not come: a group
// the consumer read that was evicted since, one older than its start, one
// missing from a finished track, a dropped one; it waits for one missing
// from a track still going. A group a sequence reader skips holds the
// producer back.
func TestBackpressureGetGroupRefusesWhatWillNotCome(t *testing.T) {
	tp := bpTrack(2)
	appendGroups(t, tp, 3) // 0 1 2, no consumer: 0 evicted
	late := tp.Consume()   // starts at 2
	defer late.Close()
	if _, err := late.GetGroup(testCtx(t), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetGroup of a group older than the consumer's start = %v", err)
	}
	c := tp.Consume()
	defer c.Close()
	c.StartAt(0)
	for _, seq := range []uint64{1, 2} {
		if _, err := c.GetGroup(testCtx(t), seq); err != nil {
			t.Fatal(err)
		}
	}
	late.Close()
	if err := tp.WriteGroup(5); err != nil { // 3 and 4 still to come
		t.Fatal(err)
	}
	if err := tp.WriteGroup(6); err != nil { // evicts 1 and 2, read by c
		t.Fatal(err)
	}
	if _, err := c.GetGroup(testCtx(t), 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetGroup of an evicted group the consumer read = %v", err)
	}
	if tp.HasRoom() {
		t.Fatal("room while groups 5 and 6 are unread")
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.GetGroup(short, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetGroup of a group still to come = %v, want it waited for", err)
	}
	tp.Drop(4, 4)
	if _, err := c.GetGroup(testCtx(t), 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetGroup of a dropped group = %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.GetGroup(testCtx(t), 3)
		done <- err
	}()
	_ = tp.Finish()
	if err := <-done; !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetGroup of a group missing from the finished track = %v", err)
	}
}
