package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// A TCP client that stalls inside its request's headers, or idles after a
// request, is closed after ReadHeaderTimeout or IdleTimeout.
func TestServerHTTPTimeouts(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, func(s *Server) {
		s.ReadHeaderTimeout = 500 * time.Millisecond
		s.IdleTimeout = 500 * time.Millisecond
	})
	addr := srv.TCPAddr().String()
	var cs []net.Conn
	t.Cleanup(func() {
		for _, c := range cs {
			_ = c.Close()
		}
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		return c
	}
	for range 4 { // half a request, then nothing
		fmt.Fprint(dial(), "GET /x HTTP/1.1\r\nHost: x\r\n")
	}
	for range 2 { // a whole request, then idle on a kept-alive connection
		c := dial()
		fmt.Fprint(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.Close {
			t.Fatal("server closed the kept-alive connection at once")
		}
	}
	start := time.Now()
	for i, c := range cs {
		_ = c.SetReadDeadline(start.Add(3 * time.Second))
		// The stalled ones may get a 408 before the close; read to EOF.
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open after %v", i, time.Since(start))
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("connections closed after %v, want about 500 ms", d)
	}
}

// counted waits until the server counts c, an HTTP/3 connection of its
// own (it may also have been replaced by a newer one since).
func counted(t *testing.T, srv *Server, c *quic.Conn) {
	t.Helper()
	eventually(t, "the connection counted", func() bool {
		if c.Context().Err() != nil {
			return true
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for q := range srv.h3conns {
			if q.RemoteAddr().(*net.UDPAddr).Port == c.LocalAddr().(*net.UDPAddr).Port {
				return true
			}
		}
		return false
	})
}

// QUIC connections that negotiate h3 and never send a request count
// against their address as sessions waiting for admission: beyond
// MaxPendingPerIP each new one takes the place of the one idle longest
// (closed with BoundsExceeded), and those kept are closed once idle for
// IdleTimeout.
func TestServerIdleH3Conns(t *testing.T) {
	n := newNode(t)
	// Long enough that dialing the ten on a loaded machine does not idle
	// the first out before they are counted.
	srv := serve(t, n, func(s *Server) { s.IdleTimeout = 2 * time.Second })
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}}
	qc := &quic.Config{KeepAlivePeriod: 100 * time.Millisecond, MaxIdleTimeout: 10 * time.Second}
	const conns = 10
	var cs []*quic.Conn
	t.Cleanup(func() {
		for _, c := range cs {
			_ = c.CloseWithError(0, "")
		}
	})
	for range conns {
		c, err := quic.DialAddr(testCtx(t), srv.UDPAddr().String(), tc, qc)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		counted(t, srv, c) // in this order: a client's handshake can end before the server's
	}
	alive := func() int {
		k := 0
		for _, c := range cs {
			if c.Context().Err() == nil {
				k++
			}
		}
		return k
	}
	time.Sleep(300 * time.Millisecond)
	if k := alive(); k != DefaultMaxPendingPerIP {
		t.Fatalf("%d of %d request-less h3 connections alive, want %d (MaxPendingPerIP)", k, conns, DefaultMaxPendingPerIP)
	}
	for i, c := range cs {
		if newest, up := i >= conns-DefaultMaxPendingPerIP, c.Context().Err() == nil; newest != up {
			t.Fatalf("connection %d of %d alive: %v; want the newest %d alive", i, conns, up, DefaultMaxPendingPerIP)
		}
		if c.Context().Err() != nil {
			var ae *quic.ApplicationError
			if err := context.Cause(c.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(broadcast.CodeBoundsExceeded) || !ae.Remote {
				t.Fatalf("connection %d closed with %v, want the server's BoundsExceeded", i, err)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle h3 connections still open 5 s later (IdleTimeout 2 s)", alive())
		}
		time.Sleep(50 * time.Millisecond)
	}
	eventually(t, "the address's count back to nothing", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.perIP) == 0 && len(srv.h3conns) == 0
	})
}

// Clients that vanished without closing their HTTP/3 connections (a crash,
// a lost network) do not lock their address out until those time out: a
// new WebTransport client takes the place of the connection idle longest
// and its session is admitted.
func TestServerVanishedClientsDoNotLockOut(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, func(s *Server) { s.MaxPendingPerIP = 2 })
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}}
	var stale []*quic.Conn
	for range 2 {
		c, err := quic.DialAddr(testCtx(t), srv.UDPAddr().String(), tc, &quic.Config{KeepAlivePeriod: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseWithError(0, "") })
		stale = append(stale, c)
		counted(t, srv, c) // in this order: a client's handshake can end before the server's
	}
	c, err := webtransport.Dial(testCtx(t), "https://"+srv.UDPAddr().String()+"/", pinned(t, srv), nil)
	if err != nil {
		t.Fatalf("a new client of an address whose bound idle connections hold: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "") })
	clientSession(t, c)
	eventually(t, "the session registered", func() bool { all, _ := n.Sessions(testCtx(t)); return len(all) == 1 })
	select {
	case <-stale[0].Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("the connection idle longest was not closed")
	}
	if stale[1].Context().Err() != nil {
		t.Fatal("the newer idle connection was closed too")
	}
}

// A client that closes its WebTransport session has closed the session's
// QUIC connection too once Close returns (after the linger that lets its
// close code arrive first), so that a program exiting next leaves nothing
// counted against its address at the server.
func TestServerClientCloseReleasesConnection(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	c, err := (&webtransport.Dialer{TLSConfig: pinned(t, srv)}).Dial(testCtx(t), "https://"+srv.UDPAddr().String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	s := clientSession(t, c)
	eventually(t, "the session registered", func() bool { all, _ := n.Sessions(testCtx(t)); return len(all) == 1 })
	_ = s.Close(broadcast.CodeCancel, "bye")
	if err := c.QUICConn().Context().Err(); err == nil {
		t.Fatal("the session's QUIC connection is still open after Close returned")
	}
	eventually(t, "the address's count back to nothing", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.perIP) == 0 && len(srv.h3conns) == 0
	})
}

// An IPv6 client is bounded by its /64, other addresses by themselves.
func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:443":              "192.0.2.7",
		"[::ffff:192.0.2.7]:443":     "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::",
		"[2001:db8:1:2:bbbb::9]:9":   "2001:db8:1:2::",
		"[2001:db8:1:3::1]:9":        "2001:db8:1:3::",
		"[fe80::1%eth0]:443":         "fe80::1%eth0",
		"[fe80::2%eth0]:443":         "fe80::2%eth0",
		"[::1]:443":                  "::",
		"not an address":             "invalid IP",
		"[2001:db8::1%zone]:1":       "2001:db8::",
	} {
		if got := ClientAddr(in).String(); got != want {
			t.Errorf("ClientAddr(%q) = %s, want %s", in, got, want)
		}
	}
	if ClientAddr("[2001:db8:1:2:aaaa::1]:1") != netip.MustParseAddr("2001:db8:1:2::") {
		t.Error("keys of one /64 differ")
	}
}

// A WebTransport client's connection, counted while it carries no
// session, passes its count to its session: one address with
// MaxPendingPerIP 1 and MaxSessionsPerIP 2 holds two sessions, a third
// connection is refused, and once both sessions left nothing is counted.
func TestServerH3ConnCountPassesToSession(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, func(s *Server) {
		s.MaxPendingPerIP = 1
		s.MaxSessionsPerIP = 2
	})
	url := "https://" + srv.UDPAddr().String() + "/"
	var held []transport.Conn
	for range 2 {
		c, err := webtransport.Dial(testCtx(t), url, pinned(t, srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		clientSession(t, c)
		held = append(held, c)
	}
	eventually(t, "sessions registered", func() bool { all, _ := n.Sessions(testCtx(t)); return len(all) == 2 })
	if c, err := webtransport.Dial(testCtx(t), url, pinned(t, srv), nil); err == nil {
		_ = c.CloseWithError(0, "")
		t.Fatal("a third WebTransport client was accepted over MaxSessionsPerIP 2")
	} else if ce, ok := errors.AsType[*transport.ConnError](err); !ok || !ce.Remote || ce.Code != uint32(broadcast.CodeBoundsExceeded) || ce.Reason != ErrTooManySessions.Error() {
		// The server closed the HTTP/3 connection with a moq-lite code:
		// the client reads that code, not an HTTP/3 failure.
		t.Fatalf("the third client's refusal: %v, want a remote close with BoundsExceeded and %q", err, ErrTooManySessions)
	}
	for _, c := range held {
		_ = c.CloseWithError(0, "")
	}
	eventually(t, "the address's count back to nothing", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.perIP) == 0 && len(srv.h3conns) == 0
	})
}
