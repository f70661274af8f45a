package rawquic

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
)

// proxiedPair connects a client to a server through an impairing UDP proxy
// on loopback, both ends with Config().
func proxiedPair(t testing.TB) (client, server transport.Conn, proxy *impair.UDPProxy) {
	t.Helper()
	return proxiedPairQC(t, nil)
}

// proxiedPairQC is proxiedPair with qc (nil: Config()) on both ends.
func proxiedPairQC(t testing.TB, qc *quic.Config) (client, server transport.Conn, proxy *impair.UDPProxy) {
	t.Helper()
	crt, err := cert.SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, qc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	proxy, err = impair.NewUDPProxy(ln.Addr().String(), impair.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	ep, err := NewEndpoint("127.0.0.1:0", qc)
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

// A vanished peer is transport.ErrConnLost, with quic-go's error kept in the
// chain, on the connection and on its streams; its moq-lite code is
// Transport, not a protocol violation.
func TestDeadPeerIsConnLost(t *testing.T) {
	client, server, proxy := proxiedPairQC(t, ConfigDeadPeer(400*time.Millisecond))
	proxy.Set(impair.Config{Loss: 1})
	for name, c := range map[string]transport.Conn{"client": client, "server": server} {
		select {
		case <-c.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: dead peer not noticed in 5 s", name)
		}
		cause := context.Cause(c.Context())
		_, err := c.AcceptStream(context.Background())
		for what, err := range map[string]error{"cause": cause, "AcceptStream": err} {
			if !errors.Is(err, transport.ErrConnLost) {
				t.Errorf("%s %s: %v, want transport.ErrConnLost", name, what, err)
			}
			if _, ok := errors.AsType[*quic.IdleTimeoutError](err); !ok {
				t.Errorf("%s %s: %v lost quic-go's idle timeout", name, what, err)
			}
			if c, ok := errors.AsType[interface {
				error
				ErrorCode() uint32
			}](err); !ok || c.ErrorCode() != 4 {
				t.Errorf("%s %s: %v carries no Transport code", name, what, err)
			}
		}
	}
}

// quic-go's other word for a vanished peer, a stateless reset (it restarted
// and forgot the connection), and a connection we closed ourselves because
// its peer went silent are lost connections too; a close with a code by
// either side is not.
func TestConvertMarksLostPeers(t *testing.T) {
	for _, c := range []struct {
		err  error
		lost bool
	}{
		{&quic.IdleTimeoutError{}, true},
		{&quic.StatelessResetError{}, true},
		{&quic.ApplicationError{ErrorCode: codeTimeout, ErrorMessage: "peer silent"}, true},
		{&quic.ApplicationError{ErrorCode: codeTimeout, Remote: true}, false},
		{&quic.ApplicationError{ErrorCode: 0, Remote: true}, false},
		{&quic.HandshakeTimeoutError{}, false},
	} {
		if got := errors.Is(convert(c.err), transport.ErrConnLost); got != c.lost {
			t.Errorf("convert(%T %v) lost = %v, want %v", c.err, c.err, got, c.lost)
		}
	}
}
