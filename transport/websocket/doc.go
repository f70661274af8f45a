// Package websocket carries moq-lite over a WebSocket, for browsers and
// Node peers without WebTransport: @moq/lite (through its @moq/qmux
// dependency) races a WebSocket against WebTransport and falls back to it.
// A Conn implements transport.Conn, multiplexing QUIC-like streams over one
// WebSocket, one frame per binary message.
//
// server.Server runs it for a node, next to WebTransport. On its own: Accept
// upgrades an HTTP request (IsUpgradeRequest tells one apart) and Dial is
// the client side; either Conn goes to session.New.
//
// # Framings
//
// Two wire formats exist, both from moq-dev's JavaScript stack:
//
//   - qmux-00 (FramingQmux): draft-ietf-quic-qmux-00 as @moq/qmux 0.0.6
//     implements it. Frames are QUIC frame encodings (STREAM with offset,
//     length and FIN bits, RESET_STREAM, STOP_SENDING, MAX_DATA,
//     MAX_STREAM_DATA, MAX_STREAMS, CONNECTION_CLOSE) plus
//     QX_TRANSPORT_PARAMETERS, which each side sends first. Flow control
//     works as in QUIC (see Config for our windows).
//   - qmux-01 and qmux-02 (FramingQmux01, FramingQmux02): the drafts
//     @moq/qmux 0.3 adds. A message is a QMux record: any number of
//     qmux-00 frames (we send one per message), possibly none; QX_PING
//     requests are answered with a response echoing their sequence number
//     (@moq/qmux pings an idle connection and closes it after 30 s without
//     an answer); the peer's max_record_size may not be under 16382 (our
//     largest message is 16379 bytes). qmux-02 also requires transport
//     parameters first, which we always send first.
//   - legacy `webtransport` (FramingLegacy): the format of
//     @moq/web-transport-ws. A one-byte type, the stream ID and the data to
//     the end of the message; RESET_STREAM, STOP_SENDING and
//     APPLICATION_CLOSE; no offsets and no flow control.
//
// Without flow control, legacy memory is bounded by back-pressure: while a
// stream's receive buffer (Config.StreamWindow) or all of them together
// (Config.ConnWindow) are full, or the peer has Config.MaxIncoming(Uni)Streams
// unfinished streams, the connection stops reading the socket until the app
// reads, cancels or accepts, and TCP slows the peer down. Meanwhile no
// stream of the connection receives anything (head-of-line blocking), so
// an app must read every stream it accepts, or cancel it.
//
// A peer that breaks the rules (unknown frame types, frames on streams it
// may not use, data after FIN, wrong offsets or final sizes, exceeding our
// credit or stream limit, oversize messages) gets a close frame with
// moq-lite code 15 and WebSocket status 1002; the Conn's Context cause
// matches ErrProtocol and a precise sentinel. Unlike @moq/qmux we refuse
// unknown qmux frame types; PADDING, PING, DATAGRAM and *_BLOCKED are
// accepted and ignored, as are text messages. Three @moq/qmux quirks are
// tolerated: RESET_STREAM with final size 0 (it never states one), a
// frame-type field in 0x1d closes (which it also sends), and STREAM frames
// without an offset after a stream's first (it never sends one; we send
// the offset on every frame after the first, as QUIC does).
//
// # Congestion control
//
// On Linux each connection's TCP socket, accepted or dialed, is switched to
// BBR (Config.CongestionControl): a loss-based algorithm such as Cubic
// halves its rate at every lost packet, so on a path with random loss it
// delivers a fraction of what QUIC does, one byte stream holding every
// group behind each loss. Where the kernel does not offer BBR the socket
// keeps the system's (Conn.CongestionControl says which runs).
//
// Write and Close only queue. A send stream's Flushed channel (on the
// concrete type, not transport.SendStream) closes once its FIN is written
// to the socket; Conn.Ping then says the peer has taken in everything
// written before it.
//
// Stream IDs follow QUIC (bit 0: server-initiated, bit 1: unidirectional);
// a frame on a new peer stream ID opens it. Error codes are moq-lite codes
// as raw varints, without the WebTransport mapping that rawquic applies.
// STREAM payloads are cut at 16360 bytes, the most @moq/qmux accepts.
//
// # Subprotocols
//
// The Sec-WebSocket-Protocol value names the framing and, optionally, the
// application protocol: "qmux-00", "qmux-02", "webtransport",
// "qmux-00.moq-lite-04", "qmux-02.moq-lite-05", "webtransport.moq-lite-04";
// or it is an application protocol alone ("moq-lite-05"), which is QMux
// over WebSocket as moq-lite-05 binds it: qmux-01's record framing. The application protocol plays the part of
// the ALPN: Conn.Protocol returns it and the moq-lite session picks its
// version from it; none ("") makes the session run the compat SETUP.
// @moq/lite 0.2.2 offers "qmux-00, webtransport" (no application
// protocol); with app protocols configured, @moq/qmux also offers
// framing.protocol for each. @moq/net 0.3.4 offers qmux-02, qmux-01 and
// qmux-00 with each of moq-lite-05, -04, -03 and moql, then the bare
// framings.
//
// Accept selects, in this order: the client's first offered application
// protocol that Config.Protocols lists, in the framing Config.Framings
// prefers among the client's offers of it; else a bare framing, in
// Config.Framings order; else, if the client offered nothing at all, the
// legacy framing with no header (how @moq/qmux reads a silent server). Any
// other request is refused with HTTP 400.
//
// # Priorities
//
// SendStream.SetPriority matters: one writer goroutine sends the queued
// data of the lowest urgency first, streams of equal urgency taking turns
// frame by frame.
package websocket
