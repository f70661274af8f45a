// Package actor holds the goroutine that owns a moqp2p node's state: the
// sessions by peer ID, the published broadcasts, the pending connects, the
// incoming-session subscribers (Incoming: each sees every accepted session)
// and the shutdown. Callers never touch that state; they send typed requests on
// channels and wait for replies, in the shape of etcd-io/raft's node.run
// loop: one goroutine, one select, no mutex around the state.
//
// Applications use package moq, which wraps an Actor; this package is its
// engine. Where to start: New takes a Config with the function that dials
// a peer; Connect returns the session to a peer (dialing once for
// concurrent callers), Register adds a connection accepted elsewhere,
// Publish offers a broadcast to every session, and Shutdown ends them all.
//
// Sessions and dials are tracked by IDs of their own, so a late "session
// ended" for an old session can never remove a newer one, and a dial that
// fails or panics always answers every waiter: two hazards of the upstream
// actor this one replaces (docs/interop.md#iroh-live).
//
// A caller whose context ends as the actor applies its request gets the
// result rather than an error, and a request the caller gave up on first is
// never applied: nothing is published or registered without a caller that
// holds it. The actor's goroutine does no network I/O; connections it
// refuses are closed by the goroutine that brought them.
package actor
