// Package session speaks moq-lite (lite-03 and lite-04) over a
// transport.Conn.
//
// A Session is symmetric: either end may publish and subscribe. As a
// publisher it serves the peer's announce interest from Config.Publish and
// answers SUBSCRIBEs from the broadcasts announced there, one QUIC uni stream
// per group. As a subscriber it asks the peer for its announcements (filling
// Remote) and turns Subscribe calls into wire subscriptions, deduplicated so
// that any number of local consumers of one track share one SUBSCRIBE.
//
// Bad input from the network never panics: a malformed or unexpected message
// resets the stream it came on, or closes the session for violations of the
// announce protocol, always with the moq-lite code that names the problem.
package session
