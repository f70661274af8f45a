package moq

import (
	"context"
	"errors"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// A peer that opens session after session over libp2p streams ends up with
// PeerLimits.Sessions of them: the actor closes the rest with
// BoundsExceeded (the stream transport refuses, before a session starts,
// what lies beyond its own bound, which sequential dials rarely reach: the
// actor frees its slots quickly). Other peers are not affected.
func TestPeerSessionLimit(t *testing.T) {
	n := newTCPNode(t)
	hostile, err := NewHost(HostConfig{ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hostile.Close() })
	ht := p2pstream.New(hostile, p2pstream.Config{Logger: testLogger()})
	t.Cleanup(func() { _ = ht.Close() })
	if err := hostile.Connect(testCtx(t), n.info()); err != nil {
		t.Fatal(err)
	}
	const dials = 20
	var conns []*p2pstream.Conn
	refusedAtOnce := 0
	for range dials {
		c, err := ht.Dial(testCtx(t), n.h.ID())
		var ce *transport.ConnError
		switch {
		case err == nil:
			conns = append(conns, c)
		case errors.As(err, &ce) && ce.Code == uint32(broadcast.CodeBoundsExceeded):
			refusedAtOnce++
		default:
			t.Fatalf("dial: %v", err)
		}
	}
	eventually(t, "the node to settle on its limit", func() bool {
		live := 0
		for _, c := range conns {
			if c.Context().Err() == nil {
				live++
			}
		}
		return live == actor.DefaultMaxSessionsPerPeer && len(sessionsWith(t, n, hostile.ID().String())) == actor.DefaultMaxSessionsPerPeer
	})
	closedByActor := 0
	for _, c := range conns {
		if c.Context().Err() == nil {
			continue
		}
		var ce *transport.ConnError
		if err := context.Cause(c.Context()); !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeBoundsExceeded) || !ce.Remote {
			t.Errorf("session closed with %v, want BoundsExceeded from the node", err)
		}
		closedByActor++
	}
	t.Logf("%d dials: %d refused by p2pstream, %d closed by the actor, %d kept", dials, refusedAtOnce, closedByActor, actor.DefaultMaxSessionsPerPeer)
	if refusedAtOnce+closedByActor != dials-actor.DefaultMaxSessionsPerPeer {
		t.Errorf("%d of %d sessions refused, want %d", refusedAtOnce+closedByActor, dials, dials-actor.DefaultMaxSessionsPerPeer)
	}
	other := newTCPNode(t)
	other.connect(t, n)
}

func sessionsWith(t *testing.T, n *node, p string) []*Session {
	all, err := n.Sessions(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []*Session
	for _, s := range all {
		if s.RemotePeer().String() == p {
			out = append(out, s)
		}
	}
	return out
}

// A P2P peer may hold WithPendingAdmissions' per-peer bound of pending
// admissions; its next connection is refused with BoundsExceeded.
func TestPendingAdmissionsPerPeer(t *testing.T) {
	adm := testutil.NewBlockingAdmission()
	a := newNode(t, WithAdmission(adm.Admit), WithPendingAdmissions(64, 2))
	b := newNode(t)
	if err := b.h.Connect(testCtx(t), a.info()); err != nil {
		t.Fatal(err)
	}
	conns := b.h.Network().ConnsToPeer(a.h.ID())
	if len(conns) == 0 {
		t.Fatal("no libp2p connection")
	}
	raddr := conns[0].RemoteMultiaddr()
	var open []*p2pquic.Conn
	defer func() {
		for _, c := range open {
			_ = c.CloseWithError(0, "")
		}
	}()
	for range 2 {
		c, err := b.quic.Dial(testCtx(t), a.h.ID(), raddr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	adm.WaitEntered(t, testCtx(t), 2)
	c, err := b.quic.Dial(testCtx(t), a.h.ID(), raddr)
	if err != nil {
		t.Fatal(err)
	}
	open = append(open, c)
	closedWith(t, c, broadcast.CodeBoundsExceeded)
	if r := adm.Running.Load(); r != 2 {
		t.Fatalf("%d admissions running, want 2", r)
	}
	close(adm.Release)
}

// closedWith waits for c to be closed and checks the close code.
func closedWith(t *testing.T, c transport.Conn, code broadcast.Code) {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("refused connection stays open")
	}
	var ce *transport.ConnError
	if err := context.Cause(c.Context()); !errors.As(err, &ce) || ce.Code != uint32(code) {
		t.Fatalf("closed with %v, want code %d", err, code)
	}
}
