package websocket

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 30*time.Second) }

// testServer is an httptest server (on 127.0.0.1) that accepts WebSocket
// moq-lite connections with its Config and hands them out.
type testServer struct {
	*httptest.Server
	conns chan *Conn
	errs  chan error

	mu       sync.Mutex
	accepted []*Conn
}

func newTestServer(t testing.TB, cfg *Config) *testServer {
	t.Helper()
	ts := &testServer{conns: make(chan *Conn, 16), errs: make(chan error, 16)}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger()
	}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsUpgradeRequest(r) {
			http.Error(w, "not a websocket", http.StatusTeapot)
			return
		}
		c, err := Accept(w, r, cfg)
		if err != nil {
			ts.errs <- err
			return
		}
		ts.mu.Lock()
		ts.accepted = append(ts.accepted, c)
		ts.mu.Unlock()
		ts.conns <- c
	}))
	// Registered before any client's cleanup, so it runs after them: a
	// raw client is gone by then and cannot hold up a close handshake.
	t.Cleanup(func() {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, c := range ts.accepted {
			_ = c.CloseWithError(0, "")
		}
		ts.Close()
	})
	return ts
}

// url is the server's ws:// URL with a path, as @moq/lite would use it.
func (ts *testServer) url() string { return "ws" + strings.TrimPrefix(ts.URL, "http") + "/moq" }

// next waits for the next accepted connection.
func (ts *testServer) next(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-ts.conns:
		return c
	case err := <-ts.errs:
		t.Fatalf("accept: %v", err)
	case <-testCtx(t).Done():
		t.Fatal("no connection accepted")
	}
	return nil
}

// dialPair connects a client with ccfg to a new server with scfg and returns
// both ends; both close when the test ends.
func dialPair(t testing.TB, scfg, ccfg *Config) (client, server *Conn) {
	t.Helper()
	ts := newTestServer(t, scfg)
	if ccfg == nil {
		ccfg = &Config{}
	}
	if ccfg.Logger == nil {
		ccfg.Logger = testutil.Logger()
	}
	client, err := Dial(testCtx(t), ts.url(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CloseWithError(0, "") })
	return client, ts.next(t)
}

// rawClient is a bare coder/websocket client that speaks frames by hand.
type rawClient struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialRaw(t testing.TB, url string, subprotocols ...string) *rawClient {
	t.Helper()
	ws, _, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{Subprotocols: subprotocols})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &rawClient{t: t, ws: ws}
}

func (rc *rawClient) send(msg []byte) {
	rc.t.Helper()
	if err := rc.ws.Write(testCtx(rc.t), websocket.MessageBinary, msg); err != nil {
		rc.t.Fatalf("raw send: %v", err)
	}
}

// sendFrame encodes f in framing fr and sends it.
func (rc *rawClient) sendFrame(fr Framing, f frame) {
	rc.t.Helper()
	var msg []byte
	var err error
	if fr != FramingLegacy {
		msg, err = appendQmux(nil, &f)
	} else {
		msg, err = appendLegacy(nil, &f)
	}
	if err != nil {
		rc.t.Fatal(err)
	}
	rc.send(msg)
}

// recv reads the next binary message; an error ends it.
func (rc *rawClient) recv(ctx context.Context) ([]byte, error) {
	for {
		typ, msg, err := rc.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ == websocket.MessageBinary {
			return msg, nil
		}
	}
}

// recvQmux reads the next qmux frame (one per message, as we send them).
func (rc *rawClient) recvQmux(ctx context.Context) (frame, error) {
	msg, err := rc.recv(ctx)
	if err != nil {
		return frame{}, err
	}
	f, n, err := decodeQmux(msg)
	if err == nil && n != len(msg) {
		err = errors.New("more than one frame in a message")
	}
	return f, err
}

// drain reads until the connection ends, returning the error that ended it.
func (rc *rawClient) drain(ctx context.Context) error {
	for {
		if _, _, err := rc.ws.Read(ctx); err != nil {
			return err
		}
	}
}

// waitDone waits for c's Context to end and returns its cause.
func waitDone(t testing.TB, c *Conn) error {
	t.Helper()
	select {
	case <-c.Context().Done():
		return context.Cause(c.Context())
	case <-testCtx(t).Done():
		t.Fatal("connection still open")
	}
	return nil
}

// forFramings runs f as a subtest per framing and app protocol.
func forFramings(t *testing.T, f func(t *testing.T, fr Framing, app string)) {
	for _, fr := range []Framing{FramingQmux, FramingQmux01, FramingQmux02, FramingLegacy} {
		for _, app := range []string{"", "moq-lite-04"} {
			name := string(fr)
			if app != "" {
				name += "." + app
			}
			t.Run(name, func(t *testing.T) { f(t, fr, app) })
		}
	}
}

// configsFor returns server and client configs negotiating framing fr and
// app protocol app.
func configsFor(fr Framing, app string) (server, client *Config) {
	apps := []string{}
	if app != "" {
		apps = []string{app}
	}
	return &Config{Framings: []Framing{fr}, Protocols: apps}, &Config{Framings: []Framing{fr}, Protocols: apps}
}
