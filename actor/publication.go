package actor

import (
	"context"
	"sync"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Publication is a broadcast published to every session of a node.
type Publication struct {
	a    *Actor
	id   uint64
	name string
	b    *broadcast.Consumer
	once sync.Once
}

// Name is the path the broadcast is published at.
func (p *Publication) Name() string { return p.name }

// Unpublish withdraws the publication from every session and frees its name;
// the broadcast itself goes on. Safe to call more than once and after
// shutdown.
func (p *Publication) Unpublish() {
	p.once.Do(func() {
		reply := make(chan struct{})
		select {
		case p.a.unpublishc <- unpublishReq{id: p.id, reply: reply}:
			<-reply
		case <-p.a.stopped:
		}
	})
}

// published is the actor's record of a publication.
type published struct {
	pub   *Publication
	stops map[uint64]func() // per session ID: withdraw from that session's origin
	unown func()            // withdraw from the actor's own origin (Local)
	watch context.CancelFunc
}

// ended reports whether the publication's broadcast has ended.
func (p *published) ended() bool {
	select {
	case <-p.pub.b.Done():
		return true
	default:
		return false
	}
}
