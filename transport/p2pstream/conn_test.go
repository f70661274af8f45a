package p2pstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
)

func TestDialAccept(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		d, a := setup(t, kind)
		if d.RemotePeer() != a.lconn.LocalPeer() || a.RemotePeer() != d.lconn.LocalPeer() {
			t.Fatalf("peers: dialer sees %s, listener sees %s", d.RemotePeer(), a.RemotePeer())
		}
		for _, c := range []*Conn{d, a} {
			if c.Protocol() != "moq-lite-05" {
				t.Errorf("Protocol() = %q, want moq-lite-05", c.Protocol())
			}
			if c.Limited() {
				t.Error("a direct connection reports Limited")
			}
			if c.Context().Err() != nil {
				t.Error("fresh session already done")
			}
			if !strings.HasSuffix(c.RemoteAddr().String(), "/p2p/"+c.RemotePeer().String()) || c.LocalAddr().Network() != "libp2p" {
				t.Errorf("addresses %v → %v", c.LocalAddr(), c.RemoteAddr())
			}
		}
		if !strings.Contains(d.RemoteAddr().String(), "/"+kind) {
			t.Errorf("RemoteAddr %v is not a %s address", d.RemoteAddr(), kind)
		}
	})
}

// echo serves one bidi stream: everything read is written back, then FIN.
func echo(t *testing.T, c *Conn) {
	st, err := c.AcceptStream(testCtx(t))
	if err != nil {
		t.Error(err)
		return
	}
	if _, err := io.Copy(st, st); err != nil {
		t.Error(err)
	}
	if err := st.Close(); err != nil {
		t.Error(err)
	}
}

func TestBidiEcho(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		d, a := setup(t, kind)
		for _, dir := range []struct {
			name         string
			opener, peer *Conn
		}{{"dialer opens", d, a}, {"listener opens", a, d}} {
			t.Run(dir.name, func(t *testing.T) {
				done := make(chan struct{})
				go func() { defer close(done); echo(t, dir.peer) }()
				st, err := dir.opener.OpenStream(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				want := bytes.Repeat([]byte("moq over libp2p "), 10000) // 160 KB: beyond one window
				go func() {
					_, _ = st.Write(want)
					_ = st.Close()
				}()
				got, err := io.ReadAll(st)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("echo: %d bytes, %v; want %d bytes", len(got), err, len(want))
				}
				<-done
				waitStreams(t, dir.opener, 0)
				waitStreams(t, dir.peer, 0)
			})
		}
	})
}

// waitStreams waits until c tracks n live streams: finished streams must be
// freed (their libp2p streams closed) without the session ending.
func waitStreams(t *testing.T, c *Conn, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d streams tracked", n), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.streams) == n
	})
}

func TestUniDelivery(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		d, a := setup(t, kind)
		want := make([]byte, 1<<20)
		for i := range want {
			want[i] = byte(i * 7)
		}
		st, err := d.OpenUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if _, err := st.Write(want); err != nil {
				t.Error(err)
			}
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		}()
		rs, err := a.AcceptUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rs)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, %v; want %d", len(got), err, len(want))
		}
		waitStreams(t, d, 0)
		waitStreams(t, a, 0)
	})
}

// streamErr waits for op to fail and returns its *transport.StreamError.
func streamErr(t *testing.T, op func() error) *transport.StreamError {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		err := op()
		if err == nil {
			continue
		}
		var se *transport.StreamError
		if !errors.As(err, &se) {
			t.Fatalf("error %T %v, want a *transport.StreamError", err, err)
		}
		return se
	}
	t.Fatal("no error")
	return nil
}

func TestResetCodes(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		d, a := setup(t, kind)

		// The sender abandons a uni stream: the reader sees its code.
		st, _ := d.OpenUniStream(testCtx(t))
		_, _ = st.Write([]byte("partial"))
		rs, err := a.AcceptUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		st.CancelWrite(13)
		se := streamErr(t, func() error { _, err := rs.Read(make([]byte, 100)); return err })
		if se.Code != 13 || !se.Remote {
			t.Errorf("reader saw %+v, want remote code 13", se)
		}
		if _, err := st.Write([]byte("x")); !errors.As(err, &se) || se.Code != 13 || se.Remote {
			t.Errorf("write after CancelWrite: %v, want local code 13", err)
		}

		// The receiver stops reading: the writer sees its code.
		st, _ = d.OpenUniStream(testCtx(t))
		_, _ = st.Write([]byte("hello"))
		rs, err = a.AcceptUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		rs.CancelRead(22)
		se = streamErr(t, func() error { _, err := st.Write(make([]byte, 1024)); return err })
		if se.Code != 22 || !se.Remote {
			t.Errorf("writer saw %+v, want remote code 22", se)
		}

		// A bidi reset reaches the peer's reads and writes alike.
		bs, _ := a.OpenStream(testCtx(t))
		_, _ = bs.Write([]byte("req"))
		peer, err := d.AcceptStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		bs.CancelWrite(64 + 7) // an application code
		se = streamErr(t, func() error { _, err := peer.Read(make([]byte, 100)); return err })
		if se.Code != 71 || !se.Remote {
			t.Errorf("bidi reader saw %+v, want remote code 71", se)
		}
		waitStreams(t, d, 0)
		waitStreams(t, a, 0)
	})
}

func TestCloseWithError(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		for _, closer := range []string{"dialer", "listener"} {
			t.Run(closer+" closes", func(t *testing.T) {
				d, a := setup(t, kind)
				local, remote := d, a
				if closer == "listener" {
					local, remote = a, d
				}
				// A stream in flight on each side when the session ends.
				st, _ := remote.OpenStream(testCtx(t))
				_, _ = st.Write([]byte("x"))
				lst, err := local.AcceptStream(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}

				_ = local.CloseWithError(6, "x")
				select {
				case <-remote.Context().Done():
				case <-time.After(5 * time.Second):
					t.Fatal("remote session still running")
				}
				want := &transport.ConnError{Code: 6, Reason: "x", Remote: true}
				if ce := connErr(context.Cause(remote.Context())); ce == nil || *ce != *want {
					t.Errorf("remote cause %v, want %v", context.Cause(remote.Context()), want)
				}
				if ce := connErr(context.Cause(local.Context())); ce == nil || ce.Code != 6 || ce.Remote {
					t.Errorf("local cause %v, want local code 6", context.Cause(local.Context()))
				}
				if _, err := st.Read(make([]byte, 10)); connErr(err) == nil || *connErr(err) != *want {
					t.Errorf("remote stream read: %v, want %v", err, want)
				}
				if _, err := lst.Write([]byte("y")); connErr(err) == nil || connErr(err).Remote {
					t.Errorf("local stream write: %v, want the local close", err)
				}
				if _, err := remote.AcceptUniStream(testCtx(t)); connErr(err) == nil {
					t.Errorf("AcceptUniStream after close: %v", err)
				}
				if _, err := remote.OpenStream(testCtx(t)); connErr(err) == nil {
					t.Errorf("OpenStream after close: %v", err)
				}
				_ = local.CloseWithError(7, "again") // no effect
				if ce := connErr(context.Cause(local.Context())); ce.Code != 6 {
					t.Errorf("second close changed the cause to %v", ce)
				}
				waitStreams(t, local, 0)
				waitStreams(t, remote, 0)
			})
		}
	})
}

func connErr(err error) *transport.ConnError {
	var ce *transport.ConnError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

func TestConnectionLossEndsSession(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		d, a := setup(t, kind)
		st, _ := d.OpenUniStream(testCtx(t))
		_, _ = st.Write([]byte("x"))
		rs, err := a.AcceptUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		_ = d.t.h.Network().ClosePeer(a.t.h.ID())
		for _, c := range []*Conn{d, a} {
			select {
			case <-c.Context().Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session survived its connection")
			}
			if err := context.Cause(c.Context()); !errors.Is(err, ErrConnLost) {
				t.Errorf("cause %v, want ErrConnLost", err)
			}
		}
		if _, err := rs.Read(make([]byte, 10)); !errors.Is(err, ErrConnLost) {
			t.Errorf("read after loss: %v", err)
		}
	})
}

func TestConcurrentSessionsStayApart(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ha, hb := newHost(t, kind), newHost(t, kind)
		connect(t, ha, hb)
		ta, tb := newTransport(t, ha), newTransport(t, hb)

		// Two dials A→B and one B→A, all at once.
		type result struct {
			c   *Conn
			err error
		}
		dials := make(chan result, 3)
		accepts := make(chan result, 3)
		for _, pair := range []struct{ from, to *Transport }{{ta, tb}, {ta, tb}, {tb, ta}} {
			go func() {
				c, err := pair.from.Dial(testCtx(t), pair.to.h.ID())
				dials <- result{c, err}
			}()
			go func() {
				c, err := pair.to.Accept(testCtx(t))
				accepts <- result{c, err}
			}()
		}
		byID := map[uint64][2]*Conn{}
		for range 3 {
			dr, ar := <-dials, <-accepts
			for _, r := range []result{dr, ar} {
				if r.err != nil {
					t.Fatal(r.err)
				}
				p := byID[r.c.key.id]
				if p[0] == nil {
					p[0] = r.c
				} else {
					p[1] = r.c
				}
				byID[r.c.key.id] = p
			}
		}
		if len(byID) != 3 {
			t.Fatalf("%d distinct session IDs, want 3", len(byID))
		}
		// Each session carries its own tagged stream to its own peer.
		var wg sync.WaitGroup
		for id, p := range byID {
			if p[1] == nil || p[0].RemotePeer() == p[1].RemotePeer() {
				t.Fatalf("session %d: ends %v", id, p)
			}
			wg.Go(func() {
				tag := fmt.Sprint(id)
				st, err := p[0].OpenUniStream(testCtx(t))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = st.Write([]byte(tag))
				_ = st.Close()
				rs, err := p[1].AcceptUniStream(testCtx(t))
				if err != nil {
					t.Error(err)
					return
				}
				if got, _ := io.ReadAll(rs); string(got) != tag {
					t.Errorf("session %d received %q", id, got)
				}
			})
		}
		wg.Wait()
		// Closing one leaves the others running.
		var closed uint64
		for id, p := range byID {
			closed = id
			_ = p[0].CloseWithError(1, "only this one")
			<-p[1].Context().Done()
			break
		}
		// A stream each way over every other session, after the close has
		// reached the far end: if that close took the shared libp2p
		// connection or its siblings down, these fail.
		for id, p := range byID {
			if id == closed {
				continue
			}
			for _, ends := range [][2]*Conn{{p[0], p[1]}, {p[1], p[0]}} {
				st, err := ends[0].OpenUniStream(testCtx(t))
				if err != nil {
					t.Fatalf("session %d after another closed: %v", id, err)
				}
				_, _ = st.Write([]byte("after"))
				_ = st.Close()
				rs, err := ends[1].AcceptUniStream(testCtx(t))
				if err != nil {
					t.Fatalf("session %d after another closed: %v", id, err)
				}
				if got, err := io.ReadAll(rs); string(got) != "after" {
					t.Fatalf("session %d after another closed: %q, %v", id, got, err)
				}
			}
		}
		for id, p := range byID {
			if id != closed && (p[0].Context().Err() != nil || p[1].Context().Err() != nil) {
				t.Errorf("session %d ended with another", id)
			}
		}
	})
}

func TestVersionFallback(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		{ // b speaks lite-04 and lite-03
			ha, hb := newHost(t, kind), newHost(t, kind)
			ta, tb := newTransport(t, ha), newTransport(t, hb)
			hb.RemoveStreamHandler(ProtocolLite05)
			connect(t, ha, hb) // identify tells a so
			if d, a := dialPair(t, ta, tb); d.Protocol() != "moq-lite-04" || a.Protocol() != "moq-lite-04" {
				t.Fatalf("negotiated %q / %q, want moq-lite-04", d.Protocol(), a.Protocol())
			}
		}
		ha, hb := newHost(t, kind), newHost(t, kind)
		ta, tb := newTransport(t, ha), newTransport(t, hb)
		hb.RemoveStreamHandler(ProtocolLite05) // b speaks lite-03 only
		hb.RemoveStreamHandler(ProtocolLite04)
		connect(t, ha, hb)
		d, a := dialPair(t, ta, tb)
		if d.Protocol() != "moq-lite-03" || a.Protocol() != "moq-lite-03" {
			t.Fatalf("negotiated %q / %q, want moq-lite-03", d.Protocol(), a.Protocol())
		}
		st, _ := a.OpenUniStream(testCtx(t))
		_, _ = st.Write([]byte("03"))
		_ = st.Close()
		rs, err := d.AcceptUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(rs); string(got) != "03" {
			t.Fatalf("got %q", got)
		}
	})
}

func TestTransportClose(t *testing.T) {
	ha, hb := newHost(t, "tcp"), newHost(t, "tcp")
	connect(t, ha, hb)
	ta, tb := newTransport(t, ha), newTransport(t, hb)
	d, _ := dialPair(t, ta, tb)

	_ = tb.Close()
	_ = tb.Close() // idempotent
	select {
	case <-d.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session survived the peer's transport")
	}
	if ce := connErr(context.Cause(d.Context())); ce == nil || ce.Code != 0 || !ce.Remote {
		t.Errorf("cause %v, want remote code 0", context.Cause(d.Context()))
	}
	if _, err := tb.Accept(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if _, err := tb.Dial(testCtx(t), ha.ID()); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
	if _, err := ta.Dial(testCtx(t), hb.ID()); err == nil {
		t.Error("Dial to a closed transport succeeded")
	}
}

// TestAcceptBackPressure: a listener that does not Accept holds dialers at
// the handshake once its queue is full, and releases them as it accepts.
func TestAcceptBackPressure(t *testing.T) {
	ha, hb := newHost(t, "tcp"), newHost(t, "tcp")
	connect(t, ha, hb)
	ta := newTransport(t, ha)
	tb := New(hb, Config{Logger: testLogger(), MaxSessionsPerPeer: acceptBacklog + 2})
	t.Cleanup(func() { _ = tb.Close() })
	for i := range acceptBacklog {
		if _, err := ta.Dial(testCtx(t), hb.ID()); err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := ta.Dial(ctx, hb.ID()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial beyond the backlog: %v, want to wait until the deadline", err)
	}
	listenerSessions := func(n int) func() bool {
		return func() bool {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			return len(tb.sessions) == n
		}
	}
	// The abandoned dial leaves nothing behind.
	testutil.Eventually(t, "the abandoned dial forgotten", listenerSessions(acceptBacklog))
	waiting := make(chan error, 1)
	go func() {
		_, err := ta.Dial(testCtx(t), hb.ID())
		waiting <- err
	}()
	// The next dial is registered and held at the handshake, not refused.
	testutil.Eventually(t, "the next dial held", listenerSessions(acceptBacklog+1))
	select {
	case err := <-waiting:
		t.Fatalf("dial beyond the backlog returned before an Accept: %v", err)
	default:
	}
	if _, err := tb.Accept(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; err != nil {
		t.Fatalf("dial after room was made: %v", err)
	}
	if !listenerSessions(acceptBacklog + 1)() {
		t.Fatalf("listener lost a session as it accepted")
	}
}

// TestPendingStreamsBound: streams the application does not accept are
// held up to MaxPendingStreams; the next one is refused with
// BoundsExceeded.
func TestPendingStreamsBound(t *testing.T) {
	ha, hb := newHost(t, "tcp"), newHost(t, "tcp")
	connect(t, ha, hb)
	tb := New(hb, Config{Logger: testLogger(), MaxPendingStreams: 2})
	t.Cleanup(func() { _ = tb.Close() })
	d, a := dialPair(t, newTransport(t, ha), tb)
	var sts []transport.SendStream
	for range 3 {
		st, err := d.OpenUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = st.Write([]byte("x"))
		sts = append(sts, st)
	}
	// Handlers run concurrently, so any one of the three may be the extra.
	testutil.Eventually(t, "a stream refused", func() bool {
		for i, st := range sts {
			if _, err := st.Write([]byte("y")); err != nil {
				var se *transport.StreamError
				if !errors.As(err, &se) || se.Code != codeBoundsExceeded || !se.Remote {
					t.Fatalf("stream %d: %v, want remote BoundsExceeded", i, err)
				}
				return true
			}
		}
		return false
	})
	for range 2 { // the other two wait, intact
		rs, err := a.AcceptUniStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rs, make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
	}
}
