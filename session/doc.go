// Package session speaks moq-lite (lite-05, lite-04 and lite-03 by ALPN or
// subprotocol; lite-02 and lite-01 through the compat SETUP) over a
// transport.Conn.
//
// A Session is symmetric: either end may publish and subscribe. As a
// publisher it serves the peer's announce interest from Config.Publish and
// answers SUBSCRIBEs from the broadcasts announced there, one QUIC uni stream
// per group. As a subscriber it asks the peer for its announcements (filling
// Remote) and turns Subscribe calls into wire subscriptions, deduplicated so
// that any number of local consumers of one track share one SUBSCRIBE.
//
// Where to start: New runs a session over a connection from one of the
// transport packages, with a Config that names what to publish (an Origin)
// and bounds what the peer may make it hold (Limits); Remote is what the
// peer announces, Subscribe reads a track of it, Close ends the session.
// Applications on a libp2p host use package moq instead, which makes and
// tracks sessions for them; this package is for running moq-lite over a
// connection of one's own (a moql:// client, a relay, a test), as the
// Example does over raw QUIC.
//
// Bad input from the network never panics: a malformed or unexpected message
// resets the stream it came on, or closes the session for violations of the
// announce protocol, always with the moq-lite code that names the problem.
package session
