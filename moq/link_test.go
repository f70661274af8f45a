package moq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// A kept link goes connecting → connected; when the peer goes silent it
// goes reconnecting, and connected again once the partition heals; Detach
// ends it with detached. The application follows it all through Changes.
func TestKeepLinkStates(t *testing.T) {
	a, b := newNode(t, WithDeadPeerTimeout(time.Second)), newNode(t, WithDeadPeerTimeout(time.Second))
	info, link := linkTo(t, b, true)
	l := a.Keep(info, KeepOptions{})
	changes := make(chan LinkChange, 64)
	go func() {
		defer close(changes)
		for c := range l.Changes(context.Background()) {
			changes <- c
		}
	}()
	next := func(want LinkState) LinkChange {
		t.Helper()
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					t.Fatalf("changes ended waiting for %v", want)
				}
				if c.State == want {
					return c
				}
				t.Logf("state %v", c.State)
			case <-time.After(15 * time.Second):
				t.Fatalf("no %v within 15 s (now %v)", want, l.State().State)
			}
		}
	}
	c := next(LinkConnected)
	if c.Session == nil || c.Session.RemotePeer() != b.h.ID() {
		t.Fatalf("connected without the session to %s: %+v", b.h.ID(), c)
	}
	link.Set(impair.Config{Loss: 1})
	if c := next(LinkReconnecting); c.Err == nil {
		t.Error("reconnecting without the lost session's error")
	}
	link.Set(impair.Config{})
	healed := time.Now()
	c = next(LinkConnected)
	t.Logf("reconnected %v after the partition healed", time.Since(healed))
	if c.Session.Err() != nil {
		t.Fatalf("new session already ended: %v", c.Session.Err())
	}
	if s, err := l.Session(testCtx(t)); err != nil || s.RemotePeer() != b.h.ID() {
		t.Fatalf("Session: %v, %v", s, err)
	}
	l.Detach()
	next(LinkDetached)
	if _, ok := <-changes; ok {
		t.Error("changes go on after detached")
	}
	if _, err := l.Session(testCtx(t)); !errors.Is(err, ErrDetached) {
		t.Errorf("Session after Detach: %v", err)
	}
}

// A kept link whose attempts fail reports each failure as its current
// state again, with the attempt's error, so an application (moq relay's
// log) learns why the link is not up.
func TestKeepLinkReportsFailedAttempts(t *testing.T) {
	a, b := newNode(t), newNode(t)
	// b's identity at an address nobody listens on.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", pc.LocalAddr().(*net.UDPAddr).Port))
	_ = pc.Close()
	l := a.Keep(peer.AddrInfo{ID: b.h.ID(), Addrs: []ma.Multiaddr{dead}}, KeepOptions{AttemptTimeout: 300 * time.Millisecond})
	defer l.Detach()
	for c := range l.Changes(testCtx(t)) {
		switch {
		case c.State == LinkConnecting && c.Err != nil:
			t.Logf("failed attempt reported: %v", c.Err)
			return
		case c.State != LinkConnecting:
			t.Fatalf("state %v, want connecting", c.State)
		}
	}
	t.Fatal("no failed attempt reported within 15 s")
}

// A resilient track pinned to a peer (a ticket's) redials that peer after
// a partition; with MaxOutage shorter than the outage it ends with
// ErrOutage instead.
func TestResilientTrackPinnedPeerAndOutage(t *testing.T) {
	pub, sub := newNode(t, WithDeadPeerTimeout(time.Second)), newNode(t, WithDeadPeerTimeout(time.Second))
	info, link := linkTo(t, pub, true)
	m := publish(t, pub, "live")
	paced(t, m, 15)
	pinned, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{Peer: &info})
	if err != nil {
		t.Fatal(err)
	}
	r := record(t, pinned)
	bounded, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{Peer: &info, MaxOutage: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bounded.Close()
	time.Sleep(500 * time.Millisecond)
	link.Set(impair.Config{Loss: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := bounded.NextGroup(ctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrOutage) {
			t.Fatalf("bounded track ended with %v, want ErrOutage", err)
		}
		break
	}
	link.Set(impair.Config{})
	healed := time.Now()
	eventually(t, "the pinned track resumes", func() bool {
		got := r.snapshot()
		return len(got) > 0 && got[len(got)-1].at.After(healed)
	})
	t.Logf("pinned track resumed after %v", time.Since(healed))
}

// A resilient track on a caller's link follows the link's session: when
// the publisher ends the broadcast it waits for the next announcement; a
// broadcast that refuses the track holds it until the announcement
// changes, and the broadcast announced next (with the track) resumes it.
// Once the link is detached, the track ends with the next loss.
func TestResilientTrackOnLinkFollowsAnnouncements(t *testing.T) {
	pub, sub := newNode(t), newNode(t)
	l := sub.Keep(pub.info(), KeepOptions{})
	defer l.Detach()
	m1 := publish(t, pub, "live")
	paced(t, m1, 30)
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{Link: l})
	if err != nil {
		t.Fatal(err)
	}
	r := record(t, tr)
	eventually(t, "groups from the first broadcast", func() bool { return len(r.snapshot()) > 3 })

	// The next broadcast at the name lacks the track: its subscription is
	// refused (each refusal noted).
	refused := make(chan struct{}, 64)
	b2 := broadcast.New(broadcast.Config{OnTrack: func(tp *broadcast.TrackProducer) {
		tp.Abort(broadcast.ErrNotFound)
		select {
		case refused <- struct{}{}:
		default:
		}
	}})
	m1.pub.Unpublish()
	p2, err := pub.Publish(testCtx(t), "live", b2.Consume())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-refused:
	case <-time.After(15 * time.Second):
		t.Fatal("the broadcast without the track was never asked for it")
	}
	p2.Unpublish()
	before := len(r.snapshot())
	m3 := publish(t, pub, "live")
	paced(t, m3, 30)
	ok := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(50 * time.Millisecond) {
		ok = len(r.snapshot()) > before+3
	}
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for ev := range tr.Events(ctx) {
			t.Logf("event %v %v %v", ev.Kind, ev.Err, ev.At.Format("15:04:05.000"))
		}
		t.Fatalf("no groups from the third; err %v", r.err)
	}
	t.Logf("refusals asked of the broadcast without the track: %d", 1+len(refused))

	// Detached, the link brings no next session: the track ends.
	l.Detach()
	m3.pub.Unpublish()
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the track goes on after its link was detached and its broadcast ended")
	}
	if !errors.Is(r.err, ErrDetached) {
		t.Errorf("track ended with %v, want ErrDetached", r.err)
	}
}

// A peer that takes every session and ends it at once (here: a server
// that refuses each client as it arrives) is redialed with backoff, as a
// failed dial is, not as fast as handshakes go.
func TestKeepOpenBacksOffSessionsThatEndAtOnce(t *testing.T) {
	crt, err := cert.SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var wg sync.WaitGroup
	defer func() { _ = ln.Close(); wg.Wait() }()
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.CloseWithError(uint32(broadcast.CodeUnauthorized), "not you")
		}
	})
	addr := ln.Addr().String()
	dial := func(ctx context.Context) (transport.Conn, error) {
		return rawquic.Dial(ctx, addr, cert.PinnedConfig(cert.Fingerprint(crt)), nil)
	}
	n := newNode(t)
	l := n.KeepOpen(dial, KeepOptions{})
	const watch = 2 * time.Second
	time.Sleep(watch) // the behaviour under test: how often it redials in this time
	l.Detach()
	// Pauses of 100, 200, 400 ms, then 500 ms: about 6 sessions in 2 s
	// (each also waits for its handshake); unchecked, a loopback handshake
	// every few milliseconds made hundreds.
	got := accepted.Load()
	t.Logf("%d sessions in %v", got, watch)
	if got < 2 || got > 10 {
		t.Errorf("%d sessions in %v: want it redialed, with backoff (about 6)", got, watch)
	}
}
