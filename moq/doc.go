// Package moq is the handle applications hold: Publish broadcasts to every
// peer, Connect to a peer by libp2p ID, iterate IncomingSessions, Subscribe
// to a peer's broadcast and Shutdown.
//
// Not implemented yet: see issue 4.
package moq
