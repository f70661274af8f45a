package session

import (
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A finite transfer with back-pressure end to end: the publisher writes
// 10 000 groups as fast as WaitRoom lets it, the subscriber reads the first
// 200 slowly; every frame arrives, and neither side buffers the transfer.
func TestBackpressureFiniteTransfer(t *testing.T) {
	forEach(t, []string{"moq-lite-04"}, func(t *testing.T, alpn string) { // the wire version plays no part
		const (
			groups  = 10000
			size    = 4000 // over the inline size: group streams of their own, MaxGroupsInFlight of them
			slow    = 200
			cache   = 64
			maxHeap = 12 << 20 // versus 40 MB for the whole transfer; measured 6-8 MiB (both sessions, QUIC buffers, 64 waiting streams)
		)
		lim := broadcast.Limits{CacheMaxGroups: cache}
		p := newPair(t, alpn, Config{}, Config{Limits: Limits{Model: lim}})
		lim.Backpressure = true
		b := broadcast.New(broadcast.Config{Limits: lim})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "file"})
		_, _ = p.origin.Publish("f", b.Consume())
		base := heapInUse()

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
		var peak uint64
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
			if err != nil || len(f) != size || binary.BigEndian.Uint64(f) != g.Sequence() || g.Sequence() >= groups {
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
				peak = max(peak, heapInUse())
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
		if grow := int64(peak) - int64(base); grow > maxHeap {
			t.Fatalf("heap grew %d bytes while the reader was slow, over %d", grow, maxHeap)
		}
		t.Logf("heap growth while slow: %d KiB", (int64(peak)-int64(base))>>10)
	})
}
