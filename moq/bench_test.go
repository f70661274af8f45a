package moq

import (
	"context"
	"crypto/tls"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/loadtest"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// BenchmarkConnect1000 issues 1000 concurrent Connect calls to one peer and
// times them until all return; the acceptor must see exactly one session
// (reported as handshakes/op). BenchmarkConnect1000/raw-handshake is one raw
// quic-go handshake on loopback, for scale, in the same run.
func BenchmarkConnect1000(b *testing.B) {
	b.Run("moq", func(b *testing.B) {
		var handshakes float64
		for range b.N {
			b.StopTimer()
			a, c := newNode(b), newNode(b)
			info := peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			b.StartTimer()
			var wg sync.WaitGroup
			for range 1000 {
				wg.Go(func() {
					if _, err := c.Connect(ctx, info); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			// The acceptor registers its side asynchronously: let it settle,
			// then count what it accepted.
			var list []*Session
			for deadline := time.Now().Add(2 * time.Second); len(list) == 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
				list, _ = a.Sessions(ctx)
			}
			time.Sleep(20 * time.Millisecond)
			list, _ = a.Sessions(ctx)
			handshakes += float64(len(list))
			cancel()
			b.StartTimer()
		}
		b.ReportMetric(handshakes/float64(b.N), "handshakes/op")
	})
	b.Run("raw-handshake", func(b *testing.B) {
		srv, cli, tc := rawEndpoints(b)
		ctx := context.Background()
		for range b.N {
			c, err := cli.Dial(ctx, srv.Addr().String(), tc)
			if err != nil {
				b.Fatal(err)
			}
			s, err := srv.Accept(ctx)
			if err != nil {
				b.Fatal(err)
			}
			_ = c.CloseWithError(0, "")
			_ = s.CloseWithError(0, "")
		}
	})
}

// BenchmarkIdleSession measures the memory an idle session holds (both ends,
// heap after GC), per session: moq sessions between libp2p hosts that were
// already connected, next to raw quic-go connections.
func BenchmarkIdleSession(b *testing.B) {
	const peers = 20
	b.Run("moq", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			server := newNode(b)
			clients := make([]*node, peers)
			for i := range clients {
				clients[i] = newNode(b)
				if err := clients[i].h.Connect(context.Background(), peer.AddrInfo{ID: server.h.ID(), Addrs: server.h.Addrs()}); err != nil {
					b.Fatal(err)
				}
			}
			before := heap()
			b.StartTimer()
			for _, c := range clients {
				if _, err := c.Connect(context.Background(), peer.AddrInfo{ID: server.h.ID()}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			time.Sleep(100 * time.Millisecond) // let both ends settle into idle
			b.ReportMetric(float64(heap()-before)/peers, "B/session")
			b.StartTimer()
		}
	})
	b.Run("raw-quic", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			srv, cli, tc := rawEndpoints(b)
			before := heap()
			b.StartTimer()
			var conns []transport.Conn
			for range peers {
				c, err := cli.Dial(context.Background(), srv.Addr().String(), tc)
				if err != nil {
					b.Fatal(err)
				}
				s, err := srv.Accept(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c, s)
			}
			b.StopTimer()
			time.Sleep(100 * time.Millisecond)
			b.ReportMetric(float64(heap()-before)/peers, "B/session")
			runtime.KeepAlive(conns)
			b.StartTimer()
		}
	})
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkThroughput moves 1 KiB frames (100 per group) through a moq
// session between libp2p hosts (raw QUIC on the hosts' sockets) and, in the
// same run, through a session on plain rawquic endpoints.
func BenchmarkThroughput(b *testing.B) {
	const size, perGroup, window = 1 << 10, 100, 16
	b.Run("libp2p", func(b *testing.B) {
		a, c := newNode(b), newNode(b)
		bc := broadcast.New(broadcast.Config{})
		tp, _ := bc.CreateTrack(broadcast.Track{Name: "t"})
		ctx := context.Background()
		if _, err := a.Publish(ctx, "bench", bc.Consume()); err != nil {
			b.Fatal(err)
		}
		s, err := c.Connect(ctx, peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()})
		if err != nil {
			b.Fatal(err)
		}
		tc, err := s.Subscribe(ctx, "bench", "t")
		if err != nil {
			b.Fatal(err)
		}
		defer tc.Close()
		b.SetBytes(size)
		b.ResetTimer()
		if err := loadtest.Pump(ctx, tp, tc, make([]byte, size), b.N, perGroup, window); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("rawquic", func(b *testing.B) {
		srv, cli, tc := rawEndpoints(b)
		ctx := context.Background()
		cc, err := cli.Dial(ctx, srv.Addr().String(), tc)
		if err != nil {
			b.Fatal(err)
		}
		sc, err := srv.Accept(ctx)
		if err != nil {
			b.Fatal(err)
		}
		origin := broadcast.NewOrigin(0)
		pub, _ := session.New(sc, session.Config{Publish: origin, Logger: testLogger()})
		sub, _ := session.New(cc, session.Config{Logger: testLogger()})
		defer func() { _ = sub.Close(0, ""); _ = pub.Close(0, "") }()
		bc := broadcast.New(broadcast.Config{})
		tp, _ := bc.CreateTrack(broadcast.Track{Name: "t"})
		_, _ = origin.Publish("bench", bc.Consume())
		tcons, err := sub.Subscribe(ctx, "bench", "t", session.SubscribeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer tcons.Close()
		b.SetBytes(size)
		b.ResetTimer()
		if err := loadtest.Pump(ctx, tp, tcons, make([]byte, size), b.N, perGroup, window); err != nil {
			b.Fatal(err)
		}
	})
}

// rawEndpoints returns a listening and a dialing rawquic endpoint on
// loopback, closed when the benchmark ends, and the client TLS config.
func rawEndpoints(b *testing.B) (srv, cli *rawquic.Endpoint, tc *tls.Config) {
	crt, err := cert.SelfSigned()
	if err != nil {
		b.Fatal(err)
	}
	srv, err = rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	cli, err = rawquic.NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
	return srv, cli, cert.PinnedConfig(cert.Fingerprint(crt))
}
