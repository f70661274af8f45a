package webtransport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// dialRaw connects with raw-QUIC moq-lite to the fixture's socket.
func (f *fixture) dialRaw(t testing.TB, alpn string) transport.Conn {
	t.Helper()
	c, err := f.tryRaw(t, alpn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryRaw is dialRaw returning the dial's error.
func (f *fixture) tryRaw(t testing.TB, alpn string) (transport.Conn, error) {
	t.Helper()
	tc := f.clientTLS()
	tc.NextProtos = []string{alpn}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := rawquic.NewEndpointConn(pc, nil)
	t.Cleanup(func() {
		_ = ep.Close()
		_ = pc.Close() // rawquic.Endpoint.Close leaves a given socket open
	})
	c, err := ep.Dial(testCtx(t), f.addr, tc)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "test over") })
	return c, nil
}

func TestRawQUICOnTheSameSocket(t *testing.T) {
	f := newServer(t, Config{})
	wt := f.dial(t, "/wt", nil)
	raw := f.dialRaw(t, "moq-lite-04")
	var gotRaw, gotWT transport.Conn
	for range 2 {
		c, req := f.accept(t)
		switch {
		case req == nil:
			gotRaw = c
		case req.URL.Path == "/wt":
			gotWT = c
		}
	}
	if gotRaw == nil || gotWT == nil {
		t.Fatalf("accepted raw %v, WebTransport %v; want one of each", gotRaw, gotWT)
	}
	if gotRaw.Protocol() != "moq-lite-04" || raw.Protocol() != "moq-lite-04" || gotWT.Protocol() != wt.Protocol() {
		t.Fatalf("protocols: raw %q/%q, WebTransport %q/%q", gotRaw.Protocol(), raw.Protocol(), gotWT.Protocol(), wt.Protocol())
	}
	if _, ok := rawquic.QUIC(gotRaw); !ok {
		t.Fatalf("raw session is a %T, want a rawquic connection", gotRaw)
	}
	// Streams and codes work on the raw session as on any rawquic one.
	s, err := raw.OpenUniStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("raw"))
	s.CancelWrite(24)
	rs, err := gotRaw.AcceptUniStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rs)
	if se, ok := errors.AsType[*transport.StreamError](err); !ok || se.Code != 24 {
		t.Fatalf("raw reset: %v, want StreamError 24", err)
	}
}

func TestRawQUICCompatALPN(t *testing.T) {
	f := newServer(t, Config{})
	f.dialRaw(t, "moql")
	c, req := f.accept(t)
	if req != nil || c.Protocol() != "moql" {
		t.Fatalf("accepted %q with request %v, want raw moql", c.Protocol(), req)
	}
}

func TestOriginCheck(t *testing.T) {
	dial := func(f *fixture, origin string) error {
		d := f.dialer(t)
		d.Header = http.Header{"Origin": {origin}}
		c, err := d.Dial(testCtx(t), f.url("/room"))
		if err == nil {
			t.Cleanup(func() { _ = c.CloseWithError(0, "") })
		}
		return err
	}
	noneAccepted := func(f *fixture) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if c, _, err := f.srv.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Accept returned %v, %v; want nothing", c, err)
		}
	}
	t.Run("default is same origin", func(t *testing.T) {
		f := newServer(t, Config{})
		err := dial(f, "https://evil.example")
		if re, ok := errors.AsType[*RejectedError](err); !ok || re.StatusCode != http.StatusForbidden || !errors.Is(err, ErrRejected) {
			t.Fatalf("foreign origin: %v, want a 403 RejectedError", err)
		}
		noneAccepted(f)
		if err := dial(f, "https://"+f.addr); err != nil {
			t.Fatalf("same origin: %v", err)
		}
		if _, req := f.accept(t); req.Header.Get("Origin") != "https://"+f.addr {
			t.Fatalf("accepted request has Origin %q", req.Header.Get("Origin"))
		}
	})
	t.Run("AllowOrigins", func(t *testing.T) {
		f := newServer(t, Config{CheckOrigin: AllowOrigins("http://127.0.0.1:8080")})
		if err := dial(f, "http://localhost:8080"); !errors.Is(err, ErrRejected) {
			t.Fatalf("unlisted origin: %v, want ErrRejected", err)
		}
		noneAccepted(f)
		if err := dial(f, "HTTP://127.0.0.1:8080"); err != nil {
			t.Fatalf("listed origin: %v", err)
		}
		f.accept(t)
	})
}

func TestAcceptQueueIsBounded(t *testing.T) {
	f := newServer(t, Config{AcceptQueue: 1})
	first := f.dial(t, "/first", nil)
	_, err := f.dialer(t).Dial(testCtx(t), f.url("/second"))
	if re, ok := errors.AsType[*RejectedError](err); !ok || re.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second session: %v, want a 503 RejectedError", err)
	}
	// The server closes a raw-QUIC connection as soon as its handshake is
	// done, which may be before the client's Dial returns.
	raw, err := f.tryRaw(t, "moq-lite-04")
	if err == nil {
		select {
		case <-raw.Context().Done():
			err = context.Cause(raw.Context())
		case <-testCtx(t).Done():
			t.Fatal("raw-QUIC connection not closed with the queue full")
		}
	}
	ce, isConnErr := errors.AsType[*transport.ConnError](err)
	ae, isAppErr := errors.AsType[*quic.ApplicationError](err)
	if !(isConnErr && ce.Code == codeBoundsExceeded && ce.Reason == ErrAcceptQueueFull.Error()) &&
		!(isAppErr && ae.ErrorCode == quic.ApplicationErrorCode(codeBoundsExceeded) && ae.ErrorMessage == ErrAcceptQueueFull.Error()) {
		t.Fatalf("raw-QUIC session: %v, want a close with BoundsExceeded and %q", err, ErrAcceptQueueFull)
	}
	c, req := f.accept(t)
	if req.URL.Path != "/first" || port(c.RemoteAddr()) != port(first.LocalAddr()) {
		t.Fatalf("accepted %s from %s", req.URL.Path, c.RemoteAddr())
	}
	// With the place free again, a new session gets in.
	f.dial(t, "/third", nil)
	if _, req := f.accept(t); req.URL.Path != "/third" {
		t.Fatalf("accepted %s, want /third", req.URL.Path)
	}
}

func TestQueuedSessionsCloseWithTheServer(t *testing.T) {
	f := newServer(t, Config{})
	c := f.dial(t, "/waiting", nil)
	testutil.Eventually(t, "the session queued", func() bool { return len(f.srv.queue.items) == 1 })
	_ = f.srv.Close()
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("queued session outlived the server")
	}
}

func TestOrdinaryHTTP3Requests(t *testing.T) {
	crt := newCert(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /certificate.sha256", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, CertificateHash(crt))
	})
	f := newServerWith(t, crt, Config{Handler: mux})
	qtr := loopback(t)
	tr := &http3.Transport{
		TLSClientConfig: f.clientTLS(),
		Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			return qtr.DialEarly(ctx, ua, tc, qc)
		},
	}
	defer func() { _ = tr.Close() }()
	client := &http.Client{Transport: tr}
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, f.url(path), nil)
		rsp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = rsp.Body.Close() }()
		body, _ := io.ReadAll(rsp.Body)
		return rsp.StatusCode, string(body)
	}
	if code, body := get("/certificate.sha256"); code != http.StatusOK || body != CertificateHash(f.crt) {
		t.Fatalf("certificate hash: %d %q", code, body)
	}
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Fatalf("other path: %d, want 404", code)
	}
	// A WebTransport session on the same server is unaffected.
	f.dial(t, "/room", nil)
	f.accept(t)
}

// dialH3 opens a QUIC connection that negotiates h3 and sends nothing.
func (f *fixture) dialH3(t testing.TB) *quic.Conn {
	t.Helper()
	tc := f.clientTLS()
	tc.NextProtos = []string{http3.NextProtoH3}
	c, err := loopback(t).Dial(testCtx(t), mustUDPAddr(t, f.addr), tc,
		&quic.Config{KeepAlivePeriod: 100 * time.Millisecond, MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(0, "") })
	return c
}

func mustUDPAddr(t testing.TB, addr string) *net.UDPAddr {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// AdmitConn refuses h3 connections before any request, and IdleTimeout
// closes one that opens no request even while the client PINGs.
func TestAdmitConnAndIdleTimeout(t *testing.T) {
	admitted := 0
	f := newServer(t, Config{IdleTimeout: 500 * time.Millisecond, AdmitConn: func(*quic.Conn) error {
		if admitted++; admitted > 1 {
			return errors.New("enough")
		}
		return nil
	}})
	kept, refused := f.dialH3(t), f.dialH3(t)
	select {
	case <-refused.Context().Done():
		var ae *quic.ApplicationError
		if err := context.Cause(refused.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(codeBoundsExceeded) {
			t.Fatalf("refused connection closed with %v, want BoundsExceeded", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("connection AdmitConn refused still open")
	}
	start := time.Now()
	select {
	case <-kept.Context().Done():
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("idle connection closed after %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("request-less h3 connection open 3 s after a 500 ms IdleTimeout")
	}
}
