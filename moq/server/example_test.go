package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/transport/cert"
)

// A node serves its broadcast to clients without a libp2p identity: a
// Server on one UDP port (WebTransport and moql://) and the TCP port
// (WebSocket, pages). Here the client is another node that opens a session
// by URL, as a moql:// client; a browser would open https:// or ws:// on
// the same ports with @moq/lite.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	node, nodeHost := newNode()
	client, clientHost := newNode()
	var srv *server.Server
	served := make(chan error, 1)
	defer func() {
		// The client leaves first: Shutdown waits for the server's clients
		// to go (after telling them to, GOAWAY) for as long as its ctx lets it.
		_ = client.Shutdown(ctx)
		if srv != nil {
			_ = srv.Shutdown(ctx)
			if err := <-served; !errors.Is(err, server.ErrServerClosed) {
				fmt.Println(err)
			}
		}
		_ = node.Shutdown(ctx)
		_ = clientHost.Close()
		_ = nodeHost.Close()
	}()

	b := broadcast.New(broadcast.Config{})
	seconds, _ := b.CreateTrack(broadcast.Track{Name: "seconds"})
	if _, err := node.Publish(ctx, "clock", b.Consume()); err != nil {
		fmt.Println(err)
		return
	}

	// The server: nil TLSConfig is a self-signed development certificate;
	// ListenAndServe with Addr does the same as these two listeners.
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = udp.Close()
		fmt.Println(err)
		return
	}
	srv = &server.Server{Moq: node}
	go func() { served <- srv.Serve(udp, tcp) }()

	// The client pins the certificate by its SHA-256 (what moq pub prints as
	// "fingerprint:", and the server serves at /certificate.sha256).
	fp, err := cert.ParseFingerprint(srv.CertificateHash())
	if err != nil {
		fmt.Println(err)
		return
	}
	dial, err := server.Dialer("moql://"+udp.LocalAddr().String(), cert.PinnedConfig(fp))
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := dial(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := client.Open(ctx, conn)
	if err != nil {
		fmt.Println(err)
		return
	}
	track, err := s.Subscribe(ctx, "clock", "seconds")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer track.Close()

	g, _ := seconds.AppendGroup()
	_ = g.WriteFrame([]byte("12:00:00"))
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
	fmt.Printf("%s over %s\n", frame, s.Version())
	// Output:
	// 12:00:00 over moq-lite-05
}

// newNode starts a moq node whose libp2p host listens on nothing: this
// example's sessions are the Server's and the client's, opened by URL.
func newNode() (*moq.Moq, host.Host) {
	h, err := moq.NewHost(moq.HostConfig{ListenAddrs: []ma.Multiaddr{}})
	if err != nil {
		panic(err)
	}
	m, err := moq.New(h)
	if err != nil {
		panic(err)
	}
	return m, h
}
