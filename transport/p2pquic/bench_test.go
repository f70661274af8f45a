package p2pquic

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// BenchmarkHandshake compares one moq-lite connection setup over p2pquic
// (libp2p certificates with the peer ID check, the host's shared socket, the
// resource manager) with one over plain rawquic (a pinned self-signed
// certificate, a fresh socket per dial), both on IPv4 loopback. An op is a
// client Dial, the server's Accept of that connection, and closing both.
func BenchmarkHandshake(b *testing.B) {
	b.Run("p2pquic", func(b *testing.B) {
		srv, cl := newNode(b, roomyLimits(b)), newNode(b, roomyLimits(b))
		addr := srv.addr(b, "127.0.0.1")
		accepted := serve(b, func(ctx context.Context) (transport.Conn, error) { return srv.t.Accept(ctx) })
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			c, err := cl.t.Dial(ctx, srv.id(), addr)
			if err != nil {
				b.Fatal(err)
			}
			sc := <-accepted
			_ = c.CloseWithError(0, "")
			_ = sc.CloseWithError(0, "")
		}
	})
	b.Run("rawquic", func(b *testing.B) {
		crt, err := cert.SelfSigned()
		if err != nil {
			b.Fatal(err)
		}
		ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ln.Close() }) // runs after serve's cleanup
		accepted := serve(b, ln.Accept)
		tc := cert.PinnedConfig(cert.Fingerprint(crt))
		addr := ln.Addr().String()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			c, err := rawquic.Dial(ctx, addr, tc, nil)
			if err != nil {
				b.Fatal(err)
			}
			sc := <-accepted
			_ = c.CloseWithError(0, "")
			_ = sc.CloseWithError(0, "")
		}
	})
}

// serve passes accepted connections to the benchmark loop until cleanup.
func serve(b *testing.B, accept func(context.Context) (transport.Conn, error)) <-chan transport.Conn {
	ch := make(chan transport.Conn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := accept(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- c:
			case <-ctx.Done():
				_ = c.CloseWithError(0, "")
				return
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return ch
}
