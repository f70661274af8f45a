package rawquic

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
)

// proxiedPair connects a client to a server through an impairing UDP proxy
// on loopback, both ends with Config().
func proxiedPair(t testing.TB) (client, server transport.Conn, proxy *impair.UDPProxy) {
	t.Helper()
	crt, err := cert.SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	proxy, err = impair.NewUDPProxy(ln.Addr().String(), impair.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	ep, err := NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err = ep.Dial(ctx, proxy.Addr().String(), cert.PinnedConfig(cert.Fingerprint(crt)))
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return client, server, proxy
}

// A peer that goes silent (a partition: no CONNECTION_CLOSE, nothing at
// all, as after kill -9 or a cut cable) is noticed by both ends within the
// default dead-peer bound, on an idle connection.
func TestDeadPeerDetected(t *testing.T) {
	client, server, proxy := proxiedPair(t)
	// idle: only keep-alives keep it up, across a whole idle timeout
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := impair.AwaitTraffic(ctx, proxy, 3*DefaultDeadPeerTimeout/4); err != nil {
		t.Fatalf("no keep-alives through the proxy: %v", err)
	}
	select {
	case <-client.Context().Done():
		t.Fatalf("idle live connection given up: %v", context.Cause(client.Context()))
	default:
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
		if d := time.Since(cut); d > DefaultDeadPeerTimeout+500*time.Millisecond {
			t.Errorf("%s noticed the dead peer after %v, bound %v", name, d, DefaultDeadPeerTimeout)
		} else {
			t.Logf("%s noticed the dead peer after %v", name, d)
		}
	}
}
