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
	// ShutdownGrace bounds how long Shutdown waits for sessions to close.
	// Default 3 s.
	ShutdownGrace time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 30 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 3 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
