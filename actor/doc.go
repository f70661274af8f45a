// Package actor holds the goroutine that owns a moqp2p node's state: the
// sessions by peer ID, the published broadcasts, the pending connects and the
// queue of incoming sessions. Callers never touch that state; they send typed
// messages on a channel and wait for replies, in the shape of etcd-io/raft's
// node.run loop.
//
// Not implemented yet: see issue 4.
package actor
