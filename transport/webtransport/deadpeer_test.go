package webtransport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// A peer that goes silent (a partition: no CONNECTION_CLOSE, nothing at
// all, as after kill -9 or a cut cable) is noticed by both ends of a
// WebTransport session within the default dead-peer bound, on an idle
// session: QUIC's idle timeout with keep-alive PINGs, from QUICConfig on
// both sides.
func TestDeadPeerDetected(t *testing.T) {
	f := newServer(t, Config{})
	proxy, err := impair.NewUDPProxy(f.addr, impair.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	d := f.dialer(t)
	client, err := d.Dial(testCtx(t), "https://"+proxy.Addr().String()+"/room")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CloseWithError(0, "test over") })
	server, _ := f.accept(t)
	bound := rawquic.DefaultDeadPeerTimeout
	// idle: only keep-alives keep it up, across most of an idle timeout
	if err := impair.AwaitTraffic(testCtx(t), proxy, 3*bound/4); err != nil {
		t.Fatalf("no keep-alives through the proxy: %v", err)
	}
	for name, c := range map[string]transport.Conn{"client": client, "server": server} {
		select {
		case <-c.Context().Done():
			t.Fatalf("%s: idle live session given up: %v", name, context.Cause(c.Context()))
		default:
		}
	}
	proxy.Set(impair.Config{Loss: 1})
	cut := time.Now()
	for name, c := range map[string]transport.Conn{"client": client, "server": server} {
		select {
		case <-c.Context().Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: dead peer not noticed in 10 s", name)
		}
		// The idle timer runs from the last packet received, at most the
		// bound before the cut; timers add a little.
		if d := time.Since(cut); d > bound+500*time.Millisecond {
			t.Errorf("%s noticed the dead peer after %v, bound %v", name, d, bound)
		} else {
			t.Logf("%s noticed the dead peer after %v: %v", name, d, context.Cause(c.Context()))
		}
		if cause := context.Cause(c.Context()); !errors.Is(cause, transport.ErrConnLost) {
			t.Errorf("%s: ended with %v, want transport.ErrConnLost", name, cause)
		}
	}
}
