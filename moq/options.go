package moq

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// Option configures New.
type Option func(*options)

type options struct {
	quic           *p2pquic.Transport
	logger         *slog.Logger
	admit          func(context.Context, peer.ID) error
	limits         session.Limits
	interest       []string
	incoming       int
	pendingAdmits  int
	pendingPerPeer int
	grace          time.Duration
	dialTimeout    time.Duration
	discovery      discoveryOptions // discovery.go
}

// WithQUIC runs moq-lite on raw QUIC over the host's UDP socket. The host
// must have been built with t.Option(). Without it, sessions run over libp2p
// streams only.
func WithQUIC(t *p2pquic.Transport) Option { return func(o *options) { o.quic = t } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAdmission decides about every incoming session before anything is
// offered to the peer. Returning nil admits it; returning an error rejects it
// and closes the connection with that error's moq-lite code (see
// broadcast.CodeOf; errors without a code close with Unauthorized) and its
// text as the reason. Sessions accepted by a Server (browsers, moql://
// clients) come with an empty peer ID.
func WithAdmission(f func(ctx context.Context, p peer.ID) error) Option {
	return func(o *options) { o.admit = f }
}

// WithLimits bounds what each peer may make a session hold.
func WithLimits(l session.Limits) Option { return func(o *options) { o.limits = l } }

// WithInterest sets the path prefixes whose announcements to ask each peer
// for (default: everything).
func WithInterest(prefixes ...string) Option { return func(o *options) { o.interest = prefixes } }

// WithIncomingQueue sets how many admitted sessions may wait for an
// IncomingSessions reader before accepting pauses (default 16).
func WithIncomingQueue(n int) Option { return func(o *options) { o.incoming = n } }

// WithShutdownGrace bounds how long Shutdown waits for sessions to close
// (default 3 s).
func WithShutdownGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithDialTimeout bounds one dial (default 30 s).
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// Defaults of WithPendingAdmissions.
const (
	DefaultPendingAdmissions = 64
	DefaultPendingPerPeer    = 4
)

// WithPendingAdmissions bounds the incoming sessions waiting for admission
// (WithAdmission) at once: node-wide (default 64, shared with every Server
// of the node) and per peer ID (default 4; a Server bounds its clients per
// address instead, see Server.MaxPendingPerIP). A peer over its bound is
// refused with BoundsExceeded; when the node-wide bound is reached, accepting
// pauses and connections wait in the transports' bounded accept queues.
// Values below 1 mean 1. Worst case: the node-wide bound in goroutines and
// handshaken connections; one hostile peer ID holds at most its per-peer
// bound of them (but peer IDs cost nothing to make, which is what the
// node-wide bound is for).
func WithPendingAdmissions(node, perPeer int) Option {
	return func(o *options) { o.pendingAdmits, o.pendingPerPeer = node, perPeer }
}
