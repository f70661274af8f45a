// Package moq is the handle applications hold to stream live media between
// peers with no central server. A Moq runs over the application's own
// go-libp2p host: Publish offers a broadcast to every peer, Connect opens (or
// reuses) the session to a peer, IncomingSessions yields the sessions peers
// open to us, and Subscribe on a session reads a track of the peer's
// broadcast.
//
// moq-lite runs on raw QUIC with ALPN moq-lite-04/03 on the host's own UDP
// port when the host was built with a QUIC transport's Option (see
// NewQUICTransport), so the remote peer ID is authenticated inside the QUIC
// handshake and each group gets a real QUIC stream. Where no direct UDP path
// exists (a TCP-only peer, a circuit-relayed connection) the same session
// runs over libp2p streams (protocols /moq-lite/04 and /moq-lite/03).
//
// Broadcasts can also be found by name, with no address in hand (package
// discovery): with WithDHT, Publish provides each broadcast's name in a
// Kademlia DHT and Moq.Subscribe resolves a name through the sessions that
// announce it, then the DHT's providers; WithMDNS opens sessions to peers
// on the local network; tickets (Moq.Ticket, Resolve, SubscribeTicket)
// name a broadcast and its publisher in one copy-pasteable word.
//
// All state lives in one actor goroutine (package actor); Moq and Session are
// handles that send it messages.
package moq
