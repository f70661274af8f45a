package actor

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Requests from callers. Each carries a buffered reply channel, so the actor
// never blocks on a caller that gave up.

type connectReq struct {
	addr  peer.AddrInfo
	reply chan sessionResult
}

type registerReq struct {
	conn  Conn
	opts  RegisterOptions
	reply chan sessionResult
}

type publishReq struct {
	name  string
	b     *broadcast.Consumer
	reply chan publishResult
}

type unpublishReq struct {
	id    uint64
	reply chan struct{}
}

type queryReq struct {
	reply chan snapshot
}

type shutdownReq struct {
	reply chan struct{} // closed when every session has closed or the grace ran out
}

type sessionResult struct {
	s   *Session
	err error
}

type publishResult struct {
	p   *Publication
	err error
}

type snapshot struct {
	sessions  []*Session
	published []string
}

// Events from the actor's own goroutines.

type dialDone struct {
	id   uint64
	peer peer.ID
	conn Conn
	err  error
}

type sessionEnded struct{ id uint64 }

type publicationEnded struct{ id uint64 }
