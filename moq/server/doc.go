// Package server accepts clients without a libp2p identity (browsers and
// Node over WebTransport or WebSocket, raw-QUIC moql:// clients) as sessions
// of a moq node. It is a package of its own so that a program that only
// runs P2P nodes does not link WebTransport (webtransport-go, quic-go's
// HTTP/3) and WebSocket (coder/websocket).
//
// Where to start: fill a Server with the node (and, for production, a
// TLSConfig; nil is a self-signed development certificate whose hash
// browsers accept through serverCertificateHashes) and call ListenAndServe:
//
//	srv := &server.Server{Moq: node, Addr: "127.0.0.1:4443"}
//	go srv.ListenAndServe()            // UDP: WebTransport and moql://; TCP: WebSocket, pages
//	fmt.Println(srv.CertificateHash()) // also served at /certificate.sha256
//	defer srv.Shutdown(ctx)            // GOAWAY, wait for the clients, close
//
// A program that must know when the server listens (or which port "…:0"
// got) calls Listen, which returns open sockets, then Serve with them.
//
// Its clients are ordinary sessions of the node: they see its publications
// (scoped by URL path, see Route), and IncomingSessions yields them. The
// other way round, Dialer makes a moq.Dialer for a server's URL, for
// Moq.Open, Moq.KeepOpen and resilient tracks. The Example runs both ends.
package server
