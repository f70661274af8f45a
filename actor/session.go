package actor

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

// Session is a moq-lite session registered with the actor.
type Session struct {
	*session.Session
	id      uint64
	peer    peer.ID
	dialed  bool
	scope   string // only publications under this path, relative to it
	created time.Time
	// origin holds what this session offers the peer: every publication of
	// the node, plus what was published on this session alone.
	origin *broadcast.Origin
	cost   int // the link's cost for forwarding (RegisterOptions.Cost)
	// wanted are the prefixes (full paths) under which forwarded paths are
	// offered to it: its peer asked for announcements there, or
	// subscribed (forwarder.fill). offered: some were. Only run touches
	// them.
	wanted  []string
	offered bool
}

// wants reports whether forwarded paths at path are offered to s.
func (s *Session) wants(path string) bool {
	for _, p := range s.wanted {
		if broadcast.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// want adds prefix (not wanted yet) to what s is offered, and returns the
// prefix added. Past maxWanted prefixes s is offered everything in its
// scope: a peer that asks for many cannot grow the list, and costs at most
// what an interest in everything does.
func (s *Session) want(prefix string) string {
	s.wanted = slices.DeleteFunc(s.wanted, func(p string) bool { return broadcast.HasPrefix(p, prefix) })
	if len(s.wanted) >= maxWanted {
		s.wanted = s.wanted[:0]
		prefix = s.scope
	}
	s.wanted = append(s.wanted, prefix)
	return prefix
}

// maxWanted bounds the prefixes a session is offered forwarded paths
// under, one per announce interest or subscribed path (the peer's
// MaxAnnounceInterests default is 16).
const maxWanted = 16

// Cost is the link's cost in route choice (see RegisterOptions.Cost).
func (s *Session) Cost() int { return s.cost }

// ID is the session's identifier, unique within its actor.
func (s *Session) ID() uint64 { return s.id }

// RemotePeer is the authenticated peer at the other end; empty for
// sessions without a libp2p identity (browsers, moql:// clients).
func (s *Session) RemotePeer() peer.ID { return s.peer }

// Scope is the path the session is confined to ("" for everything).
func (s *Session) Scope() string { return s.scope }

// Dialed reports whether this node opened the session (false: accepted).
func (s *Session) Dialed() bool { return s.dialed }

// Created is when the session was registered.
func (s *Session) Created() time.Time { return s.created }

// Offer publishes b to this session's peer only, at name. It does not go
// through the actor: a session's origin is safe for concurrent use.
func (s *Session) Offer(name string, b *broadcast.Consumer) (unpublish func(), err error) {
	return s.origin.Publish(name, b)
}

func (s *Session) live() bool {
	select {
	case <-s.Done():
		return false
	default:
		return true
	}
}
