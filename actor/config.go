package actor

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// Conn is a connection to an authenticated peer.
type Conn interface {
	transport.Conn
	RemotePeer() peer.ID
}

// Config configures an Actor.
type Config struct {
	// Dial connects to a peer. It runs on a goroutine of its own; one dial
	// per peer is in flight at a time however many callers wait for it.
	Dial func(ctx context.Context, addr peer.AddrInfo) (Conn, error)
	// Session is the template for every session: limits, logger, interest.
	// Publish and HopID are set by the actor.
	Session session.Config
	// HopID identifies this node in hop lists (see broadcast.NewHopID).
	HopID uint64
	// DialTimeout bounds one dial. Default 30 s.
	DialTimeout time.Duration
	// Released, if set, is called on a goroutine of its own once a
	// Connect flight to the peer (see Connect) has its answer and its last
	// waiting caller has left: work that follows a dial but should not
	// compete with waking a burst of callers waits for it.
	Released func(peer.ID)
	// ShutdownGrace bounds how long Shutdown waits for sessions to close.
	// Default 3 s.
	ShutdownGrace time.Duration
	// MaxSessionsPerPeer bounds the live sessions one peer ID may hold with
	// this node, whoever dialed them; a session beyond it is refused
	// (ErrTooManySessions) and its connection closed with BoundsExceeded.
	// Default 4: simultaneous dials keep two, and a reconnect may briefly
	// overlap an old session. Anonymous sessions (empty peer ID, a
	// server.Server's clients) are not counted here. Worst case for one
	// hostile peer ID: this many sessions, each held to its session.Limits.
	MaxSessionsPerPeer int
	// MaxPendingDials bounds the dials in flight to distinct peers (each a
	// goroutine and a connection attempt, up to DialTimeout); a connect
	// that needs one more fails at once with ErrTooManyDials. Connects to a
	// peer already being dialed share its dial and are not counted. Peers
	// met through discovery (DHT provider records anyone can write) are
	// dialed through here. Default 64. Worst case: this many dial
	// goroutines, whatever the DHT returns.
	MaxPendingDials int
	// Forward, if set, makes the node forward what its sessions' peers
	// announce to its other sessions (see Forward).
	Forward *Forward
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of the Config limits.
const (
	DefaultMaxSessionsPerPeer = 4
	DefaultMaxPendingDials    = 64
)

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 30 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 3 * time.Second
	}
	if c.MaxSessionsPerPeer <= 0 {
		c.MaxSessionsPerPeer = DefaultMaxSessionsPerPeer
	}
	if c.MaxPendingDials <= 0 {
		c.MaxPendingDials = DefaultMaxPendingDials
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
