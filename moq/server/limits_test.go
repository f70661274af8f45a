package server

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

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
	adm := testutil.NewBlockingAdmission()
	n := newNode(t, moq.WithAdmission(adm.Admit))
	srv := serve(t, n, nil)
	c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	clientSession(t, c) // its lite-05 SETUP comes before admission (the path routes it)
	adm.WaitEntered(t, testCtx(t), 1)
	closed := make(chan struct{})
	go func() { _ = srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-testCtx(t).Done():
		t.Fatal("Close hangs on a blocked admission")
	}
	if err := <-adm.Ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("admission ended with %v, want its context cancelled", err)
	}
	closedWith(t, c, broadcast.CodeCancel)
}

// Shutdown ends pending admissions too, and returns without waiting its
// whole context for them.
func TestServerShutdownEndsBlockedAdmission(t *testing.T) {
	adm := testutil.NewBlockingAdmission()
	n := newNode(t, moq.WithAdmission(adm.Admit))
	srv := serve(t, n, nil)
	c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	adm.WaitEntered(t, testCtx(t), 1)
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
	adm := testutil.NewBlockingAdmission()
	n := newNode(t, moq.WithAdmission(adm.Admit), moq.WithPendingAdmissions(2, 4))
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
		l := srv.perIP[ClientAddr("127.0.0.1:1")]
		return l != nil && l.pending == clients
	})
	adm.WaitEntered(t, testCtx(t), 2)
	for i := range clients {
		adm.Tokens <- struct{}{}
		select {
		case <-adm.Ended:
		case <-testCtx(t).Done():
			t.Fatalf("admission %d never ended", i)
		}
		if i < clients-2 {
			adm.WaitEntered(t, testCtx(t), 1)
		}
	}
	if m := adm.MaxSeen.Load(); m != 2 {
		t.Fatalf("%d admissions ran at once, want 2", m)
	}
}

// One address may hold MaxPendingPerIP admissions: the next client is
// refused at once (HTTP 429 for WebSocket, BoundsExceeded for raw QUIC).
func TestServerPendingPerIP(t *testing.T) {
	adm := testutil.NewBlockingAdmission()
	n := newNode(t, moq.WithAdmission(adm.Admit))
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
	adm.WaitEntered(t, testCtx(t), 2)
	if _, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil); err == nil {
		t.Fatal("a third pending WebSocket client was accepted")
	}
	c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	closedWith(t, c, broadcast.CodeBoundsExceeded)
	if r := adm.Running.Load(); r != 2 {
		t.Fatalf("%d admissions running, want 2", r)
	}
	close(adm.Release)
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
		switch {
		case err != nil && broadcast.CodeOf(err) == broadcast.CodeBoundsExceeded:
			// The refusal can come before the handshake is done with:
			// then it is the dial's error.
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
		return !strings.Contains(buf.String(), "server.(*Server).register")
	})
}

// A node that never iterates admits 100 sessions (moql:// clients of its
// Server) without anything waiting: with a single admission slot, each
// client gets through only if the one before gave the slot back.
func TestIncomingSessionsNeverIterated(t *testing.T) {
	const clients = 100
	n := newNode(t, moq.WithPendingAdmissions(1, 1))
	srv := serve(t, n, func(s *Server) { s.MaxSessionsPerIP = clients })
	for range clients {
		c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		clientSession(t, c)
	}
	eventually(t, "every session admitted", func() bool { l, _ := n.Sessions(testCtx(t)); return len(l) == clients })
	slot, err := n.Admission(testCtx(t))
	if err != nil {
		t.Fatalf("the node's one admission slot is still held: %v", err)
	}
	slot.Release()
}

// stalledIteration runs an IncomingSessions iteration that takes one
// session and then stops reading until the returned function is called
// (which waits for the iteration to end).
func stalledIteration(t *testing.T, n *moq.Moq) (resume func()) {
	t.Helper()
	release, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		for range n.IncomingSessions() {
			<-release
			break
		}
	}()
	iterating(t, 1)
	return func() {
		close(release)
		select {
		case <-ended:
		case <-testCtx(t).Done():
			t.Fatal("the iteration never ended")
		}
	}
}

// announce is where a registration waits for an iteration's full queue.
const announce = "actor.(*Actor).announce"

// A Server's client holds its admission slot until its session has reached
// every IncomingSessions iteration, as a P2P peer does: with 2 slots and a
// queue of 1, six clients of a stalled iteration leave exactly four
// sessions registered (one yielded, one queued, two waiting with the slots)
// and the rest in the QUIC listener's queue, not in goroutines of their
// own. When the iteration ends, every client is admitted.
func TestServerStalledIterationBounded(t *testing.T) {
	n := newNode(t, moq.WithIncomingQueue(1), moq.WithPendingAdmissions(2, 4))
	srv := serve(t, n, func(s *Server) { s.MaxPendingPerIP = -1 })
	resume := stalledIteration(t, n)
	const clients = 6
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
			if err != nil {
				t.Error(err)
				return
			}
			clientSession(t, c)
		})
	}
	// The accept loop waits for a slot: both are held by sessions waiting
	// for the iteration.
	eventually(t, "accepting paused, both slots held by sessions waiting for the iteration", func() bool {
		return parkedIn(announce) == 2 && parkedIn("moq.(*Moq).Admission") == 1
	})
	if l, _ := n.Sessions(testCtx(t)); len(l) != 4 {
		t.Fatalf("%d sessions registered while the iteration stalls; want 4 (yielded, queued, two waiting)", len(l))
	}
	resume()
	wg.Wait()
	eventually(t, "every client admitted, nothing waiting", func() bool {
		l, _ := n.Sessions(testCtx(t))
		return len(l) == clients && testutil.Goroutines(announce, false) == 0
	})
}

// Shutdown ends the wait for a stalled iteration: a session waiting to be
// handed to it is registered all the same, told to go away with the
// others, and Shutdown returns once the clients left, not at its deadline.
func TestServerShutdownEndsWaitForIteration(t *testing.T) {
	n := newNode(t, moq.WithIncomingQueue(1))
	srv := serve(t, n, nil)
	resume := stalledIteration(t, n)
	defer resume()
	const clients = 3 // one yielded, one queued, one waiting
	var sessions []*session.Session
	for range clients {
		c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := clientSession(t, c)
		sessions = append(sessions, s)
		go func() { // a client leaves when asked to
			select {
			case <-s.GoingAway():
				_ = s.Close(broadcast.CodeCancel, "bye")
			case <-s.Done():
			}
		}()
	}
	eventually(t, "a session waiting for the iteration", func() bool { return parkedIn(announce) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown waited for the stalled iteration: %v", err)
	}
	for i, s := range sessions {
		select {
		case <-s.GoingAway():
		default:
			t.Fatalf("client %d got no GOAWAY", i)
		}
	}
}
