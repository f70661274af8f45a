package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// F1: goodput over an impaired link. A live stream of 1 KiB frames at
// 1000 frames/s (a group every 33 frames) crosses a UDP proxy on loopback
// that drops 10 % of the packets and delays each by 50 ms, in both
// directions; ours is moq-lite sessions on raw QUIC, raw is quic-go with
// one uni stream per group, the same bytes. Goodput is the payload the
// subscriber received during the stream's duration. -f1-duration 60s is
// the full profile; the default is shorter.

const (
	f1FrameSize = 1 << 10
	f1FPS       = 1000
	f1PerGroup  = 33
)

func f1Link() impair.Config {
	return impair.Config{Loss: 0.10, Delay: 50 * time.Millisecond, Seed: 10}
}

func runImpaired(ctx context.Context, cfg config) []*line {
	d := cfg.f1Duration
	logf("F1: %v of 1000 × 1 KiB frames/s over 10 %% loss + 50 ms", d)
	var ours, raw sample
	for run := range cfg.runs {
		if !skip(0) {
			quiesce()
			if b, err := impairedOurs(ctx, d); err != nil {
				logf("F1 ours run %d: %v", run+1, err)
			} else {
				ours = append(ours, float64(b)*8/d.Seconds()/1e6)
				logf("F1 ours run %d: %.2f Mbit/s", run+1, ours[len(ours)-1])
			}
		}
		if !skip(1) {
			quiesce()
			if b, err := impairedRaw(ctx, d); err != nil {
				logf("F1 raw run %d: %v", run+1, err)
			} else {
				raw = append(raw, float64(b)*8/d.Seconds()/1e6)
				logf("F1 raw run %d: %.2f Mbit/s", run+1, raw[len(raw)-1])
			}
		}
	}
	return []*line{{
		Row: "F1", Metric: "goodput at 10 % loss + 50 ms each way, Mbit/s",
		Note: fmt.Sprintf("1000 × 1 KiB frames/s offered (8.2 Mbit/s) for %v; both through the same impairing UDP proxy", d),
		Ours: ours, Raw: raw, Target: "≥ 0.9× raw", Check: atLeast((*line).vsRaw, 0.9),
	}}
}

// impairedEnds listens on loopback, puts an impairing proxy in front and
// returns the listener and the proxy's address.
func impairedEnds(alpn string) (*quic.Listener, *impair.UDPProxy, error) {
	tc, err := serverTLS(alpn)
	if err != nil {
		return nil, nil, err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", tc, rawquic.Config())
	if err != nil {
		return nil, nil, err
	}
	p, err := impair.NewUDPProxy(ln.Addr().String(), f1Link())
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	return ln, p, nil
}

// pace calls frame f1FPS times a second for d.
func pace(ctx context.Context, d time.Duration, frame func(i int)) {
	tick := time.NewTicker(time.Millisecond)
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

func impairedOurs(ctx context.Context, d time.Duration) (int64, error) {
	alpn := cmp.Or(os.Getenv(liteEnv), wire.ALPNLite05) // as the other rows: -alpn, else lite-05
	ln, proxy, err := impairedEnds(alpn)
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
		return 0, err
	}
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "t"})
	origin.Publish("f1", b.Consume())
	pub, err := session.New(rawquic.Wrap(sc), session.Config{Publish: origin, Logger: quietLogger()})
	if err != nil {
		return 0, err
	}
	defer pub.Close(0, "")
	sub, err := session.New(rawquic.Wrap(cc), session.Config{Client: true, Logger: quietLogger()})
	if err != nil {
		return 0, err
	}
	defer sub.Close(0, "")
	tc, err := sub.Subscribe(ctx, "f1", "t", session.SubscribeOptions{})
	if err != nil {
		return 0, err
	}
	defer tc.Close()
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
		if i%f1PerGroup == 0 {
			if gp != nil {
				_ = gp.Finish()
			}
			gp, _ = tp.AppendGroup()
		}
		if gp != nil {
			_ = gp.WriteFrame(make([]byte, f1FrameSize))
		}
	})
	<-rctx.Done()
	wg.Wait()
	return got.Load(), nil
}

func impairedRaw(ctx context.Context, d time.Duration) (int64, error) {
	ln, proxy, err := impairedEnds(rawALPN)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	defer proxy.Close()
	cc, err := quic.DialAddr(ctx, proxy.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{rawALPN}}, rawquic.Config())
	if err != nil {
		return 0, err
	}
	defer cc.CloseWithError(0, "")
	sc, err := ln.Accept(ctx)
	if err != nil {
		return 0, err
	}
	defer sc.CloseWithError(0, "")
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
		if i%f1PerGroup == 0 {
			if frames != nil {
				close(frames)
			}
			frames = make(chan []byte, f1PerGroup)
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
		frames <- append(wire.AppendFrameHeader(hdr[:0], f1FrameSize), make([]byte, f1FrameSize)...)
	})
	if frames != nil {
		close(frames)
	}
	<-rctx.Done()
	sends.Wait()
	wg.Wait()
	return got.Load(), nil
}
