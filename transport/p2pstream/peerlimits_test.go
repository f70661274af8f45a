package p2pstream

import (
	"bufio"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// controlAnswer reads the listener's first control message on a raw control
// stream: msgAccept, or the CLOSE code.
func controlAnswer(t *testing.T, s network.Stream) (typ uint64, code uint32) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(s)
	typ, err := wire.ReadVarint(br)
	if err != nil {
		t.Fatalf("no answer to a control stream: %v", err)
	}
	if typ == msgClose {
		if code, _, err = readCloseBody(br); err != nil {
			t.Fatal(err)
		}
	}
	return typ, code
}

// TestMaxSessionsPerPeer: a peer that opens many sessions while nobody
// accepts them gets MaxSessionsPerPeer (all waiting for Accept) and CLOSE
// BoundsExceeded for the rest, and the listener's goroutines and heap stay
// within the budget of that many sessions. Another peer is not affected,
// and a session that ends frees its slot.
func TestMaxSessionsPerPeer(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		a, b, c := newHost(t, kind), newHost(t, kind), newHost(t, kind)
		connect(t, a, b)
		connect(t, c, b)
		tb := newTransport(t, b)
		goroutines, heap := runtime.NumGoroutine(), testutil.HeapAlloc()
		const n = 100
		var kept []network.Stream
		refused := 0
		for range n {
			// Not rawStream: its cleanup would keep every refused stream
			// reachable, on the hostile side's account of the heap.
			s, err := a.NewStream(testCtx(t), b.ID(), ProtocolLite04)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(appendHeader(nil, kindControl, rawIDs.Add(1))); err != nil {
				t.Fatal(err)
			}
			switch typ, code := controlAnswer(t, s); {
			case typ == msgAccept:
				kept = append(kept, s)
				t.Cleanup(func() { _ = s.Reset() })
			case typ == msgClose && code == codeBoundsExceeded:
				refused++
				_ = s.Close()
			default:
				t.Fatalf("answer %d (code %d), want ACCEPT or CLOSE BoundsExceeded", typ, code)
			}
		}
		if len(kept) != DefaultMaxSessionsPerPeer || refused != n-DefaultMaxSessionsPerPeer {
			t.Fatalf("%d sessions accepted, %d refused; want %d and %d", len(kept), refused, DefaultMaxSessionsPerPeer, n-DefaultMaxSessionsPerPeer)
		}
		tb.mu.Lock()
		held, pending := len(tb.sessions), tb.peers[a.ID()].pending
		tb.mu.Unlock()
		if held != DefaultMaxSessionsPerPeer || pending != DefaultMaxSessionsPerPeer {
			t.Fatalf("listener holds %d sessions, %d pending; want %d of each", held, pending, DefaultMaxSessionsPerPeer)
		}
		// Budget for one hostile peer, per kept session: a control reader
		// and libp2p's per-stream goroutines (both hosts run in this
		// process), and 128 KiB of heap for both ends (16 KiB of them the
		// listener's pending-stream queues; over yamux each stream's
		// buffers). Measured: 20 to 40 KiB per session, with the refused
		// streams' leftovers. Uncapped, the peer could hold a session per
		// stream libp2p allows it (1024 with Limits), each with a waiting
		// handler goroutine.
		dg, dh := runtime.NumGoroutine()-goroutines, testutil.HeapAlloc()-heap
		t.Logf("%d sessions opened by one peer: %d kept, +%d goroutines, %+d KiB heap", n, len(kept), dg, dh>>10)
		if maxG := DefaultMaxSessionsPerPeer * 6; dg > maxG {
			t.Errorf("+%d goroutines, budget %d", dg, maxG)
		}
		if maxH := int64(DefaultMaxSessionsPerPeer) * 128 << 10; dh > maxH {
			t.Errorf("%+d KiB heap, budget %d KiB", dh>>10, maxH>>10)
		}

		// Another peer still gets a session, and ending one of a's frees a
		// slot for it.
		dialPair(t, newTransport(t, c), tb)
		_ = kept[0].Reset()
		waitFor(t, "the slot freed", func() bool {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			return tb.peers[a.ID()].sessions == DefaultMaxSessionsPerPeer-1
		})
		s := rawStream(t, a, b)
		if _, err := s.Write(appendHeader(nil, kindControl, rawIDs.Add(1))); err != nil {
			t.Fatal(err)
		}
		if typ, _ := controlAnswer(t, s); typ != msgAccept {
			t.Fatalf("answer %d in a freed slot, want ACCEPT", typ)
		}
	})
}

// TestMaxStreamsPerSession: streams the peer holds open in one session are
// capped; the next is reset with BoundsExceeded, and one that ends makes
// room.
func TestMaxStreamsPerSession(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ha, hb := newHost(t, kind), newHost(t, kind)
		connect(t, ha, hb)
		const limit = 16
		tb := New(hb, Config{Logger: testLogger(), MaxStreamsPerSession: limit})
		t.Cleanup(func() { _ = tb.Close() })
		d, a := dialPair(t, newTransport(t, ha), tb)
		// The listener accepts none of them: they wait in the pending queue,
		// which by default has room for far more.
		var open []*stream
		for range limit {
			st, err := d.OpenUniStream(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte{1}); err != nil {
				t.Fatal(err)
			}
			open = append(open, st.(*stream))
		}
		waitFor(t, "every stream delivered", func() bool { return len(a.uni) == limit })
		extra, err := d.OpenUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		se := streamErr(t, func() error { _, err := extra.Write([]byte{1}); return err })
		if se.Code != codeBoundsExceeded || !se.Remote {
			t.Fatalf("stream beyond the limit: %v, want a reset with BoundsExceeded by the peer", se)
		}
		// Accepting and ending one stream makes room for another.
		rs, err := a.AcceptUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		rs.CancelRead(0)
		waitFor(t, "the ended stream to be forgotten", func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.inbound == limit-1
		})
		more, err := d.OpenUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := more.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the new stream delivered", func() bool { return len(a.uni) == limit })
		for _, st := range open {
			_ = st.Close()
		}
	})
}

var waitFor = testutil.Eventually
