// Package moq is the handle applications hold to stream live media between
// peers with no central server. Start here: New makes a node (a Moq) on the
// application's own go-libp2p host, Publish offers a broadcast to every
// peer, Connect opens (or reuses) the session to a peer, IncomingSessions
// yields the sessions peers open to us, and Subscribe reads a track of a
// broadcast, on one session or wherever it is published. The media itself
// (broadcasts, tracks, groups, frames) is package broadcast's; package
// moq/server's Server accepts browsers and other clients without a libp2p
// identity (a package of its own, so that a P2P-only program does not link
// WebTransport and WebSocket); the Example shows two peers end to end.
//
// A node in a few lines (errors elided):
//
//	q := moq.NewQUICTransport(moq.QUICConfig{})
//	h, _ := moq.NewHost(moq.HostConfig{QUIC: q}) // or your own host: see HostOptions
//	node, _ := moq.New(h, moq.WithQUIC(q))
//	defer h.Close()
//	defer node.Shutdown(ctx)
//
//	node.Publish(ctx, "cam", b.Consume())                   // b: a *broadcast.Producer
//	s, _ := node.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs}) // another node's
//	track, _ := s.Subscribe(ctx, "cam", "video")            // then NextGroup, ReadFrame
//
// The examples: Example (publish, connect, subscribe), ExampleMoq_Subscribe
// (by name), ExampleWithForwarding (a relay between two peers that never
// meet) and ExampleWithMetrics (Prometheus); package moq/server's Example
// serves a moql:// client. The programs
// under examples/ in the repository run these flows and more (admission and
// IncomingSessions, discovery, browsers) as commands.
//
// # Hosts
//
// NewHost builds a libp2p host with what moqp2p needs (QUIC, TCP, optional
// circuit relay) from go-libp2p's config package; libp2p.New with
// HostOptions works too, but go-libp2p's root package links every
// transport it has (WebTransport, WebSocket, WebRTC).
//
// # Transports
//
// moq-lite runs on raw QUIC with ALPN moq-lite-05, -04 or -03 on the
// host's own UDP port when the host was built with HostOptions of a
// QUICTransport (see NewQUICTransport) and the node with WithQUIC, so the
// remote peer ID is authenticated inside the QUIC handshake and each group
// gets a real QUIC stream. Where no direct UDP path exists (a TCP-only
// peer, a circuit-relayed connection) the same session runs over libp2p
// streams (protocols /moq-lite/05, /moq-lite/04 and /moq-lite/03).
//
// # Finding broadcasts
//
// Broadcasts can also be found by name, with no address in hand (package
// discovery): with WithDHT, Publish provides each broadcast's name in a
// Kademlia DHT and Moq.Subscribe resolves a name through the sessions that
// announce it, then the DHT's providers; WithMDNS opens sessions to peers
// on the local network; tickets (Moq.Ticket, ParseTicket, Resolve,
// SubscribeTicket) name a broadcast and its publisher in one
// copy-pasteable word.
//
// # Subscribing
//
// There are three ways to a track, by what the caller knows:
//
//	Call                 Looks at                        Waits                             Fails with
//	Session.Subscribe    that session's peer             for its announcement, until ctx   ErrNotAnnounced if the session ends
//	                                                     or the session ends               first (wrapping why); ctx's error
//	Moq.Subscribe        sessions announcing the name,   looks again until ctx ends        an error matching both ErrNoProviders
//	                     then DHT providers (WithDHT)    (give ctx a deadline)             and ctx's error (and the last attempt's)
//	Moq.SubscribeTicket  the ticket's peer (Resolve)     dials, then as Session.Subscribe  Connect's error, or Session.Subscribe's
//
// SubscribeWith (on Session and on Moq) is Subscribe with SubscribeOptions;
// for a ticket with options, Resolve it and call Session.SubscribeWith. Each
// returns once the publisher has accepted the subscription. A publisher's
// refusal (for instance an error matching broadcast.ErrNotFound for a track
// the broadcast does not have) is returned as is by Session.Subscribe and
// SubscribeTicket; Moq.Subscribe tries elsewhere and again, and wraps the
// last refusal in its final error. Moq's calls fail with
// ErrShutdown once the node is shut down; a Session's, as the session ends.
// The consumer returned reports the broadcast's end itself (its reads fail
// with an error matching broadcast.ErrNotFound once the publisher withdraws
// it); close it when done. To follow everything a peer announces rather
// than wait for one name, range over Session.Announced.
//
// # Relaying
//
// With WithForwarding a node offers what each session's peer announces to
// its other sessions, with one upstream subscription per track however many
// subscribers it has (Forwarded is that set of broadcasts); moq relay on
// the command line is such a node.
//
// # Types from other packages
//
// SubscribeOptions, Limits, Ticket, QUICTransport and QUICConfig are the
// lower packages' types under moq's name, so that using a node takes only
// moq, broadcast (the media) and go-libp2p's core (the host), plus discovery's
// NewDHT for a node with a DHT. What remains of other packages in moq's API
// is for reading or tuning, never required: Stats' Link and Media counters
// (transport.Stats, session.Stats), and HostConfig's libp2p types (its
// listen addresses are go-multiaddr's). Errors need no other import: the
// error a session ends with may be a *transport.ConnError, whose moq-lite
// code broadcast.CodeOf reads. Session.Conn's transport.Conn is for
// low-level use, and pinning a server's certificate (moq/server's Dialer)
// takes package transport/cert.
//
// All state lives in one actor goroutine (package actor); Moq and Session
// are handles that send it messages.
package moq
