package main

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// TestRelayFailoverKill: two moq relay processes serve one broadcast from
// one publisher; a subscriber (a forwarding node in this process, linked
// to both relays) is receiving through the preferred one when that
// process is killed with SIGKILL: no CONNECTION_CLOSE, its sockets simply
// go silent. The subscriber's node notices within its dead-peer bound
// and carries on through the other relay at the next group; the gap is at
// most that bound plus 500 ms.
func TestRelayFailoverKill(t *testing.T) {
	t.Parallel()
	const (
		deadPeer = 2 * time.Second
		k        = 5   // frames per group
		size     = 256 // bytes per frame
	)
	dp := "--dead-peer-timeout=" + deadPeer.String()
	// 500 frames/s, 100 groups/s: a gap shows to within 10 ms.
	pub, _ := listenFor(t, "pub", "/ip4/127.0.0.1/udp/0/quic-v1", false, "--broadcast", "fo", "--frames", "0",
		"--group-frames", "5", "--size", "256", "--rate", "500", dp)
	pubAddr := field(pub.stderr.await(t, pub.name, "listening: /", time.Second))
	r1, a1 := startRelay(t, "relay 1", "--listen", loopbackQUIC, "--connect", pubAddr, dp)
	_, a2 := startRelay(t, "relay 2", "--listen", loopbackQUIC, "--connect", pubAddr, dp)
	info1, info2 := addrInfo(t, a1["p2p"]), addrInfo(t, a2["p2p"])

	// Relay 2 costs more: relay 1 carries the track while both stand.
	m := failoverSubscriber(t, deadPeer, func(s *moq.Session) int {
		if s.RemotePeer() == info2.ID {
			return 10
		}
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, info := range []peer.AddrInfo{info1, info2} {
		if _, err := m.Connect(ctx, info); err != nil {
			t.Fatalf("connect to relay %s: %v", info.ID, err)
		}
	}
	for {
		st, err := m.ForwardStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Routes == 2 && m.Forwarded().Get("fo") != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the subscriber has %d routes to fo, want 2 (one per relay)", st.Routes)
		case <-time.After(20 * time.Millisecond):
		}
	}
	tc, err := m.Subscribe(ctx, "fo", "data")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	type arrival struct {
		seq uint64
		at  time.Time
	}
	var (
		got    []arrival
		cut    []uint64 // groups relay 1 was sending when it died
		killed time.Time
	)
	seen := map[uint64]bool{}
	recv := func() {
		t.Helper()
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("after %d groups: %v\nrelay 1: %s", len(got), err, r1.stderr.bytes())
		}
		seq := g.Sequence()
		if seen[seq] {
			t.Fatalf("group %d twice", seq)
		}
		seen[seq] = true
		for i := range uint64(k) {
			fr, err := g.ReadFrame(ctx)
			if err != nil && !killed.IsZero() {
				// The route died under it: the group ends with the
				// route's error (its remaining frames never came).
				cut = append(cut, seq)
				return
			}
			if err != nil {
				t.Fatalf("group %d frame %d: %v", seq, i, err)
			}
			if !bytes.Equal(fr, pattern.Payload(seq*k+i, size)) {
				t.Fatalf("group %d frame %d differs", seq, i)
			}
		}
		got = append(got, arrival{seq, time.Now()})
	}
	for len(got) < 30 {
		recv()
	}
	killed = time.Now()
	if err := r1.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	last := len(got) - 1 // the last group known to come before the kill
	for len(got) < last+1+50 {
		recv()
	}
	// The gap is the longest wait between two groups from the kill on
	// (groups relay 1 had already sent may still arrive after it).
	var gap time.Duration
	var resumed int
	for i := last + 1; i < len(got); i++ {
		if d := got[i].at.Sub(got[i-1].at); d > gap {
			gap, resumed = d, i
		}
	}
	before := slices.MaxFunc(got[:resumed], func(a, b arrival) int { return int(a.seq) - int(b.seq) }).seq
	t.Logf("relay 1 killed: gap %v (first group after it %v after the kill), group %d after %d; cut short: %v",
		gap.Round(time.Millisecond), got[resumed].at.Sub(killed).Round(time.Millisecond), got[resumed].seq, before, cut)
	if got[resumed].seq <= before {
		t.Errorf("resumed at group %d, not after %d", got[resumed].seq, before)
	}
	if st, _ := m.ForwardStats(ctx); st.Switches == 0 {
		t.Fatal("no route switch counted: the killed relay was not the active route")
	}
	if bound := deadPeer + 500*time.Millisecond; gap > bound {
		t.Fatalf("failover gap %v, want at most the dead-peer bound %v + 500 ms", gap, deadPeer)
	}
}

// failoverSubscriber is a forwarding moq node on loopback with the
// dead-peer bound d and the link costs cost gives.
func failoverSubscriber(t *testing.T, d time.Duration, cost func(*moq.Session) int) *moq.Moq {
	t.Helper()
	q := p2pquic.New(p2pquic.Config{DeadPeerTimeout: d})
	h, err := moq.NewHost(moq.HostConfig{QUIC: q, AddrsFactory: func(as []ma.Multiaddr) []ma.Multiaddr {
		return slices.DeleteFunc(as, func(a ma.Multiaddr) bool { return !manet.IsIPLoopback(a) })
	}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := moq.New(h, moq.WithQUIC(q), moq.WithDeadPeerTimeout(d), moq.WithShutdownGrace(time.Second),
		moq.WithForwarding(moq.Forwarding{Cost: cost}))
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		_ = h.Close()
	})
	return m
}

func addrInfo(t *testing.T, s string) peer.AddrInfo {
	t.Helper()
	info, err := peer.AddrInfoFromString(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return *info
}
