package broadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/testutil"
)

// seqs drains up to n groups from next and returns their sequences.
func seqs(t *testing.T, n int, next func(context.Context) (*GroupConsumer, error)) ([]uint64, error) {
	t.Helper()
	var out []uint64
	for range n {
		g, err := next(testCtx(t))
		if err != nil {
			return out, err
		}
		out = append(out, g.Sequence())
	}
	return out, nil
}

func appendGroups(t *testing.T, tp *TrackProducer, n int) {
	t.Helper()
	for range n {
		g, err := tp.AppendGroup()
		if err != nil {
			t.Fatal(err)
		}
		_ = g.WriteFrame([]byte(fmt.Sprint(g.Sequence())))
		_ = g.Finish()
	}
}

func TestTrackAppendNumbersFromZero(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	c := tp.Consume()
	defer c.Close()
	appendGroups(t, tp, 3)
	got, err := seqs(t, 3, c.RecvGroup)
	if err != nil || fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("got %v, %v; want [0 1 2]", got, err)
	}
	g, _ := tp.CreateGroup(10)
	_ = g.Finish()
	g, _ = tp.AppendGroup()
	if g.Sequence() != 11 {
		t.Fatalf("AppendGroup after 10 = %d, want 11 (max+1)", g.Sequence())
	}
}

func TestTrackLateJoinStartsAtLatest(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	appendGroups(t, tp, 5) // 0..4 cached
	c := tp.Consume()
	defer c.Close()
	appendGroups(t, tp, 2) // 5, 6
	got, err := seqs(t, 3, c.RecvGroup)
	if err != nil || fmt.Sprint(got) != "[4 5 6]" {
		t.Fatalf("late joiner got %v, %v; want [4 5 6]", got, err)
	}
	// The latest group is delivered from its first frame.
	g, _ := tp.Consume().GetGroup(testCtx(t), 4)
	if f, err := g.ReadFrame(testCtx(t)); err != nil || string(f) != "4" {
		t.Fatalf("first frame of latest group: %q, %v", f, err)
	}
}

func TestTrackStartAt(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	empty := tp.Consume() // joined an empty track: any group
	defer empty.Close()
	if _, ok := empty.Start(); ok {
		t.Fatal("a consumer of an empty track has a start")
	}
	appendGroups(t, tp, 5)
	c := tp.Consume()
	defer c.Close()
	if s, ok := c.Start(); !ok || s != 4 {
		t.Fatalf("Start() = %d, %v; want the latest, 4", s, ok)
	}
	c.StartAt(2)
	if s, ok := c.Start(); !ok || s != 2 {
		t.Fatalf("after StartAt(2): Start() = %d, %v", s, ok)
	}
	got, err := seqs(t, 3, c.RecvGroup)
	if err != nil || fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("StartAt(2): got %v, %v; want [2 3 4]", got, err)
	}
}

func TestTrackArrivalOrderVersusIncreasing(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	arrival, increasing := tp.Consume(), tp.Consume()
	defer arrival.Close()
	defer increasing.Close()
	for _, s := range []uint64{5, 3, 7, 6, 8} {
		if _, err := tp.CreateGroup(s); err != nil {
			t.Fatal(err)
		}
	}
	_ = tp.Finish()
	got, err := seqs(t, 10, arrival.RecvGroup)
	if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[5 3 7 6 8]" {
		t.Errorf("RecvGroup: %v, %v; want [5 3 7 6 8], EOF", got, err)
	}
	got, err = seqs(t, 10, increasing.NextGroup)
	if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[5 7 8]" {
		t.Errorf("NextGroup: %v, %v; want [5 7 8], EOF", got, err)
	}
}

func TestTrackDuplicateGroup(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	_, _ = tp.CreateGroup(4)
	if _, err := tp.CreateGroup(4); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate group: %v, want ErrDuplicate", err)
	}
}

func TestTrackFinish(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	c := tp.Consume()
	defer c.Close()
	appendGroups(t, tp, 3)
	if err := tp.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.AppendGroup(); !errors.Is(err, ErrClosed) {
		t.Errorf("append after finish: %v, want ErrClosed", err)
	}
	if err := tp.Finish(); !errors.Is(err, ErrClosed) {
		t.Errorf("second finish: %v, want ErrClosed", err)
	}
	got, err := seqs(t, 10, c.RecvGroup)
	if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("after finish: %v, %v; want [0 1 2], EOF", got, err)
	}
}

func TestTrackFinishWakesWaiter(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	c := tp.Consume()
	defer c.Close()
	done := make(chan error, 1)
	go func() { _, err := c.RecvGroup(testCtx(t)); done <- err }()
	testutil.Eventually(t, "RecvGroup to park", tp.t.sig.waiting.Load)
	_ = tp.Finish()
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("blocked RecvGroup after Finish: %v, want EOF", err)
	}
}

func TestTrackAbortPropagates(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	c := tp.Consume()
	defer c.Close()
	open, _ := tp.AppendGroup()
	_ = open.WriteFrame([]byte("x"))
	gc := open.Consume()
	boom := withReason(ErrDropped, "publisher vanished")
	tp.Abort(boom)
	if _, err := c.RecvGroup(testCtx(t)); !errors.Is(err, ErrDropped) {
		t.Errorf("RecvGroup after abort: %v, want ErrDropped", err)
	}
	if _, err := gc.ReadFrame(testCtx(t)); err != nil {
		t.Errorf("written frame lost after abort: %v", err)
	}
	if _, err := gc.ReadFrame(testCtx(t)); !errors.Is(err, ErrDropped) {
		t.Errorf("open group after track abort: %v, want ErrDropped", err)
	}
	if _, err := tp.AppendGroup(); !errors.Is(err, ErrDropped) {
		t.Errorf("append after abort: %v, want the abort error", err)
	}
	if !errors.Is(c.Err(), ErrDropped) {
		t.Errorf("Err() = %v", c.Err())
	}
}

func TestTrackGetGroup(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	c := tp.Consume()
	defer c.Close()
	appendGroups(t, tp, 3)
	if g, err := c.GetGroup(testCtx(t), 1); err != nil || g.Sequence() != 1 {
		t.Errorf("cached group: %v, %v", g, err)
	}
	got := make(chan uint64, 1)
	go func() {
		g, err := c.GetGroup(testCtx(t), 5)
		if err != nil {
			got <- 999
			return
		}
		got <- g.Sequence()
	}()
	_, _ = tp.CreateGroup(5)
	if s := <-got; s != 5 {
		t.Errorf("waited-for group: %d, want 5", s)
	}
	if _, err := c.GetGroup(testCtx(t), 4); !errors.Is(err, ErrNotFound) {
		t.Errorf("never-created older group: %v, want ErrNotFound", err)
	}
	if l, ok := c.Latest(); !ok || l != 5 {
		t.Errorf("Latest = %d, %v", l, ok)
	}
}

// A group the publisher dropped is not waited for: GetGroup says
// ErrNotFound at once, also to a caller already waiting; one that arrives
// all the same is taken. Only the newest ranges are remembered.
func TestTrackDrop(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	c := tp.Consume()
	defer c.Close()
	appendGroups(t, tp, 3) // 0, 1, 2
	waiting := make(chan error, 1)
	go func() {
		_, err := c.GetGroup(testCtx(t), 7)
		waiting <- err
	}()
	tp.Drop(4, 8)
	if err := <-waiting; !errors.Is(err, ErrNotFound) {
		t.Fatalf("a waiter for dropped group 7: %v, want ErrNotFound", err)
	}
	for _, seq := range []uint64{4, 8} {
		if _, err := c.GetGroup(testCtx(t), seq); !errors.Is(err, ErrNotFound) {
			t.Fatalf("dropped group %d: %v, want ErrNotFound", seq, err)
		}
	}
	short, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := c.GetGroup(short, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("group 3, not dropped: %v, want a wait", err)
	}
	if err := tp.WriteGroup(5, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if g, err := c.GetGroup(testCtx(t), 5); err != nil || g.Sequence() != 5 {
		t.Fatalf("dropped group 5 that came anyway: %v %v", g, err)
	}
	tp.Drop(9, 8)                          // empty: ignored
	for i := range uint64(maxDropRanges) { // the first range, 4..8, is forgotten
		tp.Drop(100+2*i, 100+2*i)
	}
	if _, err := c.GetGroup(testCtx(t), 100+2*(maxDropRanges-1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the newest dropped group: %v, want ErrNotFound", err)
	}
	short2, cancel2 := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel2()
	if _, err := c.GetGroup(short2, 7); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("group 7 of a forgotten range: %v, want a wait", err)
	}
}

func TestTrackCacheEvictsByAgeButKeepsLatest(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	tp := NewTrack(Track{Name: "v"}, Limits{CacheMaxAge: time.Second, Now: clk.Now})
	appendGroups(t, tp, 3) // 0,1,2 at t=0
	clk.Advance(2 * time.Second)
	c := tp.Consume()
	defer c.Close()
	if _, err := c.GetGroup(testCtx(t), 0); err != nil {
		t.Fatalf("nothing is evicted until a new group arrives: %v", err)
	}
	appendGroups(t, tp, 1) // 3 arrives and becomes the latest: 0, 1 and 2 are too old
	for s, want := range map[uint64]error{0: ErrNotFound, 1: ErrNotFound, 2: ErrNotFound, 3: nil} {
		if _, err := c.GetGroup(testCtx(t), s); !errors.Is(err, want) {
			t.Errorf("group %d: %v, want %v", s, err, want)
		}
	}
	clk.Advance(10 * time.Second)
	g, _ := tp.CreateGroup(1) // a late, lower sequence: group 3 is old but still the latest
	_ = g.Finish()
	for _, s := range []uint64{1, 3} {
		if _, err := c.GetGroup(testCtx(t), s); err != nil {
			t.Errorf("group %d: %v, want cached", s, err)
		}
	}
}

func TestTrackCacheEvictsByBytes(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{CacheMaxBytes: 2500})
	for range 10 {
		g, _ := tp.AppendGroup()
		_ = g.WriteFrame(make([]byte, 1000))
		_ = g.Finish()
	}
	if n := tp.t.bytes.Load(); n > 2500+1000 {
		t.Fatalf("cache holds %d bytes, budget 2500 (+ latest)", n)
	}
	c := tp.Consume()
	defer c.Close()
	c.StartAt(0)
	got, _ := seqs(t, 3, c.RecvGroup)
	if fmt.Sprint(got) != "[7 8 9]" {
		t.Fatalf("cached groups %v, want the newest [7 8 9]", got)
	}
}

func TestTrackCacheEvictsByGroupCount(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{CacheMaxGroups: 3})
	for range 10 {
		g, _ := tp.AppendGroup()
		_ = g.WriteFrame([]byte{1})
		_ = g.Finish()
	}
	c := tp.Consume()
	defer c.Close()
	c.StartAt(0)
	got, _ := seqs(t, 3, c.RecvGroup)
	if fmt.Sprint(got) != "[7 8 9]" {
		t.Fatalf("cached groups %v, want the newest [7 8 9]", got)
	}
	if n := tp.t.cached; n != 3 {
		t.Fatalf("cache holds %d groups, want 3", n)
	}
}

func TestTrackSlowConsumerDoesNotStallFast(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{CacheMaxBytes: 10_000})
	slow, fast := tp.Consume(), tp.Consume()
	defer slow.Close()
	defer fast.Close()
	for i := range 100 {
		g, _ := tp.AppendGroup()
		_ = g.WriteFrame(make([]byte, 1000))
		_ = g.Finish()
		if gc, err := fast.RecvGroup(testCtx(t)); err != nil || gc.Sequence() != uint64(i) {
			t.Fatalf("fast consumer at %d: %v", i, err)
		}
	}
	// The slow consumer skips what was evicted and continues at the cached tail.
	g, err := slow.RecvGroup(testCtx(t))
	if err != nil || g.Sequence() < 85 {
		t.Fatalf("slow consumer resumed at %v, %v; want a recent group", g, err)
	}
}

func TestTrackUsedAndUnused(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{})
	select {
	case <-tp.Unused():
	default:
		t.Fatal("a track with no consumers must be unused")
	}
	used := tp.Used()
	c1, c2 := tp.Consume(), tp.Consume()
	<-used
	unused := tp.Unused()
	c1.Close()
	c1.Close() // idempotent: must not count twice
	select {
	case <-unused:
		t.Fatal("unused fired with a consumer left")
	default:
	}
	c2.Close()
	<-unused
}

// TestTrackWriteGroup: a group written whole is found finished with its
// frames, counts in the cache budget, refuses duplicates, and creates
// nothing when a frame is over the group limit.
func TestTrackWriteGroup(t *testing.T) {
	tp := NewTrack(Track{Name: "v"}, Limits{GroupMaxBytes: 100, CacheMaxBytes: 250})
	c := tp.Consume()
	defer c.Close()
	if err := tp.WriteGroup(5, []byte("a"), []byte("bc")); err != nil {
		t.Fatal(err)
	}
	g, err := c.RecvGroup(testCtx(t))
	if err != nil || g.Sequence() != 5 {
		t.Fatalf("got group %v, %v; want 5", g, err)
	}
	var got []string
	for {
		f, ok, err := g.TryReadFrame()
		if !ok {
			t.Fatal("a written group must be readable to its end without waiting")
		}
		if errors.Is(err, io.EOF) {
			break
		}
		got = append(got, string(f))
	}
	if fmt.Sprint(got) != "[a bc]" {
		t.Fatalf("frames %v, want [a bc]", got)
	}
	if n := tp.t.bytes.Load(); n != 3 {
		t.Fatalf("cache counts %d bytes, want 3", n)
	}
	if err := tp.WriteGroup(5, []byte("x")); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second group 5: %v, want ErrDuplicate", err)
	}
	if err := tp.WriteGroup(6, []byte("ok"), make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized frame: %v, want ErrTooLarge", err)
	}
	if err := tp.WriteGroup(6); err != nil { // 6 was not created: free, and empty groups are fine
		t.Fatalf("group 6 after the refused write: %v", err)
	}
	for seq := uint64(7); seq < 10; seq++ { // 3 × 100 bytes: the budget evicts the oldest
		if err := tp.WriteGroup(seq, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if n := tp.t.bytes.Load(); n > 250+100 {
		t.Fatalf("cache holds %d bytes, budget 250 (+ latest)", n)
	}
	if err := tp.WriteFrame([]byte("next")); err != nil { // appends after the latest
		t.Fatal(err)
	}
	for {
		g, err := c.RecvGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if g.Sequence() == 10 {
			break
		}
	}
}

// Ready: at once for a track never held; for a held one, until Confirm,
// its first group or Finish (nil) or Abort (its error). A track aborted
// before any group or confirmation was refused: Ready says so.
func TestTrackHoldReady(t *testing.T) {
	ctx := context.Background()
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	plain := NewTrack(Track{Name: "a"}, Limits{})
	if err := plain.Consume().Ready(short()); err != nil {
		t.Fatalf("never held: %v", err)
	}
	for _, c := range []struct {
		name string
		end  func(*TrackProducer)
		want error
	}{
		{"confirm", (*TrackProducer).Confirm, nil},
		{"group", func(p *TrackProducer) { _ = p.WriteFrame([]byte("x")) }, nil},
		{"finish", func(p *TrackProducer) { _ = p.Finish() }, nil},
		{"abort", func(p *TrackProducer) { p.Abort(ErrNotFound) }, ErrNotFound},
		{"confirm-then-abort", func(p *TrackProducer) { p.Confirm(); p.Abort(ErrNotFound) }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := NewTrack(Track{Name: "a"}, Limits{})
			p.Hold()
			tc := p.Consume()
			if err := tc.Ready(short()); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("held: Ready %v, want it to wait", err)
			}
			done := make(chan error, 1)
			go func() { done <- tc.Ready(ctx) }()
			c.end(p)
			select {
			case err := <-done:
				if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
					t.Fatalf("Ready %v, want %v", err, c.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Ready still waiting")
			}
		})
	}
	aborted := NewTrack(Track{Name: "a"}, Limits{})
	aborted.Abort(ErrNotFound)
	if err := aborted.Consume().Ready(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted before any group: Ready %v, want NotFound", err)
	}
}
