package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// A finite transfer with back-pressure end to end: the publisher writes
// groups as fast as WaitRoom lets it, the subscriber reads the first ones
// slowly; every frame arrives, and neither side buffers the transfer: at
// most, on each side, a cache and MaxGroupsInFlight groups (in flight, or
// read ahead), plus the transport's windows.
func TestBackpressureFiniteTransfer(t *testing.T) {
	const cache = 64
	for _, tt := range []struct {
		name               string
		groups, size, slow int
		maxHeap            int64
	}{
		// Over the inline size: group streams of their own. Measured 6-8 MiB.
		{"small groups", 10000, 4000, 200, 12 << 20}, // 40 MB sent
		// Groups much larger than a stream's read buffer. Bound: on each side
		// a cache and MaxGroupsInFlight groups in flight, plus the groups
		// read ahead, plus the transport's windows. Measured 55-75 MB.
		{"200 kB groups", 800, 200000, 400, 5*cache*200000 + 16<<20}, // 160 MB sent
	} {
		// The end comes FinishGrace after the last group arrived. A loaded
		// machine (a CI runner under -race) can stall the publisher's
		// window updates beyond the 250 ms default, and the end would then
		// be declared with groups still to come: give it 2 s.
		t.Run(tt.name, func(t *testing.T) {
			testFiniteTransfer(t, tt.groups, tt.size, tt.slow, cache, tt.maxHeap, 2*time.Second)
		})
	}
}

// The publisher's FIN can come while the accept loop has group streams in
// hand that it has not counted yet, and more waiting behind them (a loaded
// machine can hold it there past FinishGrace; so can back-pressure): the
// end waits for the loop to take them, and no group is lost.
func TestFinishWaitsForTheAcceptLoop(t *testing.T) {
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	uniAccepted = func() { once.Do(func() { close(held); <-release }) }
	t.Cleanup(func() { uniAccepted = func() {} }) // after the peer's cleanup: its session is gone
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: Limits{FinishGrace: 20 * time.Millisecond}}, true)
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // before the peer's cleanup, which waits for the loop
	ctx := testCtx(t)
	tc, st, sub := p.sessionSubscribe(t, ctx)
	const groups = 3
	for seq := range uint64(groups) {
		gs := p.openGroup(t, ctx, sub.ID, seq)
		rawWrite(t, gs, rawFrame(fmt.Sprint(seq)))
		if err := gs.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select { // the loop took the first stream and is held before counting it
	case <-held:
	case <-ctx.Done():
		t.Fatal("the accept loop took no group stream")
	}
	_ = st.Close() // the publisher's FIN: no group after these
	p.sess.mu.Lock()
	s := p.sess.subs[sub.ID]
	p.sess.mu.Unlock()
	// The end now waits for the loop (or, wrongly, came without the groups).
	eventually(t, func() bool { return p.sess.uniIdle.waiting.Load() || s.ctx.Err() != nil })
	free()
	for range groups {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("a group lost: %v", err)
		}
		if f, err := groupFrames(ctx, g); err != nil && !errors.Is(err, io.EOF) || len(f) != 1 || f[0] != fmt.Sprint(g.Sequence()) {
			t.Fatalf("group %d: %q, %v", g.Sequence(), f, err)
		}
	}
	if _, err := tc.RecvGroup(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after every group: %v, want the end", err)
	}
}

func testFiniteTransfer(t *testing.T, groups, size, slow, cache int, maxHeap int64, grace time.Duration) {
	forEach(t, []string{"moq-lite-04"}, func(t *testing.T, alpn string) { // the wire version plays no part
		lim := broadcast.Limits{CacheMaxGroups: cache}
		p := newPair(t, alpn, Config{}, Config{Limits: Limits{Model: lim, FinishGrace: grace}})
		lim.Backpressure = true
		b := broadcast.New(broadcast.Config{Limits: lim})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "file"})
		_, _ = p.origin.Publish("f", b.Consume())
		base := testutil.HeapAlloc()

		tc, err := p.sub.Subscribe(testCtx(t), "f", "file", SubscribeOptions{Backpressure: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		pubErr := make(chan error, 1)
		go func() {
			ctx := testutil.Context(t, 2*time.Minute) // the whole transfer, under -race too
			select {                                  // the publisher's session consumes the track: the transfer can start
			case <-tp.Used():
			case <-ctx.Done():
				pubErr <- ctx.Err()
				return
			}
			for i := range groups {
				if err := tp.WaitRoom(ctx); err != nil {
					pubErr <- err
					return
				}
				payload := make([]byte, size)
				binary.BigEndian.PutUint64(payload, uint64(i))
				if err := tp.WriteFrame(payload); err != nil {
					pubErr <- err
					return
				}
			}
			pubErr <- tp.Finish()
		}()

		seen := make([]bool, groups)
		var peak int64
		for n := 0; ; n++ {
			g, err := tc.RecvGroup(testCtx(t))
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				select {
				case perr := <-pubErr:
					t.Fatalf("after %d groups: %v (publisher: %v)", n, err, perr)
				default:
					t.Fatalf("after %d groups: %v", n, err)
				}
			}
			f, err := g.ReadFrame(testCtx(t))
			if err != nil || len(f) != size || binary.BigEndian.Uint64(f) != g.Sequence() || g.Sequence() >= uint64(groups) {
				t.Fatalf("group %d: %d bytes, %v", g.Sequence(), len(f), err)
			}
			if seen[g.Sequence()] {
				t.Fatalf("group %d twice", g.Sequence())
			}
			seen[g.Sequence()] = true
			if n < slow {
				time.Sleep(2 * time.Millisecond) // a slow reader: the publisher must wait for it
			}
			if n == slow/2 || n == slow-1 { // the publisher has been held back for a while
				peak = max(peak, testutil.HeapAlloc())
			}
		}
		if err := <-pubErr; err != nil {
			t.Fatalf("publisher: %v", err)
		}
		for i, ok := range seen {
			if !ok {
				t.Fatalf("group %d never arrived", i)
			}
		}
		if grow := peak - base; grow > maxHeap {
			t.Fatalf("heap grew %d bytes while the reader was slow, over %d", grow, maxHeap)
		}
		t.Logf("heap growth while slow: %d KiB", (peak-base)>>10)
	})
}

// A group that went into a back-pressured track as it arrived (its reader
// kept up) can still be arriving when the track fills: its reader waits on
// it, and its bytes may wait on the connection's flow-control window. Later
// group streams are then read ahead past MaxGroupsInFlight rather than left
// unread in that window (under load that stalled a transfer for good).
func TestBackpressureStreamingGroupKeepsReading(t *testing.T) {
	const inFlight, later = 1, 8
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: Limits{
		Model: broadcast.Limits{CacheMaxGroups: 2}, MaxGroupsInFlight: inFlight,
	}}, true)
	ctx := testCtx(t)
	tc, _, sub := p.sessionSubscribeWith(t, ctx, SubscribeOptions{Backpressure: true})
	g0 := p.openGroup(t, ctx, sub.ID, 0)
	rawWrite(t, g0, rawCat(rawVarint(8), []byte("half"))) // half a frame
	g, err := tc.RecvGroup(ctx)
	if err != nil || g.Sequence() != 0 {
		t.Fatalf("the group streaming in: %v", err)
	}
	for seq := uint64(1); seq <= later; seq++ {
		gs := p.openGroup(t, ctx, sub.ID, seq)
		rawWrite(t, gs, rawFrame(fmt.Sprint(seq)))
		_ = gs.Close()
	}
	p.sess.mu.Lock()
	s := p.sess.subs[sub.ID]
	p.sess.mu.Unlock()
	eventually(t, func() bool { // the track is full: groups read ahead, past MaxGroupsInFlight
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.ahead > inFlight
	})
	rawWrite(t, g0, []byte("full"))
	_ = g0.Close()
	if f, err := g.ReadFrame(ctx); err != nil || string(f) != "halffull" {
		t.Fatalf("group 0: %q, %v", f, err)
	}
	for range later {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("a group lost: %v", err)
		}
		if f, err := g.ReadFrame(ctx); err != nil || string(f) != fmt.Sprint(g.Sequence()) {
			t.Fatalf("group %d: %q, %v", g.Sequence(), f, err)
		}
	}
}
