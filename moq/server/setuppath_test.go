package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// A moql:// client's URL path and query reach the server through its
// lite-05 SETUP (raw QUIC has no request URI): the path scopes the session
// and Route sees the query (a ?jwt= token), as for WebTransport; a URL
// without a path keeps the unscoped session and no Route.
func TestServerRawQUICSetupPath(t *testing.T) {
	n := newNode(t)
	live(t, publish(t, n, "some/path/clock"))
	live(t, publish(t, n, "lobby"))
	routed := make(chan *http.Request, 8)
	srv := serve(t, n, func(s *Server) {
		s.Route = func(r *http.Request) (string, error) {
			routed <- r
			if r.URL.Query().Get("jwt") == "bad" {
				return "", &broadcast.Error{Code: broadcast.CodeUnauthorized, Reason: "bad token"}
			}
			return r.URL.Path, nil
		}
	})
	incoming := make(chan *moq.Session, 8)
	go func() { // ends with the node's Shutdown at cleanup
		for s := range n.IncomingSessions() {
			incoming <- s
		}
	}()
	iterating(t, 1)
	waitIncoming := func(scope string) *moq.Session {
		t.Helper()
		select {
		case s := <-incoming:
			if s.Scope() != scope {
				t.Fatalf("incoming session scope %q, want %q", s.Scope(), scope)
			}
			return s
		case <-testCtx(t).Done():
			t.Fatal("no incoming session")
		}
		return nil
	}
	dial := func(t *testing.T, url string) transport.Conn {
		t.Helper()
		d, err := Dialer(url, pinned(t, srv))
		if err != nil {
			t.Fatal(err)
		}
		c, err := d(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := "moql://" + srv.UDPAddr().String()

	t.Run("path and query", func(t *testing.T) {
		client := newNode(t)
		c := dial(t, base+"/some/path?x=1&jwt=good")
		s, err := client.Open(testCtx(t), c)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(broadcast.CodeCancel, "test over")
		if s.Version() != "moq-lite-05" {
			t.Fatalf("version %s", s.Version())
		}
		receive(t, s, "clock", 5) // some/path/clock, relative to the scope
		in := waitIncoming("some/path")
		// RemoteAddr is the session's, which a Route keeping grants by
		// client address (moq relay's) looks them up by.
		r := <-routed
		if r.Method != http.MethodConnect || r.URL.Path != "/some/path" || r.URL.RawQuery != "x=1&jwt=good" || r.RemoteAddr != in.RemoteAddr().String() {
			t.Fatalf("Route saw %s %s from %s, want CONNECT /some/path?x=1&jwt=good from %s", r.Method, r.URL, r.RemoteAddr, in.RemoteAddr())
		}
	})
	t.Run("no path", func(t *testing.T) {
		s := clientSession(t, dial(t, base))
		readFrames(t, s, "some/path/clock", 5)
		readFrames(t, s, "lobby", 5)
		waitIncoming("")
		select {
		case r := <-routed:
			t.Fatalf("Route ran for a session without a path: %s", r.URL)
		default:
		}
	})
	t.Run("refused", func(t *testing.T) {
		c := dial(t, base+"/some/path?jwt=bad")
		s := clientSession(t, c)
		// The connection's close is what says why; the session may see
		// its end (a stream of it failing) a moment before the connection's
		// context does.
		for _, done := range []<-chan struct{}{c.Context().Done(), s.Context().Done()} {
			select {
			case <-done:
			case <-testCtx(t).Done():
				t.Fatal("refused session stays open")
			}
		}
		var ce *transport.ConnError
		if err := context.Cause(c.Context()); !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeUnauthorized) || ce.Reason != "bad token" {
			t.Fatalf("closed with %v, want Unauthorized: bad token", err)
		}
	})
}

// A raw QUIC lite-05 client that never sends its SETUP holds its place
// for SetupTimeout only: it is then closed with Timeout, and a client that
// does send one is served meanwhile.
func TestServerRawQUICSilentClient(t *testing.T) {
	n := newNode(t)
	live(t, publish(t, n, "clock"))
	srv := serve(t, n, func(s *Server) { s.SetupTimeout = 300 * time.Millisecond })
	silent, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseWithError(0, "")
	start := time.Now()
	c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	readFrames(t, clientSession(t, c), "clock", 2)
	closedWith(t, silent, broadcast.CodeTimeout)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("a silent client was closed after %v, before its SetupTimeout (300 ms)", d)
	}
}
