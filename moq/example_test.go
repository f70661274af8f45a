package moq_test

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/moq"
)

// Two peers on one machine: Alice publishes a broadcast, Bob connects to her
// by peer ID and address, subscribes to a track and reads its frames.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, aliceHost := newPeer()
	bob, bobHost := newPeer()
	defer func() {
		_ = alice.Shutdown(ctx)
		_ = bob.Shutdown(ctx)
		_ = aliceHost.Close()
		_ = bobHost.Close()
	}()

	// Alice publishes a broadcast with one track.
	b := broadcast.New(broadcast.Config{})
	text, _ := b.CreateTrack(broadcast.Track{Name: "text"})
	if _, err := alice.Publish(ctx, "greetings", b.Consume()); err != nil {
		fmt.Println(err)
		return
	}

	// Bob connects and subscribes (Subscribe waits for Alice's announcement).
	s, err := bob.Connect(ctx, peer.AddrInfo{ID: aliceHost.ID(), Addrs: aliceHost.Addrs()})
	if err != nil {
		fmt.Println(err)
		return
	}
	sub, err := s.Subscribe(ctx, "greetings", "text")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	// Alice writes a group of three frames; Bob reads them.
	g, _ := text.AppendGroup()
	for _, word := range []string{"hello", "from", "alice"} {
		_ = g.WriteFrame([]byte(word))
	}
	_ = g.Finish()

	grp, err := sub.NextGroup(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		frame, err := grp.ReadFrame(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(frame))
	}
	// Output:
	// hello
	// from
	// alice
}

// Fetching a past group: Alice's track already holds groups 0 to 2, and
// Bob, joining late, asks for group 1 again (moq-lite-05 FETCH) instead of
// subscribing to what comes next.
func ExampleSession_Fetch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, aliceHost := newPeer()
	bob, bobHost := newPeer()
	defer func() {
		_ = alice.Shutdown(ctx)
		_ = bob.Shutdown(ctx)
		_ = aliceHost.Close()
		_ = bobHost.Close()
	}()

	b := broadcast.New(broadcast.Config{})
	chat, _ := b.CreateTrack(broadcast.Track{Name: "chat"})
	for i, line := range []string{"hi", "anyone here?", "bye"} {
		_ = chat.WriteGroup(uint64(i), []byte(line))
	}
	if _, err := alice.Publish(ctx, "room", b.Consume()); err != nil {
		fmt.Println(err)
		return
	}

	s, err := bob.Connect(ctx, peer.AddrInfo{ID: aliceHost.ID(), Addrs: aliceHost.Addrs()})
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := s.Fetch(ctx, "room", "chat", 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	frame, err := g.ReadFrame(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("group %d: %s\n", g.Sequence(), frame)
	// Output:
	// group 1: anyone here?
}

// Subscribing by name: Bob knows neither Alice's peer ID nor her address,
// only the broadcast's name. Alice opens a session to him (as mDNS or a
// bootstrap list would), and Moq.Subscribe finds the broadcast among the
// sessions whose peer announces it. With WithDHT it would look up the
// name's providers in the DHT as well.
func ExampleMoq_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, aliceHost := newPeer()
	bob, bobHost := newPeer()
	defer func() {
		_ = alice.Shutdown(ctx)
		_ = bob.Shutdown(ctx)
		_ = aliceHost.Close()
		_ = bobHost.Close()
	}()

	b := broadcast.New(broadcast.Config{})
	text, _ := b.CreateTrack(broadcast.Track{Name: "text"})
	if _, err := alice.Publish(ctx, "room/greetings", b.Consume()); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := alice.Connect(ctx, peer.AddrInfo{ID: bobHost.ID(), Addrs: bobHost.Addrs()}); err != nil {
		fmt.Println(err)
		return
	}

	// Bob asks for the name; ctx bounds the search.
	sub, err := bob.Subscribe(ctx, "room/greetings", "text")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	g, _ := text.AppendGroup()
	_ = g.WriteFrame([]byte("found by name"))
	_ = g.Finish()

	grp, err := sub.NextGroup(ctx)
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
	// found by name
}

// Serving the peers that connect: Alice ranges over IncomingSessions and
// greets each peer on its own session. The loop may start after the first
// peers arrived: it yields the sessions already open first.
func ExampleMoq_IncomingSessions() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, aliceHost := newPeer()
	bob, bobHost := newPeer()
	defer func() {
		_ = alice.Shutdown(ctx)
		_ = bob.Shutdown(ctx)
		_ = aliceHost.Close()
		_ = bobHost.Close()
	}()

	// Bob connects before Alice's loop runs.
	s, err := bob.Connect(ctx, peer.AddrInfo{ID: aliceHost.ID(), Addrs: aliceHost.Addrs()})
	if err != nil {
		fmt.Println(err)
		return
	}
	for ctx.Err() == nil { // until Alice's node holds the session too
		if l, _ := alice.Sessions(ctx); len(l) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	go func() {
		for in := range alice.IncomingSessions() {
			fmt.Println("alice: a session from bob:", in.RemotePeer() == bobHost.ID())
			_ = in.Close(0, "served")
		}
	}()

	select {
	case <-s.Closed():
		fmt.Println("bob: session closed by alice")
	case <-ctx.Done():
		fmt.Println(ctx.Err())
	}
	// Output:
	// alice: a session from bob: true
	// bob: session closed by alice
}

// A relay: Carol forwards (WithForwarding) what her sessions' peers
// announce to her other sessions. Alice publishes and connects to Carol;
// Bob connects to Carol only, and subscribes there to Alice's broadcast.
func ExampleWithForwarding() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, aliceHost := newPeer()
	carol, carolHost := newPeer(moq.WithForwarding(moq.Forwarding{}))
	bob, bobHost := newPeer()
	defer func() {
		for _, m := range []*moq.Moq{alice, bob, carol} {
			_ = m.Shutdown(ctx)
		}
		for _, h := range []host.Host{aliceHost, bobHost, carolHost} {
			_ = h.Close()
		}
	}()
	carolAddr := peer.AddrInfo{ID: carolHost.ID(), Addrs: carolHost.Addrs()}

	b := broadcast.New(broadcast.Config{})
	text, _ := b.CreateTrack(broadcast.Track{Name: "text"})
	if _, err := alice.Publish(ctx, "news", b.Consume()); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := alice.Connect(ctx, carolAddr); err != nil {
		fmt.Println(err)
		return
	}

	s, err := bob.Connect(ctx, carolAddr)
	if err != nil {
		fmt.Println(err)
		return
	}
	sub, err := s.Subscribe(ctx, "news", "text") // waits for Carol to offer it
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	g, _ := text.AppendGroup()
	_ = g.WriteFrame([]byte("relayed by carol"))
	_ = g.Finish()
	grp, err := sub.NextGroup(ctx)
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
	// relayed by carol
}

// Prometheus metrics: Alice's node counts into a registry of its own
// (WithMetrics); once Bob has read her frame, the registry holds her session
// and the frame it sent. Serve reg with promhttp.HandlerFor for a scraper.
func ExampleWithMetrics() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	reg := prometheus.NewRegistry()
	// The collectors are the process's (every node of a process counts
	// into them, whichever registry shows them): count from here.
	sent := func() float64 { return sum(reg, "moqp2p_frames_sent_total") }
	sessions := func() float64 { return sum(reg, "moqp2p_sessions") }
	alice, aliceHost := newPeer(moq.WithMetrics(reg))
	sent0, sessions0 := sent(), sessions()
	bob, bobHost := newPeer()
	defer func() {
		_ = alice.Shutdown(ctx)
		_ = bob.Shutdown(ctx)
		_ = aliceHost.Close()
		_ = bobHost.Close()
	}()

	b := broadcast.New(broadcast.Config{})
	text, _ := b.CreateTrack(broadcast.Track{Name: "text"})
	if _, err := alice.Publish(ctx, "counted", b.Consume()); err != nil {
		fmt.Println(err)
		return
	}
	s, err := bob.Connect(ctx, peer.AddrInfo{ID: aliceHost.ID(), Addrs: aliceHost.Addrs()})
	if err != nil {
		fmt.Println(err)
		return
	}
	sub, err := s.Subscribe(ctx, "counted", "text")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	g, _ := text.AppendGroup()
	_ = g.WriteFrame([]byte("one frame"))
	_ = g.Finish()
	grp, err := sub.NextGroup(ctx)
	if err == nil {
		_, err = grp.ReadFrame(ctx)
	}
	if err != nil {
		fmt.Println(err)
		return
	}

	// A group's frames are counted once its stream is closed, which may be
	// a moment after Bob has read them: wait for the count.
	for sent()-sent0 < 1 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("moqp2p_frames_sent_total", sent()-sent0)
	fmt.Println("moqp2p_sessions", sessions()-sessions0)
	// Output:
	// moqp2p_frames_sent_total 1
	// moqp2p_sessions 1
}

// sum adds up the series of reg's metric called name.
func sum(reg *prometheus.Registry, name string) float64 {
	families, _ := reg.Gather()
	var v float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// newPeer starts a libp2p host whose QUIC socket moq-lite shares, and a Moq
// on it. The host advertises loopback addresses only: this example stays on
// this machine.
func newPeer(opts ...moq.Option) (*moq.Moq, host.Host) {
	q := moq.NewQUICTransport(moq.QUICConfig{})
	h, err := moq.NewHost(moq.HostConfig{
		QUIC: q, // listening on /ip4/0.0.0.0/udp/0/quic-v1
		AddrsFactory: func(addrs []ma.Multiaddr) []ma.Multiaddr {
			var local []ma.Multiaddr
			for _, a := range addrs {
				if manet.IsIPLoopback(a) {
					local = append(local, a)
				}
			}
			return local
		},
	})
	if err != nil {
		panic(err)
	}
	m, err := moq.New(h, append([]moq.Option{moq.WithQUIC(q)}, opts...)...)
	if err != nil {
		panic(err)
	}
	return m, h
}
