package moq

import (
	"crypto/tls"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// Frame timestamps (moq-lite-05) survive a relay: a lite-05 publisher's
// frames reach the relay's subscribers with their timestamps, whether a
// group is copied as its frames arrive or whole.
func TestForwardKeepsTimestamps(t *testing.T) {
	ctx := testCtx(t)
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{wire.ALPNLite05}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	origin := broadcast.NewOrigin(7)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	if _, err := origin.Publish("ts", b.Consume()); err != nil {
		t.Fatal(err)
	}
	served := make(chan *session.Session, 1)
	go func() {
		c, err := ep.Accept(ctx)
		if err != nil {
			served <- nil
			return
		}
		s, _ := session.New(c, session.Config{Publish: origin, Interest: []string{}, Logger: testLogger()})
		served <- s
	}()
	relay := newRelay(t, Forwarding{})
	c, err := rawquic.Dial(ctx, ep.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{wire.ALPNLite05}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := relay.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if v := rs.Version(); v != wire.ALPNLite05 {
		t.Fatalf("version %s, want %s", v, wire.ALPNLite05)
	}
	if s := <-served; s == nil {
		t.Fatal("the publisher's session did not start")
	} else {
		defer s.Close(broadcast.CodeCancel, "done")
	}
	tc, err := forwarded(t, relay, "ts").SubscribeTrack(broadcast.Track{Name: "video"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	select {
	case <-tp.Used(): // the relay's upstream subscription
	case <-ctx.Done():
		t.Fatal("the relay did not subscribe upstream")
	}
	// Group 0 frame by frame, each read at the relay's subscriber before
	// the next is written (the relay copies it as it arrives); group 1
	// whole.
	gp, err := tp.CreateGroup(0)
	if err != nil {
		t.Fatal(err)
	}
	var g *broadcast.GroupConsumer
	for i := range uint64(3) {
		if err := gp.WriteFrameAt(100+i*33, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if g, err = tc.RecvGroup(ctx); err != nil {
				t.Fatal(err)
			}
		}
		f, ts, err := g.ReadFrameAt(ctx)
		if err != nil || len(f) != 1 || f[0] != byte(i) || ts != 100+i*33 {
			t.Fatalf("group 0 frame %d: %v at %d (%v), want timestamp %d", i, f, ts, err, 100+i*33)
		}
	}
	_ = gp.Finish()
	if err := tp.WriteGroupAt(1, []uint64{500, 533}, []byte{10}, []byte{11}); err != nil {
		t.Fatal(err)
	}
	if g, err = tc.RecvGroup(ctx); err != nil || g.Sequence() != 1 {
		t.Fatalf("group 1: %v (got %v)", err, g)
	}
	for i, want := range []uint64{500, 533} {
		if f, ts, err := g.ReadFrameAt(ctx); err != nil || ts != want {
			t.Fatalf("group 1 frame %d: %v at %d (%v), want timestamp %d", i, f, ts, err, want)
		}
	}
}
