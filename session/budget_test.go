package session

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// rawFrames encodes n frames of size zero bytes.
func rawFrames(n, size int) []byte {
	var out []byte
	payload := make([]byte, size)
	for range n {
		out = wire.AppendVarint(out, uint64(size))
		out = append(out, payload...)
	}
	return out
}

// A peer holding many group streams open, each sending about 1 MiB that
// is never finished, can make the session hold no more than its receive
// budget plus a bounded per-stream overhead: streams past the budget are
// stopped with BoundsExceeded.
func TestBadInputReceiveBudget(t *testing.T) {
	const (
		streams = 64
		budget  = 4 << 20
		perStr  = 60 * 16 << 10 // 960 KiB in 16 KiB frames
		// The budget, plus per stream a 16 KiB read buffer, chunk and bookkeeping
		// (24 KiB documented), plus what the two QUIC endpoints buffer.
		maxHeap = budget + streams*24<<10 + 6<<20
	)
	lim := Limits{MaxReceiveBytes: budget, Model: broadcast.Limits{GroupMaxBytes: 1 << 20, CacheMaxBytes: 1 << 20}}
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: lim}, true)
	ctx := testCtx(t)
	_, _, sub := p.sessionSubscribe(t, ctx)
	b := p.sess.lim.Model.Budget
	before, goroutines := testutil.HeapAlloc(), runtime.NumGoroutine()

	data := rawFrames(60, 16<<10)
	if len(data) < perStr {
		t.Fatal("bad test data")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []transport.SendStream
	stopped := 0
	for i := range streams {
		gs := p.openGroup(t, ctx, sub.ID, uint64(i))
		wg.Go(func() {
			_, err := gs.Write(data) // returns once sent, or with the session's STOP_SENDING
			mu.Lock()
			defer mu.Unlock()
			if c, ok := peerCode(err); ok && c == uint32(broadcast.CodeBoundsExceeded) {
				stopped++
				return
			} else if err != nil {
				t.Errorf("stream %d: %v, want BoundsExceeded or success", i, err)
			}
			open = append(open, gs)
		})
	}
	wg.Wait()
	defer func() {
		for _, gs := range open {
			gs.CancelWrite(0)
		}
	}()
	// Every byte sent on the open streams is in the session (or it stopped them).
	eventually(t, func() bool { return b.Used() >= int64(len(open))*int64(perStr)-int64(streams)*(16<<10) })
	grew := testutil.HeapAlloc() - before
	g := runtime.NumGoroutine() - goroutines
	t.Logf("%d streams of %d KiB: %d stopped, budget used %d KiB, heap +%d KiB, goroutines +%d",
		streams, perStr>>10, stopped, b.Used()>>10, grew>>10, g)
	if stopped == 0 || b.Used() > budget {
		t.Fatalf("%d streams stopped, budget used %d of %d: the budget was not enforced", stopped, b.Used(), budget)
	}
	if grew > maxHeap {
		t.Fatalf("heap grew %d KiB, over the documented %d KiB", grew>>10, maxHeap>>10)
	}
	if g > streams+8 { // one reader per open stream at most
		t.Fatalf("%d more goroutines for %d streams", g, streams)
	}
}

// Frames of groups within the budget are never lost: a group that does not
// fit is stopped, the ones before it stay whole, and finished groups the
// cache holds make way for new ones.
func TestBadInputReceiveBudgetKeepsAcceptedFrames(t *testing.T) {
	const budget = 1 << 20
	lim := Limits{MaxReceiveBytes: budget}
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: lim}, true)
	ctx := testCtx(t)
	tc, _, sub := p.sessionSubscribe(t, ctx)
	b := p.sess.lim.Model.Budget
	recv := func() *broadcast.GroupConsumer {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}

	g0s := p.openGroup(t, ctx, sub.ID, 0)
	rawWrite(t, g0s, rawFrames(38, 16<<10)) // 608 KiB
	g0 := recv()
	eventually(t, func() bool { return b.Used() == 38*16<<10 })

	g1s := p.openGroup(t, ctx, sub.ID, 1)
	g1 := recv()
	// Over the budget with group 0: frames go until the session stops the stream.
	var werr error
	for i := 0; werr == nil && i < 1000; i++ {
		_, werr = g1s.Write(rawFrames(1, 16<<10))
	}
	if c, ok := peerCode(werr); !ok || c != uint32(broadcast.CodeBoundsExceeded) {
		t.Fatalf("group 1 past the budget: writes ended with %v, want STOP_SENDING BoundsExceeded", werr)
	}
	if err := g0s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := groupFrames(ctx, g0)
	if err != nil && !errors.Is(err, io.EOF) || len(got) != 38 {
		t.Fatalf("group 0, within the budget: %d frames, %v; want all 38", len(got), err)
	}
	got, err = groupFrames(ctx, g1)
	if c := broadcast.CodeOf(err); c != broadcast.CodeBoundsExceeded || len(got) == 0 || len(got) > 26 { // 1 MiB - 608 KiB
		t.Fatalf("group 1, past the budget: %d frames, %v; want those that fit, then BoundsExceeded", len(got), err)
	}

	// Groups 0 (finished) and 1 (ended) are cached; a new group evicts them.
	g2s := p.openGroup(t, ctx, sub.ID, 2)
	rawWrite(t, g2s, rawFrames(50, 16<<10)) // 800 KiB
	if err := g2s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := groupFrames(ctx, recv()); err != nil && !errors.Is(err, io.EOF) || len(got) != 50 {
		t.Fatalf("group 2 after the cache made way: %d frames, %v", len(got), err)
	}
	if b.Used() > budget {
		t.Fatalf("budget used %d of %d", b.Used(), budget)
	}
}

// A back-pressured subscription whose reader stops: the peer's group
// streams wait unread, at most MaxGroupsInFlight of them on goroutines of
// their own with a read buffer each, the rest in the transport.
func TestBadInputBackpressureBlockedStreams(t *testing.T) {
	const (
		streams  = 300
		inFlight = 16
		frame    = 8 << 10
	)
	// A stream accepted before back-pressure stopped the accept loop may
	// have no bytes yet, or part of its header (the connection's window is
	// full of others'): it waits with a goroutine, past HeaderTimeout
	// (awaitGroupHeader), as its group is on its way.
	lim := Limits{MaxGroupsInFlight: inFlight, Model: broadcast.Limits{CacheMaxGroups: 4}, HeaderTimeout: 300 * time.Millisecond}
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: lim}, true)
	ctx := testCtx(t)
	_, _, sub := p.sessionSubscribeWith(t, ctx, SubscribeOptions{Backpressure: true})
	before, goroutines := testutil.HeapAlloc(), runtime.NumGoroutine()
	data := rawFrames(1, frame)
	// One writer: a write the connection's flow control holds up blocks it,
	// until the end of the test resets every stream.
	wctx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var open []transport.SendStream
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range streams {
			gs, err := p.raw.OpenUniStream(wctx)
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, gs)
			mu.Unlock()
			hdr := rawCat(rawVarint(uint64(wire.UniGroup)), p.msg(t, &wire.Group{SubscribeID: sub.ID, Sequence: uint64(i)}))
			if _, err := gs.Write(rawCat(hdr, data)); err != nil || gs.Close() != nil {
				return
			}
		}
	}()
	defer func() {
		stop()
		mu.Lock()
		for _, gs := range open {
			gs.CancelWrite(0)
		}
		mu.Unlock()
		<-done
	}()
	p.sess.mu.Lock()
	s := p.sess.subs[sub.ID]
	p.sess.mu.Unlock()
	// 4 groups in the track, inFlight read ahead waiting for room on
	// goroutines, one stream waiting unread in the accept loop.
	// (A group whose reading began as the limit was reached still joins
	// the read-ahead groups: the turn is counted once a group is whole, so
	// that groups still arriving never hold up the room a reader frees.)
	var ahead int
	eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		ahead = s.ahead
		// The writer writes one stream at a time: at most the one it was
		// writing when the window filled waits for its header.
		return s.ahead >= inFlight && s.turn != nil && p.sess.unsorted.Load() <= 1
	})
	if ahead > inFlight+4 {
		t.Fatalf("%d groups read ahead, want MaxGroupsInFlight (%d) and at most the few whose reading had begun", ahead, inFlight)
	}
	grew := testutil.HeapAlloc() - before
	g := runtime.NumGoroutine() - goroutines
	t.Logf("%d streams of %d KiB unread: heap +%d KiB, goroutines +%d", streams, frame>>10, grew>>10, g)
	if g > ahead+6 { // the writer, a stream waiting for its header
		t.Fatalf("%d more goroutines, want at most one per group read ahead (%d), one waiting for its header and a few", g, ahead)
	}
	if maxHeap := int64(inFlight*24<<10 + streams*frame + 4<<20); grew > maxHeap { // waiters, the transport's buffers
		t.Fatalf("heap grew %d KiB, over %d KiB", grew>>10, maxHeap>>10)
	}
}
