package moq

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// blockingAdmission blocks every admission until release is closed or its
// context ends, counting those running and the most that ever ran at once.
type blockingAdmission struct {
	release          chan struct{}
	tokens           chan struct{} // each lets one admission through
	running, maxSeen atomic.Int32
	entered          chan struct{} // one value per admission that started
	ended            chan error    // why each admission returned
}

func newBlockingAdmission() *blockingAdmission {
	return &blockingAdmission{release: make(chan struct{}), tokens: make(chan struct{}, 256), entered: make(chan struct{}, 256), ended: make(chan error, 256)}
}

func (b *blockingAdmission) admit(ctx context.Context, _ peer.ID) error {
	now := b.running.Add(1)
	defer b.running.Add(-1)
	for {
		old := b.maxSeen.Load()
		if now <= old || b.maxSeen.CompareAndSwap(old, now) {
			break
		}
	}
	b.entered <- struct{}{}
	var err error
	select {
	case <-b.release:
	case <-b.tokens:
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.ended <- err
	return err
}

func (b *blockingAdmission) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.entered:
		case <-testCtx(t).Done():
			t.Fatal("admission never started")
		}
	}
}

func closedWith(t *testing.T, c transport.Conn, code broadcast.Code) {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("refused connection stays open")
	}
	var ce *transport.ConnError
	if err := context.Cause(c.Context()); !errors.As(err, &ce) || ce.Code != uint32(code) {
		t.Fatalf("closed with %v, want code %d", err, code)
	}
}

// Close ends an admission that blocks: it runs on the server's context, not
// only the node's, so a hung admission cannot hang Close.
func TestServerCloseEndsBlockedAdmission(t *testing.T) {
	adm := newBlockingAdmission()
	n := newNode(t, WithAdmission(adm.admit))
	srv := serve(t, n, nil)
	c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	adm.waitEntered(t, 1)
	closed := make(chan struct{})
	go func() { _ = srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-testCtx(t).Done():
		t.Fatal("Close hangs on a blocked admission")
	}
	if err := <-adm.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("admission ended with %v, want its context cancelled", err)
	}
	closedWith(t, c, broadcast.CodeCancel)
}

// Shutdown ends pending admissions too, and returns without waiting its
// whole context for them.
func TestServerShutdownEndsBlockedAdmission(t *testing.T) {
	adm := newBlockingAdmission()
	n := newNode(t, WithAdmission(adm.admit))
	srv := serve(t, n, nil)
	c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	adm.waitEntered(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a blocked admission: %v", err)
	}
	closedWith(t, c, broadcast.CodeCancel)
}

// Server sessions share the node's admission slots: with two slots, no
// more than two admissions ever run at once, whatever the clients do.
func TestServerAdmissionSlots(t *testing.T) {
	adm := newBlockingAdmission()
	n := newNode(t, WithAdmission(adm.admit), WithPendingAdmissions(2, 4))
	srv := serve(t, n, func(s *Server) { s.MaxPendingPerIP = -1 })
	const clients = 6
	var wg sync.WaitGroup
	defer wg.Wait()
	for range clients {
		wg.Go(func() {
			c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
			if err != nil {
				t.Error(err)
				return
			}
			_ = c.CloseWithError(0, "")
		})
	}
	// Every client has reached the server (it counts them before it waits
	// for a slot); then admissions are let through one at a time, so any
	// admission not held back by the slots is running meanwhile.
	eventually(t, "every client at the server", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		l := srv.perIP[remoteIP("127.0.0.1:1")]
		return l != nil && l.pending == clients
	})
	adm.waitEntered(t, 2)
	for i := range clients {
		adm.tokens <- struct{}{}
		select {
		case <-adm.ended:
		case <-testCtx(t).Done():
			t.Fatalf("admission %d never ended", i)
		}
		if i < clients-2 {
			adm.waitEntered(t, 1)
		}
	}
	if m := adm.maxSeen.Load(); m != 2 {
		t.Fatalf("%d admissions ran at once, want 2", m)
	}
}

// One address may hold MaxPendingPerIP admissions: the next client is
// refused at once (HTTP 429 for WebSocket, BoundsExceeded for raw QUIC).
func TestServerPendingPerIP(t *testing.T) {
	adm := newBlockingAdmission()
	n := newNode(t, WithAdmission(adm.admit))
	srv := serve(t, n, func(s *Server) { s.MaxPendingPerIP = 2 })
	var conns []transport.Conn
	defer func() {
		for _, c := range conns {
			_ = c.CloseWithError(0, "")
		}
	}()
	for range 2 {
		c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	adm.waitEntered(t, 2)
	if _, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil); err == nil {
		t.Fatal("a third pending WebSocket client was accepted")
	}
	c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	closedWith(t, c, broadcast.CodeBoundsExceeded)
	if r := adm.running.Load(); r != 2 {
		t.Fatalf("%d admissions running, want 2", r)
	}
	close(adm.release)
}

// One address may hold MaxSessionsPerIP sessions; a flood of clients over
// it from 127.0.0.1 is refused without leaving sessions, goroutines or heap
// behind, and a slot freed by a leaving client is usable again.
func TestServerSessionsPerIP(t *testing.T) {
	const limit = 3
	n := newNode(t)
	srv := serve(t, n, func(s *Server) { s.MaxSessionsPerIP = limit })
	var held []transport.Conn
	for range limit {
		c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		clientSession(t, c)
		held = append(held, c)
	}
	eventually(t, "sessions registered", func() bool { all, _ := n.Sessions(testCtx(t)); return len(all) == limit })

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	const flood = 40
	for i := range flood {
		if i%2 == 0 {
			if c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil); err == nil {
				_ = c.CloseWithError(0, "")
				t.Fatalf("client %d over the per-address bound was accepted", limit+i+1)
			}
			continue
		}
		c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
		var ae *quic.ApplicationError
		switch {
		case errors.As(err, &ae) && ae.Remote && ae.ErrorCode == quic.ApplicationErrorCode(broadcast.CodeBoundsExceeded):
			// The refusal can come before the handshake is done with.
		case err != nil:
			t.Fatal(err)
		default:
			closedWith(t, c, broadcast.CodeBoundsExceeded)
		}
	}
	if all, _ := n.Sessions(testCtx(t)); len(all) != limit {
		t.Fatalf("%d sessions, want %d", len(all), limit)
	}
	// Refused clients leave nothing behind: goroutines return to where they
	// were (a few transient ones allowed) and the heap grows by less than
	// 1 MiB, against roughly 40 x the cost of a session if they had stayed.
	eventually(t, "goroutines settle", func() bool { return runtime.NumGoroutine() <= goroutines+8 })
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("after %d refused clients: heap %+d bytes, goroutines %d -> %d", flood, grew, goroutines, runtime.NumGoroutine())
	if grew > 1<<20 {
		t.Fatalf("heap grew by %d bytes after %d refused clients", grew, flood)
	}

	_ = held[0].CloseWithError(0, "")
	eventually(t, "the leaving client's slot is free", func() bool {
		c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
		if err != nil {
			return false
		}
		clientSession(t, c)
		return true
	})
}

// A P2P peer may hold WithPendingAdmissions' per-peer bound of pending
// admissions; its next connection is refused with BoundsExceeded.
func TestPendingAdmissionsPerPeer(t *testing.T) {
	adm := newBlockingAdmission()
	a := newNode(t, WithAdmission(adm.admit), WithPendingAdmissions(64, 2))
	b := newNode(t)
	if err := b.h.Connect(testCtx(t), a.info()); err != nil {
		t.Fatal(err)
	}
	conns := b.h.Network().ConnsToPeer(a.h.ID())
	if len(conns) == 0 {
		t.Fatal("no libp2p connection")
	}
	raddr := conns[0].RemoteMultiaddr()
	var open []*p2pquic.Conn
	defer func() {
		for _, c := range open {
			_ = c.CloseWithError(0, "")
		}
	}()
	for range 2 {
		c, err := b.quic.Dial(testCtx(t), a.h.ID(), raddr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	adm.waitEntered(t, 2)
	c, err := b.quic.Dial(testCtx(t), a.h.ID(), raddr)
	if err != nil {
		t.Fatal(err)
	}
	open = append(open, c)
	closedWith(t, c, broadcast.CodeBoundsExceeded)
	if r := adm.running.Load(); r != 2 {
		t.Fatalf("%d admissions running, want 2", r)
	}
	close(adm.release)
}

// An idle Server session costs the Server no goroutine of its own: its end
// is a callback, not a goroutine parked on it.
func TestServerParksNoGoroutinePerSession(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	const sessions = 5
	for range sessions {
		c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		clientSession(t, c)
	}
	eventually(t, "sessions registered", func() bool { all, _ := n.Sessions(testCtx(t)); return len(all) == sessions })
	eventually(t, "no Server goroutine left per session", func() bool {
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
		return !strings.Contains(buf.String(), "moq.(*Server).register")
	})
}
