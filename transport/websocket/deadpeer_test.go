package websocket

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/keepalive"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// A peer that goes silent without closing anything (a partition: TCP
// carries nothing and reports nothing) is noticed by both ends within the
// default dead-peer bound, on an idle connection, on both framings.
func TestDeadPeerDetected(t *testing.T) {
	for _, fr := range []Framing{FramingQmux, FramingLegacy} {
		t.Run(string(fr), func(t *testing.T) {
			ts := newTestServer(t, nil)
			proxy, err := impair.NewTCPProxy(strings.TrimPrefix(ts.URL, "http://"), impair.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			client, err := Dial(testCtx(t), "ws://"+proxy.Addr().String()+"/moq", &Config{Framings: []Framing{fr}, Logger: testutil.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			defer client.CloseWithError(0, "")
			server := ts.next(t)
			// idle: pings keep it up, across a whole keep-alive timeout
			if err := impair.AwaitTraffic(testCtx(t), proxy, keepalive.DefaultTimeout); err != nil {
				t.Fatalf("no pings through the proxy: %v", err)
			}
			if client.Context().Err() != nil || server.Context().Err() != nil {
				t.Fatalf("idle live connection given up: %v / %v", context.Cause(client.Context()), context.Cause(server.Context()))
			}
			proxy.Set(impair.Config{Loss: 1})
			cut := time.Now()
			for name, c := range map[string]*Conn{"client": client, "server": server} {
				err := waitDone(t, c)
				if !errors.Is(err, ErrConnLost) || !errors.Is(err, keepalive.ErrTimeout) {
					t.Errorf("%s: cause %v, want ErrConnLost and the keep-alive timeout", name, err)
				}
				if d := time.Since(cut); d > keepalive.DefaultTimeout+500*time.Millisecond {
					t.Errorf("%s noticed the dead peer after %v, bound %v", name, d, keepalive.DefaultTimeout)
				} else {
					t.Logf("%s noticed the dead peer after %v", name, d)
				}
			}
		})
	}
}

// A peer that keeps sending but answers no ping (here a raw client that
// never reads, so its WebSocket never sees our pings; in practice a pong
// queued behind the peer's messages, which a loaded reader takes in late)
// is alive: the connection outlasts the bound many times over. Once the
// peer falls silent it is given up within the bound.
func TestSendingPeerIsAlive(t *testing.T) {
	const bound = 2 * time.Second
	ts := newTestServer(t, &Config{DeadPeerTimeout: bound})
	rc := dialRaw(t, ts.url(), string(FramingQmux))
	s := ts.next(t)
	for range 3 * bound / (50 * time.Millisecond) {
		rc.send([]byte{0x00}) // qmux PADDING
		if s.Context().Err() != nil {
			t.Fatalf("a peer still sending given up: %v", context.Cause(s.Context()))
		}
		time.Sleep(50 * time.Millisecond) // the pace of the peer's messages, not a wait
	}
	cut := time.Now()
	err := waitDone(t, s)
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, keepalive.ErrTimeout) {
		t.Fatalf("cause %v, want ErrConnLost and the keep-alive timeout", err)
	}
	if d := time.Since(cut); d > bound+time.Second {
		t.Errorf("the silent peer was given up after %v, bound %v", d, bound)
	}
}
