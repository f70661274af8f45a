package webtransport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
)

// Every test closes its server and connections; a dialed connection lingers
// at most a second after a local close, which goleak's retries cover.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 10*time.Second) }

// fixture is a Server serving on loopback.
type fixture struct {
	srv  *Server
	addr string
	crt  tls.Certificate
}

// newServer starts a server on 127.0.0.1 and closes it at cleanup, after the
// cleanups registered later (the tests' connections).
func newServer(t testing.TB, cfg Config) *fixture {
	t.Helper()
	return newServerWith(t, newCert(t), cfg)
}

func newCert(t testing.TB) tls.Certificate {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return crt
}

// newServerWith is newServer with a given certificate.
func newServerWith(t testing.TB, crt tls.Certificate, cfg Config) *fixture {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger()
	}
	srv := NewServer(&tls.Config{Certificates: []tls.Certificate{crt}}, nil, cfg)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &fixture{srv: srv, addr: pc.LocalAddr().String(), crt: crt}
}

func (f *fixture) url(path string) string { return "https://" + f.addr + path }

// clientTLS pins the fixture's certificate.
func (f *fixture) clientTLS() *tls.Config { return cert.PinnedConfig(cert.Fingerprint(f.crt)) }

// loopback returns a QUIC transport on a socket of its own on 127.0.0.1,
// closed (with the socket) at cleanup, after the connections dialed from it.
func loopback(t testing.TB) *quic.Transport {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	t.Cleanup(func() {
		_ = tr.Close()
		_ = pc.Close() // a Transport leaves a socket it was given open
	})
	return tr
}

// dialer dials from a loopback socket, pinning the fixture's certificate.
func (f *fixture) dialer(t testing.TB) *Dialer {
	return &Dialer{TLSConfig: f.clientTLS(), Transport: loopback(t)}
}

// dial opens a WebTransport session to path, closed at cleanup.
func (f *fixture) dial(t testing.TB, path string, protocols []string) *Conn {
	t.Helper()
	d := f.dialer(t)
	d.Protocols = protocols
	c, err := d.Dial(testCtx(t), f.url(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "test over") })
	return c
}

// accept takes the next session from the server, closed at cleanup.
func (f *fixture) accept(t testing.TB) (transport.Conn, *http.Request) {
	t.Helper()
	c, req, err := f.srv.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "test over") })
	return c, req
}

// pair dials a session and accepts it: client and server side.
func (f *fixture) pair(t testing.TB, protocols []string) (client *Conn, server transport.Conn, req *http.Request) {
	t.Helper()
	client = f.dial(t, "/room", protocols)
	server, req = f.accept(t)
	return client, server, req
}

// port is a UDP address's port.
func port(a net.Addr) int {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.Port
	}
	return -1
}
