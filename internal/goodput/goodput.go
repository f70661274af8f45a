// Package goodput measures a live stream's goodput over an impaired link,
// ours (moq-lite sessions on raw QUIC) next to raw quic-go carrying the
// same bytes: row F1 of the benchmarks, and its reduced test. A stream of
// 1 KiB frames at 1000 frames/s (a group every 33 frames) crosses a UDP
// proxy on loopback that drops 10 % of the packets and delays each by
// 50 ms, in both directions; goodput is the payload the subscriber
// received during the stream's duration. Stream and RawConns measure the
// same over sessions and connections made elsewhere (libp2p QUIC between
// two nodes, WebSocket between network namespaces), and Compare is the
// tests' alternating comparison and verdict.
package goodput

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// The stream: FPS frames of FrameSize bytes a second, PerGroup frames a
// group.
const (
	FrameSize = 1 << 10
	FPS       = 1000
	PerGroup  = 33
)

// RawALPN is the protocol of the raw quic-go stack's connections.
const RawALPN = "moqp2p-bench"

// Link is the impairment: 10 % loss and 50 ms each way, seeded.
func Link() impair.Config {
	return impair.Config{Loss: 0.10, Delay: 50 * time.Millisecond, Seed: 10}
}

// Mbits converts bytes received over d to Mbit/s.
func Mbits(b int64, d time.Duration) float64 { return float64(b) * 8 / d.Seconds() / 1e6 }

// ends listens on loopback, puts an impairing proxy in front and returns
// the listener and the proxy.
func ends(alpn string) (*quic.Listener, *impair.UDPProxy, error) {
	crt, err := cert.SelfSigned()
	if err != nil {
		return nil, nil, err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{alpn}}, rawquic.Config())
	if err != nil {
		return nil, nil, err
	}
	p, err := impair.NewUDPProxy(ln.Addr().String(), Link())
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	return ln, p, nil
}

// pace calls frame FPS times a second for d.
func pace(ctx context.Context, d time.Duration, frame func(i int)) {
	tick := time.NewTicker(time.Second / FPS)
	defer tick.Stop()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		frame(i)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// Ours streams for d over a moq-lite session speaking alpn (a moq-lite
// ALPN: wire.ALPNLite05, say) on raw QUIC through the impaired link, and
// returns the payload bytes the subscriber received.
func Ours(ctx context.Context, d time.Duration, alpn string) (int64, error) {
	ln, proxy, err := ends(alpn)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	defer proxy.Close()
	cc, err := quic.DialAddr(ctx, proxy.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}, rawquic.Config())
	if err != nil {
		return 0, err
	}
	sc, err := ln.Accept(ctx)
	if err != nil {
		_ = cc.CloseWithError(0, "")
		return 0, err
	}
	quiet := slog.New(slog.DiscardHandler)
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "t"})
	origin.Publish("f1", b.Consume())
	pub, err := session.New(rawquic.Wrap(sc), session.Config{Publish: origin, Logger: quiet})
	if err != nil {
		_ = cc.CloseWithError(0, "")
		return 0, err
	}
	defer pub.Close(0, "")
	sub, err := session.New(rawquic.Wrap(cc), session.Config{Client: true, Logger: quiet})
	if err != nil {
		return 0, err
	}
	defer sub.Close(0, "")
	tc, err := sub.Subscribe(ctx, "f1", "t", session.SubscribeOptions{})
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	return Stream(ctx, d, tp, tc), nil
}

// Stream writes the stream into tp for d (a group every PerGroup frames)
// and returns the payload bytes read from tc, a subscription to tp's track
// over the link measured, meanwhile: ours, whatever the session's
// transport.
func Stream(ctx context.Context, d time.Duration, tp *broadcast.TrackProducer, tc *broadcast.TrackConsumer) int64 {
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var got atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			g, err := tc.RecvGroup(rctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					f, err := g.ReadFrame(rctx)
					if err != nil {
						return
					}
					got.Add(int64(len(f)))
				}
			})
		}
	})
	var gp *broadcast.GroupProducer
	pace(rctx, d, func(i int) {
		if i%PerGroup == 0 {
			if gp != nil {
				_ = gp.Finish()
			}
			gp, _ = tp.AppendGroup()
		}
		if gp != nil {
			_ = gp.WriteFrame(make([]byte, FrameSize))
		}
	})
	<-rctx.Done()
	wg.Wait()
	return got.Load()
}

// Raw streams the same bytes for d on plain quic-go through the impaired
// link, one uni stream per group, each frame size-prefixed as moq-lite
// frames are, and returns the payload bytes the receiver got.
func Raw(ctx context.Context, d time.Duration) (int64, error) {
	ln, proxy, err := ends(RawALPN)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	defer proxy.Close()
	cc, err := quic.DialAddr(ctx, proxy.Addr().String(), RawClientTLS(), rawquic.Config())
	if err != nil {
		return 0, err
	}
	defer cc.CloseWithError(0, "")
	sc, err := ln.Accept(ctx)
	if err != nil {
		return 0, err
	}
	defer sc.CloseWithError(0, "")
	return RawConns(ctx, d, cc, sc), nil
}

// RawClientTLS is the client side's TLS config of the raw stack (ALPN
// RawALPN, any certificate).
func RawClientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{RawALPN}}
}

// RawServerTLS is the listening side's TLS config of the raw stack, with a
// fresh self-signed certificate.
func RawServerTLS() (*tls.Config, error) {
	crt, err := cert.SelfSigned()
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{RawALPN}}, nil
}

// RawConns is Raw over a connection the caller made, across whatever
// impaired path: sc, the accepting end, sends and cc receives; it returns
// the payload bytes cc got in d. The caller closes both.
func RawConns(ctx context.Context, d time.Duration, cc, sc *quic.Conn) int64 {
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var got atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			st, err := cc.AcceptUniStream(rctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				stop := context.AfterFunc(rctx, func() { st.CancelRead(0) })
				defer stop()
				r := bufio.NewReaderSize(st, 16<<10)
				for {
					n, err := wire.ReadVarint(r)
					if err != nil {
						return
					}
					f := make([]byte, n)
					if _, err := io.ReadFull(r, f); err != nil {
						return
					}
					got.Add(int64(n))
				}
			})
		}
	})
	// One goroutine per group stream, fed frame by frame as they are made,
	// as a moq-lite publisher's group writers are.
	var sends sync.WaitGroup
	var frames chan []byte
	var hdr [8]byte
	pace(rctx, d, func(i int) {
		if i%PerGroup == 0 {
			if frames != nil {
				close(frames)
			}
			frames = make(chan []byte, PerGroup)
			ch := frames
			sends.Go(func() {
				st, err := sc.OpenUniStreamSync(rctx)
				if err != nil {
					for range ch {
					}
					return
				}
				stop := context.AfterFunc(rctx, func() { st.CancelWrite(0) })
				defer stop()
				for f := range ch {
					if _, err := st.Write(f); err != nil && !errors.Is(err, context.Canceled) {
						for range ch {
						}
						return
					}
				}
				_ = st.Close()
			})
		}
		frames <- append(wire.AppendFrameHeader(hdr[:0], FrameSize), make([]byte, FrameSize)...)
	})
	if frames != nil {
		close(frames)
	}
	<-rctx.Done()
	sends.Wait()
	wg.Wait()
	return got.Load()
}
