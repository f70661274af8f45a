// Package webtransport runs moq-lite over WebTransport (HTTP/3), the way a
// browser reaches a moq server, and serves raw-QUIC moq-lite on the same UDP
// socket.
//
// server.Server runs one for a node. On its own: NewServer, then Server.Serve
// (or Server.ListenAndServe), and Server.Accept for the connections, each a
// transport.Conn for session.New; Dial is the client side.
//
// A Server listens once and routes every QUIC connection by its TLS ALPN:
// "h3" goes to an HTTP/3 server whose WebTransport CONNECT requests become
// sessions (other requests go to Config.Handler), while the moq-lite ALPNs
// (moq-lite-05, moq-lite-04, moq-lite-03, moql) are served as raw QUIC, exactly as
// transport/rawquic does. Accept yields both kinds.
//
// Over WebTransport the moq-lite version travels in the CONNECT request's
// wt-available-protocols header, and the server answers with the first entry
// of the client's list that it supports (wt-protocol). Conn.Protocol reports
// the result, "" when nothing matched, in which case the moq session falls
// back to the compat SETUP.
//
// Error codes: stream resets carry moq-lite codes, which webtransport-go maps
// into the HTTP/3 error space (and back) itself, so the codes here are passed
// to it unmapped; session close codes travel unmapped in the
// WT_CLOSE_SESSION capsule. Either way a browser peer sees the moq-lite code.
package webtransport
