package interop

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// The interop workload: 100 groups of 100 frames of 1 KiB.
const (
	groups, frames, size = 100, 100, 1024
	total                = groups * frames
)

var gomoqtPeers = []struct {
	module, alpn string
}{
	{"gomoqt-lite03", "moq-lite-03"}, // okdaichi/gomoqt v0.12.2
	{"gomoqt-lite04", "moq-lite-04"}, // qumo-dev/gomoqt v0.16.1
}

func logger() *slog.Logger {
	if os.Getenv("MOQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// publish serves the interop workload at "bench", track "data", written once
// the first subscriber arrives (as `moq pub --wait` does).
func publish(t *testing.T) *broadcast.Origin {
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "data"})
	if _, err := origin.Publish("bench", b.Consume()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-tp.Used():
		case <-time.After(60 * time.Second):
			return
		}
		for g := range groups {
			gp, err := tp.AppendGroup()
			if err != nil {
				return
			}
			for f := range frames {
				_ = gp.WriteFrame(pattern.Payload(uint64(g*frames+f), size))
			}
			_ = gp.Finish()
		}
		_ = tp.Finish()
	}()
	t.Cleanup(func() { b.Finish(); <-done })
	return origin
}

// receive subscribes to bench/data on s and collects the workload.
func receive(t *testing.T, s *session.Session) pattern.Summary {
	ctx := ctxFor(t, 60*time.Second)
	var tc *broadcast.TrackConsumer
	// The peer may not serve the broadcast the instant the session is up, and
	// without announce interest there is nothing to wait for but a yes.
	testutil.Until(t, ctx, "a subscription to /bench accepted", func() bool {
		var err error
		tc, err = s.Subscribe(ctx, "/bench", "data", session.SubscribeOptions{})
		return err == nil
	})
	defer tc.Close()
	return collect(t, ctx, tc, total)
}

// collect reads want frames from tc, groups in arrival order, and summarises
// them as the peers do.
func collect(t *testing.T, ctx context.Context, tc *broadcast.TrackConsumer, want uint64) pattern.Summary {
	t.Helper()
	var c pattern.Collector
	for c.Frames() < want {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("after %d frames: %v", c.Frames(), err)
		}
		for {
			f, err := g.ReadFrame(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("group %d after %d frames: %v", g.Sequence(), c.Frames(), err)
			}
			c.Add(g.Sequence(), f)
		}
	}
	return c.Summary(want)
}

func listen(t *testing.T, alpn string) *rawquic.Endpoint {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{alpn}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

func dial(t *testing.T, addr string) transport.Conn {
	ep, err := rawquic.NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() }) // after the session's cleanup, registered later
	conn, err := ep.Dial(ctxFor(t, 10*time.Second), addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func newSession(t *testing.T, conn transport.Conn, cfg session.Config) *session.Session {
	cfg.Logger = logger()
	s, err := session.New(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(broadcast.CodeCancel, "done") })
	return s
}

func check(t *testing.T, what string, got pattern.Summary) {
	t.Helper()
	want := pattern.Expect(groups, frames, size)
	if got.Frames != want.Frames || got.Bytes != want.Bytes || got.SHA256 != want.SHA256 {
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}

var workload = []string{"-groups", strconv.Itoa(groups), "-frames", strconv.Itoa(frames), "-size", strconv.Itoa(size)}

// Our publisher (QUIC server) → gomoqt subscriber (client), which first waits
// for our ANNOUNCE.
func TestOursPublishGomoqtSubscribes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, p := range gomoqtPeers {
		t.Run(p.alpn, func(t *testing.T) {
			bin := peerBinary(t, p.module)
			ln := listen(t, p.alpn)
			origin := publish(t)
			client := startPeer(t, bin, "-role", "client", "-mode", "sub", "-addr", ln.Addr().String(),
				"-broadcast", "/bench", "-announce", "-count", strconv.Itoa(total))
			conn, err := ln.Accept(ctxFor(t, 30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			newSession(t, conn, session.Config{Publish: origin})
			check(t, "gomoqt received", client.summary(t))
		})
	}
}

// gomoqt publisher (QUIC server) → our subscriber (client).
func TestGomoqtPublishesOursSubscribes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, p := range gomoqtPeers {
		t.Run(p.alpn, func(t *testing.T) {
			bin := peerBinary(t, p.module)
			server := startPeer(t, bin, append([]string{"-role", "server", "-mode", "pub", "-broadcast", "/bench"}, workload...)...)
			s := newSession(t, dial(t, server.addr), session.Config{Interest: []string{}})
			if s.Version() != p.alpn {
				t.Fatalf("negotiated %s, want %s", s.Version(), p.alpn)
			}
			check(t, "we received", receive(t, s))
		})
	}
}

// Our publisher (QUIC client) → gomoqt subscriber (server).
func TestOursPublishToGomoqtServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, p := range gomoqtPeers {
		t.Run(p.alpn, func(t *testing.T) {
			bin := peerBinary(t, p.module)
			server := startPeer(t, bin, "-role", "server", "-mode", "sub", "-broadcast", "/bench", "-announce",
				"-count", strconv.Itoa(total))
			newSession(t, dial(t, server.addr), session.Config{Publish: publish(t), Interest: []string{}})
			check(t, "gomoqt received", server.summary(t))
		})
	}
}

// gomoqt publisher (QUIC client) → our subscriber (server), which waits for
// gomoqt's ANNOUNCE before subscribing.
func TestGomoqtPublishesToOurServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, p := range gomoqtPeers {
		t.Run(p.alpn, func(t *testing.T) {
			bin := peerBinary(t, p.module)
			ln := listen(t, p.alpn)
			startPeer(t, bin, append([]string{"-role", "client", "-mode", "pub", "-addr", ln.Addr().String(), "-broadcast", "/bench"}, workload...)...)
			conn, err := ln.Accept(ctxFor(t, 30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			s := newSession(t, conn, session.Config{})
			ctx := ctxFor(t, 30*time.Second)
			for path, b := range s.Remote().Announced(ctx, "") {
				if path == "bench" && b != nil {
					break
				}
			}
			if ctx.Err() != nil {
				t.Fatal("gomoqt's broadcast was never announced")
			}
			check(t, "we received", receive(t, s))
		})
	}
}
