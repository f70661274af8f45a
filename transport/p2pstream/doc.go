// Package p2pstream carries moq-lite sessions over libp2p streams, one libp2p
// stream per moq-lite stream. It is the fallback for when no direct QUIC
// path to a peer exists: a TCP-only peer, or a connection through a circuit
// relay. It works over any libp2p connection, at the costs listed below.
//
// Package moq runs it for every node; a program of its own starts with New
// on its host, then Transport.Dial and Transport.Accept, and gives the hosts
// ResourceManager (or Limits) so that a session may open a stream per group.
//
// # Wire design
//
// Protocol IDs are /moq-lite/05, /moq-lite/04 and /moq-lite/03
// (ProtocolLite05, ProtocolLite04, ProtocolLite03), most preferred first;
// multistream-select picks the version, as the ALPN does on QUIC, and
// Conn.Protocol reports it as "moq-lite-05", "moq-lite-04" or "moq-lite-03".
// Every stream of a session uses the session's protocol ID.
//
// Every libp2p stream starts with a header written by its opener, two QUIC
// varints:
//
//	kind     0 = session control, 1 = bidirectional, 2 = unidirectional
//	session  the session ID: random, 62 bits, never 0, chosen by the dialer
//
// The session ID keeps several sessions between the same two peers apart
// (for example simultaneous dials in both directions); sessions are keyed by
// (remote peer, session ID), the peer being libp2p's authenticated one.
//
// The dialer opens the control stream first and waits for the listener's
// answer before it returns, so streams never arrive before their session
// exists (at the price of one round trip at setup). Control messages are a
// type varint and fields:
//
//	ACCEPT (1)  listener → dialer, first, once: the session exists
//	CLOSE  (2)  either way, last: code varint (a moq-lite code, 32 bits),
//	            reason length varint (at most 1024), reason bytes; then FIN
//
// A listener that refuses a session (transport closing, duplicate ID, or
// BoundsExceeded when the peer already holds Config.MaxSessionsPerPeer
// sessions, counting those still waiting for Accept) answers CLOSE instead
// of ACCEPT, and Dial returns it as a *transport.ConnError. A listener sends ACCEPT only when its Accept queue
// has room, so a slow acceptor slows dialers down rather than dropping them.
//
// A session ends when either side sends CLOSE (the other side's Context
// cause is *transport.ConnError{Remote: true}), when its control stream ends
// or breaks without CLOSE, including when the libp2p connection closes (the
// cause wraps ErrConnLost), or when the control stream carries anything
// else (the session is closed with code 5, Decode). Then every stream of the
// session is reset with the reserved libp2p code 0x6d6f7100; a reader or
// writer that sees that code waits briefly for the session's CLOSE and
// reports the session's cause, as on a closed QUIC connection.
//
// Streams are refused by reset: a bad or missing header with 5 (Decode),
// an unknown kind with 10 (UnexpectedStream), an unknown session with
// 0x6d6f7100 (there is no grace period: the ACCEPT handshake makes early
// streams impossible), a protocol ID different from the session's with 15,
// and with 11 (BoundsExceeded) a stream beyond Config.MaxPendingStreams not
// yet accepted or beyond Config.MaxStreamsPerSession open at once.
//
// A unidirectional stream is a libp2p stream of which only one direction is
// used: the opener calls CloseRead at once, the receiver CloseWrite.
//
// # Differences from QUIC
//
//   - CancelWrite(code) and CancelRead(code) both call
//     ResetWithError(code), which resets both directions: libp2p has no
//     one-directional reset with a code (its CloseRead sends STOP_SENDING
//     with code 0 on QUIC and nothing on yamux). On a unidirectional stream
//     this is exact; on a bidirectional one the other direction ends too.
//   - Reset codes are the moq-lite codes unchanged, except that libp2p's own
//     codes 0x1001-0x1009 (sent when libp2p itself resets a stream: resource
//     limits, failed negotiation, shutdown) are reported as moq-lite codes
//     (BoundsExceeded, Unsupported, Protocol or Transport) and 0x6d6f7100 as
//     Closed (25).
//   - SetPriority does nothing; libp2p streams have no priorities.
//   - Over TCP (yamux) all streams share one TCP byte stream, so a lost
//     packet stalls every group: the head-of-line blocking moq-lite's
//     per-group streams exist to avoid.
//   - Each stream costs a multistream-select header (sent with the first
//     write, no extra round trip) and, on yamux, a SYN frame.
//
// # Resource manager
//
// libp2p's resource manager limits streams per protocol per peer. With its
// defaults a peer may hold about 128 + 8·G outbound and 64 + 4·G inbound
// streams of one protocol (G = GiB of memory given to libp2p): about 150
// and 75 on a 24 GiB machine. A moq-lite session with several busy
// subscriptions needs more. Apply Limits to the limit config, or use the
// ResourceManager option, on both hosts. When the local limit is reached,
// OpenStream and OpenUniStream wait and retry until their context ends (as
// for QUIC stream credit); when the peer's is, the peer resets the stream
// and the sender sees BoundsExceeded (11).
//
// Over yamux (TCP and relayed connections) every open stream also holds
// 256 KiB of the peer's and the system's resource-manager memory; when that
// runs out, yamux drops the whole connection, not just the stream
// (TestYamuxMemoryEndsConnection). Limits
// raises the peer's memory limit to match the stream limits; the system
// limit (1/8 of RAM by default) still caps all peers together, at about 4
// concurrent yamux streams per MiB.
//
// Over libp2p's QUIC transport a second cap applies: libp2p grants each
// peer 256 concurrent bidirectional QUIC streams per connection, for all
// protocols together (a fixed quic-go setting in quicreuse), so a session
// has at most about 250 streams open per direction; OpenStream then waits
// for credit, as on raw QUIC. yamux (TCP, relays) has no such cap, but it
// resets a new stream when 256 others are still waiting for libp2p to
// accept them (go-yamux's AcceptBacklog; from reading its source, not
// observed here): the session layer's default of 64 groups in flight per
// subscription stays far below it, but many subscriptions starting groups
// at the same instant could reach it.
//
// # Relays
//
// Streams are opened with network.WithAllowLimitedConn, so sessions run
// over limited (circuit relay v2) connections; Conn.Limited reports it.
// Stock relays cut a circuit after 2 minutes or 128 KiB per direction,
// which no media session survives: only relays configured with larger
// limits (relay.WithLimit, relay.WithResources or relay.WithInfiniteLimits,
// the last of which makes the connection unlimited) can carry a session.
// When the relay ends the circuit, the session ends with ErrConnLost.
//
// All streams of a session run on the libp2p connection of its control
// stream, so a session does not move when a direct connection appears
// (after hole punching, say): open a new session and move the
// subscriptions.
package p2pstream
