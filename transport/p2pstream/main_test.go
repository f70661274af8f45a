package p2pstream

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger() *slog.Logger {
	if os.Getenv("MOQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// kinds are the libp2p transports every test runs over.
var kinds = []string{"tcp", "quic"}

func forKinds(t *testing.T, f func(t *testing.T, kind string)) {
	for _, k := range kinds {
		t.Run(k, func(t *testing.T) { f(t, k) })
	}
}

// transportOpts makes a host use only one libp2p transport, on loopback
// (none listens for "none").
func transportOpts(kind string) []libp2p.Option {
	switch kind {
	case "tcp":
		return []libp2p.Option{libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}
	case "quic":
		return []libp2p.Option{libp2p.Transport(libp2pquic.NewTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1")}
	}
	return []libp2p.Option{libp2p.Transport(tcp.NewTCPTransport), libp2p.NoListenAddrs}
}

// newHost starts a host over kind with the moq resource-manager limits,
// closed when the test ends.
func newHost(t testing.TB, kind string, opts ...libp2p.Option) host.Host {
	t.Helper()
	return startHost(t, kind, append(opts, ResourceManager(0))...)
}

// newStockHost starts a host with libp2p's default resource manager.
func newStockHost(t testing.TB, kind string, opts ...libp2p.Option) host.Host {
	t.Helper()
	return startHost(t, kind, opts...)
}

func startHost(t testing.TB, kind string, opts ...libp2p.Option) host.Host {
	t.Helper()
	all := append(transportOpts(kind), libp2p.DisableMetrics())
	h, err := libp2p.New(append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	if err := a.Connect(testCtx(t), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// newTransport runs a Transport on h, closed when the test ends (before
// the host, as cleanups run last-in first-out).
func newTransport(t testing.TB, h host.Host) *Transport {
	tr := New(h, Config{Logger: testLogger()})
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// dialPair dials a session from dt to lt's host and accepts it there.
func dialPair(t testing.TB, dt, lt *Transport) (dialed, accepted *Conn) {
	t.Helper()
	got := make(chan *Conn, 1)
	go func() {
		c, err := lt.Accept(testCtx(t))
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	dialed, err := dt.Dial(testCtx(t), lt.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	accepted = <-got
	if accepted == nil {
		t.FailNow()
	}
	return dialed, accepted
}

// setup makes two connected hosts over kind with transports and one session
// between them.
func setup(t testing.TB, kind string) (dialed, accepted *Conn) {
	t.Helper()
	a, b := newHost(t, kind), newHost(t, kind)
	connect(t, a, b)
	return dialPair(t, newTransport(t, a), newTransport(t, b))
}
