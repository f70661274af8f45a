package p2pstream

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// relayed starts relay R with opts and hosts A and B that reach each other
// only through it: neither listens, hole punching is off (libp2p's default)
// and A knows B only by its circuit address. B holds a reservation on R, and
// A is connected to B through R. It returns the transports of A and B.
func relayed(t *testing.T, opts ...relayv2.Option) (ta, tb *Transport) {
	r := newHost(t, "tcp")
	relay, err := relayv2.New(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	rInfo := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}

	a := newHost(t, "none", libp2p.EnableRelay())
	b := newHost(t, "none", libp2p.EnableRelay())
	if err := b.Connect(testCtx(t), rInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(testCtx(t), b, rInfo); err != nil {
		t.Fatal(err)
	}
	ta, tb = newTransport(t, a), newTransport(t, b)

	circuit := ma.StringCast(r.Addrs()[0].String() + "/p2p/" + r.ID().String() + "/p2p-circuit")
	if err := a.Connect(testCtx(t), peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatal(err)
	}
	return ta, tb
}

// TestOverCircuitRelay runs a session from A to B through a relay whose
// limits are large enough for media but present, so the connection is
// limited.
func TestOverCircuitRelay(t *testing.T) {
	ta, tb := relayed(t, relayv2.WithLimit(&relayv2.RelayLimit{Duration: 10 * time.Minute, Data: 64 << 20}))
	a, b := ta.h, tb.h
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || !conns[0].Stat().Limited {
		t.Fatalf("A–B connections %v: want exactly one, limited", conns)
	}
	if a.Network().Connectedness(b.ID()) != network.Limited {
		t.Fatalf("connectedness %v, want Limited", a.Network().Connectedness(b.ID()))
	}

	start := time.Now()
	d, acc := dialPair(t, ta, tb)
	t.Logf("session over the relay in %v", time.Since(start).Round(time.Microsecond))
	for _, c := range []*Conn{d, acc} {
		if !c.Limited() {
			t.Error("session over a relay not Limited")
		}
	}
	runMedia(t, d, acc, 20, 10, 1<<10, false) // 200 frames of 1 KiB, A publishes
	if n := len(a.Network().ConnsToPeer(b.ID())); n != 1 {
		t.Errorf("%d A–B connections after the session, want the relayed one only", n)
	}
}

// TestStockRelayEndsSession: a relay with libp2p's default limits (128 KiB
// per direction) cuts the circuit, and the sessions end with ErrConnLost.
func TestStockRelayEndsSession(t *testing.T) {
	ta, tb := relayed(t)
	d, acc := dialPair(t, ta, tb)
	st, err := d.OpenUniStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 1024 { // 1 MiB, far beyond the relay's allowance
			if _, err := st.Write(make([]byte, 1024)); err != nil {
				return
			}
		}
		_ = st.Close()
	}()
	// The circuit may be gone before the stream is accepted.
	rs, err := acc.AcceptUniStream(testCtx(t))
	if err == nil {
		var n int64
		n, err = io.Copy(io.Discard, rs)
		t.Logf("received %d bytes before the relay cut the circuit", n)
	}
	if !errors.Is(err, ErrConnLost) {
		t.Errorf("receiving ended with %v, want ErrConnLost", err)
	}
	for _, c := range []*Conn{d, acc} {
		select {
		case <-c.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("session outlived its circuit")
		}
		if err := context.Cause(c.Context()); !errors.Is(err, ErrConnLost) {
			t.Errorf("cause %v, want ErrConnLost", err)
		}
	}
}
