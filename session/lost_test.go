package session

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// A publisher that vanishes (kill -9: nothing more from it, no close) fails
// the subscriber's reads with an error matching transport.ErrConnLost whose
// code is Transport, and the session's Err is already set when they fail.
func TestVanishedPeerFailsReadsWithSessionErr(t *testing.T) {
	for i := range 4 {
		pub, sub, link := partitionablePair(t, rawquic.ConfigDeadPeer(300*time.Millisecond))
		origin := pub.publish
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		if _, err := origin.Publish("cam", b.Consume()); err != nil {
			t.Fatal(err)
		}
		g, _ := tp.AppendGroup()
		_ = g.WriteFrame([]byte("x"))
		eventually(t, func() bool { return sub.Remote().Get("cam") != nil })
		tc, err := sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.NextGroup(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		link.Set(impair.Config{Loss: 1})
		_, err = tc.NextGroup(testCtx(t))
		serr := sub.Err()
		if serr == nil {
			t.Fatalf("run %d: read failed with %v while the session's Err was still nil", i, err)
		}
		if !strings.HasPrefix(serr.Error(), "connection lost: ") {
			t.Errorf("run %d: the session's Err %q is not the connection's end as the transport put it", i, serr)
		}
		for what, e := range map[string]error{"read": err, "Err": serr} {
			if !errors.Is(e, transport.ErrConnLost) || broadcast.CodeOf(e) != broadcast.CodeTransport {
				t.Errorf("run %d: %s: %v (code %v), want transport.ErrConnLost with code Transport", i, what, e, broadcast.CodeOf(e))
			}
		}
		tc.Close()
	}
}

// partitionablePair is a lite-04 publisher (server) and subscriber (client)
// over raw QUIC with qc; link drops what the publisher sends when told to.
func partitionablePair(t *testing.T, qc *quic.Config) (pub, sub *Session, link *impair.Conn) {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	spc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	link = impair.New(spc, impair.Config{})
	ln := rawquic.NewEndpointConn(link, qc)
	if err := ln.Listen(&tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{"moq-lite-04"}}); err != nil {
		t.Fatal(err)
	}
	dialer, err := rawquic.NewEndpoint("127.0.0.1:0", qc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dialer.Close(); _ = ln.Close() })
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, _ := ln.Accept(testCtx(t))
		accepted <- c
	}()
	tc := cert.PinnedConfig(cert.Fingerprint(crt))
	tc.NextProtos = []string{"moq-lite-04"}
	cc, err := dialer.Dial(testCtx(t), ln.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	if pub, err = New(sc, Config{Publish: broadcast.NewOrigin(0), Logger: testLogger()}); err != nil {
		t.Fatal(err)
	}
	if sub, err = New(cc, Config{Client: true, Logger: testLogger()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close(broadcast.CodeCancel, "test over")
		_ = pub.Close(broadcast.CodeCancel, "test over")
	})
	return pub, sub, link
}
