package actor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Config.Released runs once per Connect flight, after its callers have
// their answer: for a burst of ten callers sharing one dial, once, after
// the last of them returned; for a flight whose callers all gave up
// before the dial ended, once the dial has ended.
func TestConnectFlightReleased(t *testing.T) {
	nw := newNetwork(t)
	released := make(chan peer.ID, 16)
	var returned atomic.Int32
	var atRelease atomic.Int32 // callers returned when Released ran
	a := nw.addWith(t, func(c *Config) {
		c.Released = func(p peer.ID) {
			atRelease.Store(returned.Load())
			released <- p
		}
	})
	b := nw.add(t)
	release := make(chan struct{})
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := a.a.Connect(testCtx(t), peer.AddrInfo{ID: b.id}); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		})
	}
	eventually(t, "ten callers on the one dial", func() bool { return a.a.connectCallers(b.id) == 10 })
	if len(released) != 0 {
		t.Fatal("released while its callers wait")
	}
	close(release)
	wg.Wait()
	if p := awaitReleased(t, released); p != b.id {
		t.Fatalf("released %s, want %s", p, b.id)
	}
	// The last caller releases the flight as it leaves, before it counts
	// itself here: at most that one is not counted yet.
	if n := atRelease.Load(); n < 9 {
		t.Errorf("released when %d of 10 callers had returned", n)
	}

	// A flight whose only caller gave up is released when its dial ends.
	c := nw.add(t)
	hold := make(chan struct{})
	a.dialHook = func(ctx context.Context, _ peer.ID) error {
		select {
		case <-hold:
			return errors.New("unreachable")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	gone := make(chan error, 1)
	go func() {
		_, err := a.a.Connect(ctx, peer.AddrInfo{ID: c.id})
		gone <- err
	}()
	eventually(t, "the caller on the dial", func() bool { return a.a.connectCallers(c.id) == 1 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller: %v", err)
	}
	if len(released) != 0 {
		t.Fatal("released before its dial ended")
	}
	close(hold)
	if p := awaitReleased(t, released); p != c.id {
		t.Fatalf("released %s, want %s", p, c.id)
	}
}

func awaitReleased(t *testing.T, released <-chan peer.ID) peer.ID {
	t.Helper()
	select {
	case p := <-released:
		return p
	case <-time.After(15 * time.Second):
		t.Fatal("the flight was not released within 15 s")
		return ""
	}
}

// Connect callers racing Shutdown all return: those whose flight's request
// was taken get ErrShutdown from the actor, and a request still in the
// actor's queue when it stops is landed by the flight's shutdown hook.
func TestConnectBurstAtShutdown(t *testing.T) {
	nw := newNetwork(t)
	for round := range 10 {
		a := nw.add(t)
		a.dialHook = func(ctx context.Context, _ peer.ID) error {
			<-ctx.Done() // held until Shutdown cancels the dials
			return ctx.Err()
		}
		const peers, each = 20, 5
		done := make(chan error, peers*each)
		// Longer than the wait below: a caller must be released by the
		// shutdown, not by its own context.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := range peers * each {
			go func() {
				_, err := a.a.Connect(ctx, peer.AddrInfo{ID: peer.ID(fmt.Sprintf("peer-%d", i%peers))})
				done <- err
			}()
		}
		if err := a.a.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		for range peers * each {
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("round %d: a connect succeeded without a dial", round)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("round %d: a Connect caller still waits 15 s after Shutdown", round)
			}
		}
	}
}
