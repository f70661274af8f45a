package server

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport"
)

// Dialer with a nil tls.Config verifies with the system's roots on every
// scheme: a moql:// dial to a development certificate fails verification
// (it used to panic).
func TestDialerNilTLSConfigUsesSystemRoots(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	d, err := Dialer("moql://"+srv.UDPAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d(testCtx(t))
	var ue x509.UnknownAuthorityError
	if !errors.As(err, &ue) {
		t.Fatalf("moql:// dial with nil tls.Config: %v, want an unknown-authority error", err)
	}
}

// With port 0 the server picks its port pair: a free UDP port whose TCP twin
// is taken costs another pair, not the server; a port the caller named is
// tried once.
func TestListenRetriesPortPairItChose(t *testing.T) {
	taken := 0
	listenTCP = func(network, addr string) (net.Listener, error) {
		if taken < 3 {
			taken++
			return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
		}
		return net.Listen(network, addr)
	}
	defer func() { listenTCP = net.Listen }()
	n := newNode(t)
	srv := &Server{Moq: n, Addr: "127.0.0.1:0", Logger: testLogger()}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	eventually(t, "server listening", func() bool { return srv.UDPAddr() != nil })
	if u, c := srv.UDPAddr().(*net.UDPAddr), srv.TCPAddr().(*net.TCPAddr); u.Port != c.Port {
		t.Errorf("UDP port %d, TCP port %d", u.Port, c.Port)
	}
	_ = srv.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe: %v", err)
	}
	if taken != 3 {
		t.Fatalf("%d TCP binds failed, want 3", taken)
	}

	taken = 0
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := udp.LocalAddr().(*net.UDPAddr).Port
	_ = udp.Close()
	if _, _, err := Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); !errors.Is(err, syscall.EADDRINUSE) || taken != 1 {
		t.Fatalf("Listen on a named port whose TCP twin is taken: %v after %d attempts, want EADDRINUSE after 1", err, taken)
	}
}

// Listen's sockets accept from the moment it returns: Serve need not have
// started for a client's dial to get through.
func TestListenIsReadyBeforeServe(t *testing.T) {
	udp, tcp, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatalf("dial before Serve: %v", err)
	}
	_ = c.Close()
	srv := &Server{Moq: newNode(t), Logger: testLogger()}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(udp, tcp) }()
	_ = srv.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// A moq node whose server sends GOAWAY leaves: its plain subscription on
// that session ends with the session (Err set, naming the GOAWAY) and its
// resilient track loses the session and goes looking for the next, so the
// server's Shutdown finishes gracefully, within the node's grace, rather
// than waiting out its context.
func TestShutdownGoawayMakesNodeClientsLeave(t *testing.T) {
	pub := newNode(t)
	live(t, publish(t, pub, "clock"))
	srv := serve(t, pub, nil)
	sub := newNode(t)
	for _, url := range []string{"moql://" + srv.UDPAddr().String(), wsURL(srv, "/")} {
		dial, err := Dialer(url, pinned(t, srv))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := sub.SubscribeResilient(testCtx(t), "clock", "video", moq.ResilientOptions{Dial: dial})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.Close)
		if _, err := tr.NextGroup(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := rawquicDial(t, srv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sub.Open(testCtx(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := s.Subscribe(testCtx(t), "clock", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.NextGroup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with moq node clients: %v after %v", err, time.Since(start))
	}
	if d := time.Since(start); d > goawayBound {
		t.Errorf("Shutdown took %v, want the clients gone within %v", d, goawayBound)
	}
	for {
		if _, err := tc.NextGroup(testCtx(t)); err != nil {
			if s.Err() == nil || !strings.Contains(s.Err().Error(), "GOAWAY") {
				t.Fatalf("plain subscription ended with %v, session with %v", err, s.Err())
			}
			break
		}
	}
}

// goawayBound is how long a Shutdown may take with moq node clients: the
// node's grace (2 s) plus slack for a loaded machine.
const goawayBound = 4 * time.Second

// rawquicDial dials srv over moql:// trusting its certificate.
func rawquicDial(t *testing.T, srv *Server) (transport.Conn, error) {
	d, err := Dialer("moql://"+srv.UDPAddr().String(), pinned(t, srv))
	if err != nil {
		return nil, err
	}
	return d(testCtx(t))
}
