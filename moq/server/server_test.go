package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
	"github.com/moqp2p/moqp2p/transport/webtransport"
)

// serve starts a Server for n on loopback and returns it once listening.
func serve(t *testing.T, n *moq.Moq, configure func(*Server)) *Server {
	t.Helper()
	srv := &Server{Moq: n, Logger: testLogger()}
	if configure != nil {
		configure(srv)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(udp, tcp) }()
	eventually(t, "server listening", func() bool { return srv.UDPAddr() != nil && srv.TCPAddr() != nil })
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return srv
}

// pinned is a TLS config trusting exactly the server's certificate.
func pinned(t *testing.T, srv *Server) *tls.Config {
	fp, err := cert.ParseFingerprint(srv.CertificateHash())
	if err != nil {
		t.Fatal(err)
	}
	return cert.PinnedConfig(fp)
}

// clientSession runs a moq-lite session on c as the dialing side.
func clientSession(t *testing.T, c transport.Conn) *session.Session {
	t.Helper()
	s, err := session.New(c, session.Config{Client: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(broadcast.CodeCancel, "test over") })
	return s
}

// readFrames subscribes to name/video on s and reads n frames.
func readFrames(t *testing.T, s *session.Session, name string, n int) {
	t.Helper()
	ctx := testCtx(t)
	testutil.Until(t, ctx, name+" announced", func() bool { return s.Remote().Get(name) != nil })
	tc, err := s.Subscribe(ctx, name, "video", session.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for i := 0; i < n; i++ {
		g, err := tc.NextGroup(ctx)
		if err != nil {
			t.Fatalf("group %d: %v", i, err)
		}
		if _, err := g.ReadFrame(ctx); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}

func wsURL(srv *Server, path string) string { return "ws://" + srv.TCPAddr().String() + path }

// Every kind of client reaches the node's publications: WebTransport and
// WebSocket scoped by URL path, raw QUIC unscoped; each is an incoming
// session without a peer ID.
func TestServerTransports(t *testing.T) {
	n := newNode(t)
	live(t, publish(t, n, "room/clock"))
	live(t, publish(t, n, "lobby"))
	srv := serve(t, n, nil)

	incoming := make(chan *moq.Session, 8)
	go func() { // ends with the node's Shutdown at cleanup
		for s := range n.IncomingSessions() {
			incoming <- s
		}
	}()
	waitIncoming := func(scope string) {
		t.Helper()
		select {
		case s := <-incoming:
			if s.RemotePeer() != "" || s.Scope() != scope {
				t.Fatalf("incoming session peer %q scope %q, want anonymous in %q", s.RemotePeer(), s.Scope(), scope)
			}
		case <-testCtx(t).Done():
			t.Fatal("no incoming session")
		}
	}
	iterating(t, 1)

	t.Run("webtransport", func(t *testing.T) {
		url := "https://" + srv.UDPAddr().String() + "/room"
		c, err := webtransport.Dial(testCtx(t), url, pinned(t, srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := clientSession(t, c)
		readFrames(t, s, "clock", 5)
		if s.Version() != "moq-lite-05" || s.Remote().Get("lobby") != nil {
			t.Fatalf("version %s, lobby visible %v", s.Version(), s.Remote().Get("lobby") != nil)
		}
		waitIncoming("room")
	})
	for _, tc := range []struct {
		name      string
		framing   websocket.Framing
		protocols []string
		version   string
	}{
		{"websocket qmux-02 lite-05", websocket.FramingQmux02, []string{"moq-lite-05"}, "moq-lite-05"},
		{"websocket qmux-00 lite-04", websocket.FramingQmux, []string{"moq-lite-04"}, "moq-lite-04"},
		{"websocket legacy lite-03", websocket.FramingLegacy, []string{"moq-lite-03"}, "moq-lite-03"},
		{"websocket qmux-00 setup lite-02", websocket.FramingQmux, []string{}, "moq-lite-02"},
		{"websocket legacy setup lite-02", websocket.FramingLegacy, []string{}, "moq-lite-02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := websocket.Dial(testCtx(t), wsURL(srv, "/room/"), &websocket.Config{Framings: []websocket.Framing{tc.framing}, Protocols: tc.protocols})
			if err != nil {
				t.Fatal(err)
			}
			s := clientSession(t, c)
			readFrames(t, s, "clock", 5)
			if s.Version() != tc.version {
				t.Fatalf("version %s, want %s", s.Version(), tc.version)
			}
			waitIncoming("room")
		})
	}
	t.Run("raw quic", func(t *testing.T) {
		c, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := clientSession(t, c)
		readFrames(t, s, "room/clock", 5)
		readFrames(t, s, "lobby", 5)
		waitIncoming("")
	})
	t.Run("certificate hash over http", func(t *testing.T) {
		resp, err := http.Get("http://" + srv.TCPAddr().String() + CertificatePath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != srv.CertificateHash() || len(body) != 64 {
			t.Fatalf("got %q, want %q", body, srv.CertificateHash())
		}
	})
}

// A client's publication is read through its Session on the node.
func TestServerClientPublishes(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	_, _ = origin.Publish("js/bcast", b.Consume())
	c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := session.New(c, session.Config{Client: true, Publish: origin, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close(0, "") })
	var s *moq.Session
	eventually(t, "the session registered", func() bool {
		all, _ := n.Sessions(testCtx(t))
		if len(all) == 1 {
			s = all[0]
		}
		return s != nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			_ = tp.WriteFrame([]byte(strconv.Itoa(i)))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	receive(t, s, "js/bcast", 5)
}

// Origin checks and Route refusals keep sessions out. Over WebSocket a
// refused path or token is HTTP 403 (a refusal: the client should not
// retry it), Route's own bound 429 (busy: it may).
func TestServerRefusals(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, func(s *Server) {
		s.CheckOrigin = webtransport.AllowOrigins("http://good.test")
		s.Route = func(r *http.Request) (string, error) {
			switch r.URL.Path {
			case "/private":
				return "", &broadcast.Error{Code: broadcast.CodeUnauthorized, Reason: "no token"}
			case "/full":
				return "", &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many clients being admitted"}
			}
			return "", nil
		}
	})
	dial := func(path, origin string) error {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, err := websocket.Dial(testCtx(t), wsURL(srv, path), &websocket.Config{HTTPHeader: h})
		if err == nil {
			_ = c.CloseWithError(0, "")
		}
		return err
	}
	if err := dial("/", "http://good.test"); err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	if err := dial("/", "http://evil.test"); err == nil {
		t.Fatal("disallowed origin accepted")
	}
	for path, status := range map[string]int{"/private": http.StatusForbidden, "/full": http.StatusTooManyRequests} {
		var he *websocket.HandshakeError
		if err := dial(path, ""); !errors.As(err, &he) || he.StatusCode != status {
			t.Fatalf("route refusal of %s: %v, want HTTP %d", path, err, status)
		}
	}
	// Over WebTransport the refusal closes the session with the code.
	c, err := webtransport.Dial(testCtx(t), "https://"+srv.UDPAddr().String()+"/private", pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("refused WebTransport session stays open")
	}
	var ce *transport.ConnError
	if err := context.Cause(c.Context()); !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeUnauthorized) {
		t.Fatalf("closed with %v, want Unauthorized", err)
	}
	if all, _ := n.Sessions(testCtx(t)); len(all) != 0 {
		t.Fatalf("%d sessions registered", len(all))
	}
}

// The node's admission applies to Server sessions too, with no peer ID.
func TestServerUsesNodeAdmission(t *testing.T) {
	asked := make(chan string, 4)
	n := newNode(t, moq.WithAdmission(func(_ context.Context, p peer.ID) error {
		asked <- p.String()
		return &broadcast.Error{Code: broadcast.CodeUnauthorized, Reason: "members only"}
	}))
	srv := serve(t, n, nil)
	c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("refused session stays open")
	}
	var ce *transport.ConnError
	if err := context.Cause(c.Context()); !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeUnauthorized) || ce.Reason != "members only" {
		t.Fatalf("closed with %v, want Unauthorized: members only", err)
	}
	if p := <-asked; p != "" {
		t.Fatalf("admission asked about %q, want the empty peer ID", p)
	}
}

// Shutdown sends GOAWAY on lite-04 and returns once the clients left; a
// client that stays is closed when the context ends.
func TestServerShutdown(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	c4, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s4 := clientSession(t, c4)
	eventually(t, "registered", func() bool { all, _ := n.Sessions(testCtx(t)); return len(all) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a client that stays: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Shutdown did not force the close at its deadline")
	}
	select {
	case <-s4.GoingAway():
	default:
		t.Fatal("the lite-04 client got no GOAWAY")
	}
	select {
	case <-s4.Done():
	case <-testCtx(t).Done():
		t.Fatal("the staying client was never closed")
	}
	if _, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), nil); err == nil {
		t.Fatal("a closed server accepted a WebSocket")
	}
}

// Sessions on versions without GOAWAY (lite-03, the compat SETUP's lite-02)
// are closed at once with code 0 rather than waited for: Shutdown returns
// as soon as the lite-04 client has left, long before its deadline.
func TestServerShutdownClosesSessionsWithoutGoaway(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	dial := func(protocols ...string) *session.Session {
		t.Helper()
		c, err := websocket.Dial(testCtx(t), wsURL(srv, "/"), &websocket.Config{Protocols: protocols})
		if err != nil {
			t.Fatal(err)
		}
		return clientSession(t, c)
	}
	s4, s3, s2 := dial("moq-lite-04"), dial("moq-lite-03"), dial("moql")
	select {
	case <-s2.Ready():
	case <-testCtx(t).Done():
		t.Fatal("compat SETUP never finished")
	}
	eventually(t, "all registered", func() bool { all, _ := n.Sessions(testCtx(t)); return len(all) == 3 })
	go func() { // the lite-04 client leaves when asked to
		select {
		case <-s4.GoingAway():
			_ = s4.Close(broadcast.CodeCancel, "bye")
		case <-s4.Done():
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown waited for clients that were never told to leave: %v", err)
	}
	for name, s := range map[string]*session.Session{"lite-03": s3, "lite-02": s2} {
		select {
		case <-s.Done():
		case <-testCtx(t).Done():
			t.Fatalf("the %s client was not closed", name)
		}
		var ce *transport.ConnError
		if err := s.Err(); !errors.As(err, &ce) || !ce.Remote || ce.Code != 0 {
			t.Fatalf("the %s client ended with %v, want the server's clean close", name, err)
		}
	}
}
