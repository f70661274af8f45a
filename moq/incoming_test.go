package moq

import (
	"fmt"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// iterate ranges over n.IncomingSessions on its own goroutine, sending each
// peer on the result, and breaks after limit sessions (0: at Shutdown).
func iterate(n *node, limit int) <-chan peer.ID {
	out := make(chan peer.ID, 16)
	go func() {
		defer close(out)
		seen := 0
		for s := range n.IncomingSessions() {
			out <- s.RemotePeer()
			if seen++; seen == limit {
				break
			}
		}
	}()
	return out
}

// recv receives from c, failing the test if nothing comes (or c does not
// close) in time; ok is false when c closed.
func recv[T any](t *testing.T, c <-chan T) (v T, ok bool) {
	t.Helper()
	select {
	case v, ok = <-c:
		return v, ok
	case <-testCtx(t).Done():
		t.Fatal("nothing received")
		return v, false
	}
}

// Concurrent iterations each see every session admitted while they run;
// they do not share them out.
func TestIncomingSessionsEveryIteration(t *testing.T) {
	for _, iterations := range []int{2, 10} {
		t.Run(fmt.Sprint(iterations), func(t *testing.T) {
			a := newNode(t, WithIncomingQueue(1))
			const peers = 3
			var got []<-chan peer.ID
			for range iterations {
				got = append(got, iterate(a, peers))
			}
			eventually(t, "iterations subscribed", func() bool { return a.listeners.Load() == int32(iterations) })
			want := connectPeers(t, a, peers)
			for i, c := range got {
				seen := map[peer.ID]bool{}
				for range peers {
					select {
					case p := <-c:
						if !want[p] || seen[p] {
							t.Fatalf("iteration %d: unexpected or repeated peer %s", i, p)
						}
						seen[p] = true
					case <-testCtx(t).Done():
						t.Fatalf("iteration %d saw %d of %d sessions", i, len(seen), peers)
					}
				}
				if p, ok := recv(t, c); ok { // the iteration broke
					t.Fatalf("iteration %d: a fourth session from %s", i, p)
				}
			}
			eventually(t, "iterations unsubscribed", func() bool { return a.listeners.Load() == 0 })
		})
	}
}

// An iteration started after peers connected yields their sessions first
// (the loop a program starts once it is up misses none of them), then the
// ones that come later; the sessions this node dialed are not among them.
func TestIncomingSessionsStartedLate(t *testing.T) {
	a := newNode(t)
	early := connectPeers(t, a, 2)
	out := newNode(t)
	a.connect(t, out) // dialed by a: not an incoming session
	got := iterate(a, 3)
	for range 2 {
		p, _ := recv(t, got)
		if !early[p] {
			t.Fatalf("got peer %s, want one of the early ones", p)
		}
		delete(early, p)
	}
	late := newNode(t)
	late.connect(t, a)
	if p, _ := recv(t, got); p != late.h.ID() {
		t.Fatalf("got peer %s, want the late one", p)
	}
}

// An iteration that stops reading holds up the admissions that find its
// queue full, each holding one admission slot, while another iteration
// receives them at once; when it ends (break), the waiting admission
// completes and later ones never wait: with no iteration left, nothing is
// queued.
func TestIncomingSessionsStalledIteration(t *testing.T) {
	a := newNode(t, WithIncomingQueue(1))
	release := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for range a.IncomingSessions() {
			<-release // the application stops reading
			break
		}
	}()
	reader := iterate(a, 0)
	eventually(t, "iterations subscribed", func() bool { return a.listeners.Load() == 2 })

	for i := range 3 { // yielded to the stalled one, queued for it, waiting
		c := newNode(t)
		c.connect(t, a)
		if p, _ := recv(t, reader); p != c.h.ID() {
			t.Fatalf("reader got %s, want peer %d", p, i)
		}
	}
	eventually(t, "the third admission waiting, holding a slot", func() bool { return len(a.admits) == 1 })
	close(release)
	recv(t, ended)
	eventually(t, "the waiting admission completed", func() bool { return len(a.admits) == 0 && a.listeners.Load() == 1 })

	d := newNode(t)
	d.connect(t, a)
	if p, _ := recv(t, reader); p != d.h.ID() {
		t.Fatalf("reader got %s, want the fourth peer", p)
	}
	eventually(t, "all four sessions", func() bool { l, _ := a.Sessions(testCtx(t)); return len(l) == 4 })
}

// An iteration that stops reading holds up at most the node's admission
// slots: with 2 slots and a queue of 1, six peers connecting leave exactly
// four sessions registered (one yielded, one queued, two admissions waiting,
// each a goroutine) and the rest in the transport's accept queue. When the
// iteration ends, every peer is admitted.
func TestIncomingSessionsStalledIterationBounded(t *testing.T) {
	a := newNode(t, WithIncomingQueue(1), WithPendingAdmissions(2, 4))
	release := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for range a.IncomingSessions() {
			<-release
			break
		}
	}()
	eventually(t, "iteration subscribed", func() bool { return a.listeners.Load() == 1 })
	const peers = 6
	var wg sync.WaitGroup
	for range peers {
		c := newNode(t)
		wg.Go(func() { _, _ = c.Connect(testCtx(t), a.info()) })
	}
	const announce = "actor.(*Actor).announce"
	eventually(t, "both slots held by admissions waiting for the iteration", func() bool {
		return len(a.admits) == 2 && parkedIn(announce) == 2
	})
	if l, _ := a.Sessions(testCtx(t)); len(l) != 4 {
		t.Fatalf("%d sessions registered while the iteration stalls; want 4 (yielded, queued, two waiting)", len(l))
	}
	close(release)
	recv(t, ended)
	wg.Wait()
	eventually(t, "every peer admitted, nothing waiting", func() bool {
		l, _ := a.Sessions(testCtx(t))
		return len(l) == peers && len(a.admits) == 0 && runningIn(announce) == 0
	})
}
