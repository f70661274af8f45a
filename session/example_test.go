package session_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// moq-lite over a connection of one's own, with no moq node: a server on
// raw QUIC (moql://) publishes a broadcast from its Origin; a client dials
// it, pinning the server's development certificate, and reads a track.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The publisher: an Origin holding one broadcast, served on loopback.
	origin := broadcast.NewOrigin(0)
	defer origin.Close()
	b := broadcast.New(broadcast.Config{})
	text, _ := b.CreateTrack(broadcast.Track{Name: "text"})
	if _, err := origin.Publish("greetings", b.Consume()); err != nil {
		fmt.Println(err)
		return
	}
	crt, err := cert.SelfSigned()
	if err != nil {
		fmt.Println(err)
		return
	}
	ep, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ep.Close()
	served := make(chan *session.Session, 1)
	go func() {
		defer close(served)
		conn, err := ep.Accept(ctx)
		if err != nil {
			return
		}
		if s, err := session.New(conn, session.Config{Publish: origin}); err == nil {
			served <- s
		}
	}()

	// The subscriber: the connection's ALPN fixes the moq-lite version.
	conn, err := rawquic.Dial(ctx, ep.Addr().String(), cert.PinnedConfig(cert.Fingerprint(crt)), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := session.New(conn, session.Config{Client: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		_ = s.Close(broadcast.CodeCancel, "done")
		if srv := <-served; srv != nil {
			_ = srv.Close(broadcast.CodeCancel, "done")
		}
	}()
	track, err := s.Subscribe(ctx, "greetings", "text", session.SubscribeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer track.Close()

	g, _ := text.AppendGroup()
	_ = g.WriteFrame([]byte("hello over " + s.Version()))
	_ = g.Finish()
	grp, err := track.NextGroup(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	frame, err := grp.ReadFrame(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(frame))
	// Output:
	// hello over moq-lite-05
}
