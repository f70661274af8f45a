package websocket

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
)

func mustWrite(t testing.TB, w io.Writer, p []byte) {
	t.Helper()
	if _, err := w.Write(p); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func mustReadAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func TestNegotiatedProtocol(t *testing.T) {
	forFramings(t, func(t *testing.T, fr Framing, app string) {
		scfg, ccfg := configsFor(fr, app)
		c, s := dialPair(t, scfg, ccfg)
		for _, conn := range []*Conn{c, s} {
			if conn.Framing() != fr || conn.Protocol() != app {
				t.Errorf("negotiated %s/%q, want %s/%q", conn.Framing(), conn.Protocol(), fr, app)
			}
		}
		if c.Subprotocol() != s.Subprotocol() {
			t.Errorf("subprotocols differ: %q vs %q", c.Subprotocol(), s.Subprotocol())
		}
	})
}

// TestStreamsBothWays: bidi and uni streams opened by either side carry
// data and FIN in both directions.
func TestStreamsBothWays(t *testing.T) {
	forFramings(t, func(t *testing.T, fr Framing, app string) {
		scfg, ccfg := configsFor(fr, app)
		c, s := dialPair(t, scfg, ccfg)
		for _, dir := range []struct {
			name           string
			opener, accept *Conn
		}{{"client opens", c, s}, {"server opens", s, c}} {
			t.Run(dir.name, func(t *testing.T) {
				ctx := testCtx(t)
				// bidi: request, response, FIN each way
				st, err := dir.opener.OpenStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, st, []byte("ping"))
				peer, err := dir.accept.AcceptStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 4)
				if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
					t.Fatalf("read %q, %v", buf, err)
				}
				mustWrite(t, peer, []byte("pong"))
				_ = peer.Close()
				if got := mustReadAll(t, st); string(got) != "pong" {
					t.Fatalf("response %q", got)
				}
				_ = st.Close()
				if got := mustReadAll(t, peer); len(got) != 0 {
					t.Fatalf("after FIN: %q", got)
				}
				// uni
				us, err := dir.opener.OpenUniStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, us, []byte("one way"))
				_ = us.Close()
				ur, err := dir.accept.AcceptUniStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := mustReadAll(t, ur); string(got) != "one way" {
					t.Fatalf("uni %q", got)
				}
				if err := us.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				if _, err := us.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
					t.Fatalf("write after Close: %v", err)
				}
			})
		}
		// Every stream finished both ways is forgotten on both sides.
		for _, conn := range []*Conn{c, s} {
			eventually(t, "streams forgotten", func() bool {
				conn.mu.Lock()
				defer conn.mu.Unlock()
				return len(conn.streams) == 0
			})
		}
	})
}

var eventually = testutil.Eventually

// TestLargeTransfer sends 10 MB each way at once, in 100 KB writes, and
// checks the bytes with SHA-256.
func TestLargeTransfer(t *testing.T) {
	forFramings(t, func(t *testing.T, fr Framing, app string) {
		scfg, ccfg := configsFor(fr, app)
		c, s := dialPair(t, scfg, ccfg)
		const total, chunk = 10_000_000, 100_000 // 10 MB in 100 KB writes
		var wg sync.WaitGroup
		send := func(from *Conn, seed uint64) [32]byte {
			ctx := testCtx(t)
			st, err := from.OpenUniStream(ctx)
			if err != nil {
				t.Error(err)
				return [32]byte{}
			}
			h := sha256.New()
			rng := rand.New(rand.NewPCG(seed, seed))
			p := make([]byte, chunk)
			for sent := 0; sent < total; sent += chunk {
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				h.Write(p)
				if _, err := st.Write(p); err != nil {
					t.Errorf("write at %d: %v", sent, err)
					return [32]byte{}
				}
			}
			_ = st.Close()
			return [32]byte(h.Sum(nil))
		}
		recv := func(at *Conn) ([32]byte, int64) {
			rs, err := at.AcceptUniStream(testCtx(t))
			if err != nil {
				t.Error(err)
				return [32]byte{}, 0
			}
			h := sha256.New()
			n, err := io.Copy(h, rs)
			if err != nil {
				t.Error(err)
			}
			return [32]byte(h.Sum(nil)), n
		}
		var sentC, sentS, gotC, gotS [32]byte
		var nC, nS int64
		wg.Add(4)
		go func() { defer wg.Done(); sentC = send(c, 1) }()
		go func() { defer wg.Done(); sentS = send(s, 2) }()
		go func() { defer wg.Done(); gotS, nS = recv(s) }()
		go func() { defer wg.Done(); gotC, nC = recv(c) }()
		wg.Wait()
		if nS != total || nC != total || gotS != sentC || gotC != sentS {
			t.Fatalf("client→server %d bytes, hash ok %v; server→client %d bytes, hash ok %v", nS, gotS == sentC, nC, gotC == sentS)
		}
		// The counters see the 10 MB each way, give or take the framing
		// (under 1 %). A message is counted as sent once its write returned,
		// which may be after the peer read it.
		testutil.Eventually(t, "the last messages counted", func() bool {
			return c.Stats().BytesSent >= total && s.Stats().BytesSent >= total
		})
		for name, st := range map[string]transport.Stats{"client": c.Stats(), "server": s.Stats()} {
			if st.Transport != "websocket" || st.BytesSent < total || st.BytesSent > total*101/100 ||
				st.BytesReceived < total || st.BytesReceived > total*101/100 {
				t.Errorf("%s stats %+v: want %d bytes each way, within 1 %%", name, st, total)
			}
		}
	})
}

// TestResetAndStopSending: codes of RESET_STREAM and STOP_SENDING arrive
// as StreamErrors on the other side, and locally with Remote false.
func TestResetAndStopSending(t *testing.T) {
	forFramings(t, func(t *testing.T, fr Framing, app string) {
		scfg, ccfg := configsFor(fr, app)
		c, s := dialPair(t, scfg, ccfg)
		ctx := testCtx(t)

		// The client resets a uni stream: the server's Read fails with it.
		us, _ := c.OpenUniStream(ctx)
		mustWrite(t, us, []byte("partial"))
		us.CancelWrite(7)
		var se *transport.StreamError
		if _, err := us.Write([]byte("x")); !errors.As(err, &se) || *se != (transport.StreamError{Code: 7}) {
			t.Fatalf("local write after CancelWrite: %v", err)
		}
		rs, err := s.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(rs)
		if !errors.As(err, &se) || *se != (transport.StreamError{Code: 7, Remote: true}) {
			t.Fatalf("peer read after reset: %v", err)
		}

		// The server stops reading a client bidi stream: the client's
		// writes fail with the code, its read direction still works.
		bs, _ := c.OpenStream(ctx)
		mustWrite(t, bs, []byte("hello"))
		peer, err := s.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		peer.CancelRead(9)
		if _, err := peer.Read(make([]byte, 1)); !errors.As(err, &se) || *se != (transport.StreamError{Code: 9}) {
			t.Fatalf("local read after CancelRead: %v", err)
		}
		eventually(t, "STOP_SENDING to reach the writer", func() bool {
			_, err := bs.Write([]byte("more"))
			if errors.As(err, &se) {
				if *se != (transport.StreamError{Code: 9, Remote: true}) {
					t.Fatalf("write after STOP_SENDING: %v", err)
				}
				return true
			}
			if err != nil {
				t.Fatalf("write after STOP_SENDING: %v", err)
			}
			return false
		})
		mustWrite(t, peer, []byte("still here"))
		_ = peer.Close()
		if got := mustReadAll(t, bs); string(got) != "still here" {
			t.Fatalf("other direction: %q", got)
		}
		// The server's read side ends once the client's reset (answering
		// STOP_SENDING) arrives, so both sides forget the stream.
		for _, conn := range []*Conn{c, s} {
			eventually(t, "streams forgotten", func() bool {
				conn.mu.Lock()
				defer conn.mu.Unlock()
				return len(conn.streams) == 0
			})
		}
	})
}

// TestCloseWithError: the code and reason reach the peer as a remote
// ConnError; blocked calls on both sides return the cause.
func TestCloseWithError(t *testing.T) {
	forFramings(t, func(t *testing.T, fr Framing, app string) {
		scfg, ccfg := configsFor(fr, app)
		c, s := dialPair(t, scfg, ccfg)
		ctx := testCtx(t)
		st, _ := c.OpenStream(ctx)
		mustWrite(t, st, []byte("x"))
		peer, err := s.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = peer.Read(make([]byte, 1))
		blocked := make(chan error, 2)
		go func() { _, err := peer.Read(make([]byte, 1)); blocked <- err }()
		go func() { _, err := s.AcceptUniStream(context.Background()); blocked <- err }()

		if err := c.CloseWithError(42, "bye now"); err != nil {
			t.Fatal(err)
		}
		want := transport.ConnError{Code: 42, Reason: "bye now", Remote: true}
		var ce *transport.ConnError
		if err := waitDone(t, s); !errors.As(err, &ce) || *ce != want {
			t.Fatalf("server cause %v, want %v", err, &want)
		}
		if err := context.Cause(c.Context()); !errors.As(err, &ce) || *ce != (transport.ConnError{Code: 42, Reason: "bye now"}) {
			t.Fatalf("client cause %v", err)
		}
		for range 2 {
			if err := <-blocked; !errors.As(err, &ce) || *ce != want {
				t.Fatalf("blocked call returned %v", err)
			}
		}
		if _, err := c.OpenStream(ctx); !errors.As(err, &ce) {
			t.Fatalf("open after close: %v", err)
		}
		if _, err := st.Write([]byte("x")); !errors.As(err, &ce) {
			t.Fatalf("write after close: %v", err)
		}
		if err := c.CloseWithError(1, "again"); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}

// TestPeerWebSocketClose: a WebSocket close without a close frame ends the
// connection with a remote ConnError.
func TestPeerWebSocketClose(t *testing.T) {
	ts := newTestServer(t, nil)
	rc := dialRaw(t, ts.url(), "webtransport")
	s := ts.next(t)
	_ = rc.ws.Close(1001, "tab closed")
	var ce *transport.ConnError
	if err := waitDone(t, s); !errors.As(err, &ce) || !ce.Remote || ce.Code != 0 {
		t.Fatalf("cause %v", err)
	}
}

// TestConnLost: a TCP connection that just ends is ErrConnLost.
func TestConnLost(t *testing.T) {
	ts := newTestServer(t, nil)
	rc := dialRaw(t, ts.url(), "qmux-00")
	s := ts.next(t)
	_ = rc.ws.CloseNow()
	if err := waitDone(t, s); !errors.Is(err, ErrConnLost) {
		t.Fatalf("cause %v", err)
	}
}

func TestAddrs(t *testing.T) {
	c, s := dialPair(t, nil, nil)
	for _, a := range []net.Addr{c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr()} {
		ta, ok := a.(*net.TCPAddr)
		if !ok || !ta.IP.IsLoopback() {
			t.Fatalf("address %v (%T)", a, a)
		}
	}
	if c.LocalAddr().String() != s.RemoteAddr().String() || c.RemoteAddr().String() != s.LocalAddr().String() {
		t.Fatalf("client %v→%v, server %v←%v", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}
}

// TestDialContextOnlyBoundsHandshake: cancelling Dial's context later does
// not touch the connection.
func TestDialContextOnlyBoundsHandshake(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Dial(ctx, ts.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	s := ts.next(t)
	// Whatever the cancel starts (context.AfterFunc callbacks run on fresh
	// goroutines) must have finished before the checks below.
	before := goleak.IgnoreCurrent()
	cancel()
	if err := goleak.Find(before); err != nil {
		t.Fatalf("cancelling Dial's context left work running: %v", err)
	}
	st, err := c.OpenUniStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, st, []byte("alive"))
	_ = st.Close()
	rs, err := s.AcceptUniStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustReadAll(t, rs); !bytes.Equal(got, []byte("alive")) {
		t.Fatalf("got %q", got)
	}
	if err := context.Cause(c.Context()); err != nil {
		t.Fatalf("the connection ended after Dial's context was cancelled: %v", err)
	}
}
