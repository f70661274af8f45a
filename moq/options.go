package moq

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/keepalive"
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
	receiveBudget  int64
	interest       []string
	incoming       int
	pendingAdmits  int
	pendingPerPeer int
	grace          time.Duration
	dialTimeout    time.Duration
	peerLimits     PeerLimits
	discovery      discoveryOptions      // discovery.go
	metrics        session.MetricsTracer // stats.go
	deadPeer       time.Duration
	forward        *Forwarding    // forward.go
	punchWait      *time.Duration // migrate.go
	relayedGrace   time.Duration
	fallback       PathFallback
	relayFallback  bool // relayfallback.go
}

// WithDeadPeerTimeout bounds how long a peer may stay silent before its
// session is given up (default 3 s; negative: the transports' own, slower
// detection). Idle sessions exchange keep-alives every third of it: QUIC
// PINGs on raw QUIC (the idle timeout in force is the smaller of both
// ends', and never below three probe timeouts, so a slow or lossy path
// stretches it), libp2p pings on sessions over libp2p streams. It applies
// to the raw QUIC connections this node dials, and to those it accepts
// from moqp2p nodes (QUIC uses the smaller of both ends' idle timeouts);
// the host's own libp2p connections keep libp2p's settings.
// A session given up this way ends like one the peer closed; tracks from
// Moq.SubscribeResilient resume elsewhere or once the peer is back.
func WithDeadPeerTimeout(d time.Duration) Option { return func(o *options) { o.deadPeer = d } }

// DefaultDeadPeerTimeout is the dead-peer bound without WithDeadPeerTimeout.
const DefaultDeadPeerTimeout = keepalive.DefaultTimeout

// WithQUIC runs moq-lite on raw QUIC over the host's UDP socket. The host
// must have been built with t (HostConfig.QUIC, HostOptions or t.Option()).
// Without it, sessions run over libp2p streams only.
func WithQUIC(t *QUICTransport) Option { return func(o *options) { o.quic = t } }

// WithLogger sets the logger (default slog.Default()). The node adds a
// "node" attribute (its host's peer ID) to every record, so that the logs
// of several nodes in one process can be told apart: a logger given here
// should not carry one already.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAdmission decides about every incoming session before anything is
// offered to the peer. Returning nil admits it; returning an error rejects it
// and closes the connection with that error's moq-lite code (see
// broadcast.CodeOf; errors without a code close with Unauthorized) and its
// text as the reason. Sessions accepted by a server.Server (browsers, moql://
// clients) come with an empty peer ID.
func WithAdmission(f func(ctx context.Context, p peer.ID) error) Option {
	return func(o *options) { o.admit = f }
}

// WithLimits bounds what each peer may make a session hold.
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// WithReceiveBudget bounds the payload bytes that all of the node's
// sessions together hold of what peers sent them (groups arriving or
// cached), on top of each session's own Limits.MaxReceiveBytes. Past it,
// cached groups are evicted, then groups (arriving ones aborted) of the
// session holding the most, if it holds more than the one receiving, so
// that no few peers can hold it all; what still does not fit is refused
// (see broadcast.Budget). Default DefaultReceiveBudget.
func WithReceiveBudget(bytes int64) Option { return func(o *options) { o.receiveBudget = bytes } }

// DefaultReceiveBudget is the node-wide receive budget without
// WithReceiveBudget.
const DefaultReceiveBudget = 512 << 20

// sessionLimits returns the limits of the node's sessions, sharing one
// receive budget (made here: New calls it once).
func (o *options) sessionLimits() session.Limits {
	l := o.limits
	if l.ReceiveBudget == nil {
		if o.receiveBudget <= 0 {
			o.receiveBudget = DefaultReceiveBudget
		}
		l.ReceiveBudget = broadcast.NewBudget(o.receiveBudget, nil)
	}
	return l
}

// WithInterest sets the path prefixes whose announcements to ask each peer
// for (default: everything).
func WithInterest(prefixes ...string) Option { return func(o *options) { o.interest = prefixes } }

// WithIncomingQueue sets how many admitted sessions may wait for each
// IncomingSessions iteration before admitting pauses for it (default 16).
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
// (WithAdmission) at once: node-wide (default 64, shared with every
// server.Server and Admission of the node) and per peer ID (default 4; a
// server.Server bounds its clients per address instead, see its
// MaxPendingPerIP). A peer over its bound is
// refused with BoundsExceeded; when the node-wide bound is reached, accepting
// pauses and connections wait in the transports' bounded accept queues.
// Values below 1 mean 1. Worst case: the node-wide bound in goroutines and
// handshaken connections; one hostile peer ID holds at most its per-peer
// bound of them (but peer IDs cost nothing to make, which is what the
// node-wide bound is for).
func WithPendingAdmissions(node, perPeer int) Option {
	return func(o *options) { o.pendingAdmits, o.pendingPerPeer = node, perPeer }
}

// PeerLimits bound what one remote peer ID can make the node hold. Zero
// fields take the defaults named.
type PeerLimits struct {
	// Sessions: live sessions with one peer ID over every transport, whoever
	// dialed (actor.Config.MaxSessionsPerPeer, default 4); one more is
	// closed with BoundsExceeded. Sessions of a server.Server's clients (no peer
	// ID) are not counted here.
	Sessions int
	// StreamSessions: sessions one peer may open over libp2p streams,
	// including those not yet admitted (p2pstream.Config.MaxSessionsPerPeer,
	// default 8); one more is refused before it starts.
	StreamSessions int
	// StreamsPerSession: streams a peer holds open in one libp2p-streams
	// session (p2pstream.Config.MaxStreamsPerSession, default 1024).
	StreamsPerSession int
	// PendingDials: dials in flight to distinct peers, which discovery can
	// start for peers anyone may advertise (actor.Config.MaxPendingDials,
	// default 64); a connect needing one more fails with ErrTooManyDials.
	PendingDials int
}

// WithPeerLimits sets the per-peer bounds (see PeerLimits).
func WithPeerLimits(l PeerLimits) Option { return func(o *options) { o.peerLimits = l } }

// forwardConfig is the actor's forwarding configuration, nil without
// WithForwarding.
func (o *options) forwardConfig(m **Moq) *actor.Forward {
	if o.forward == nil {
		return nil
	}
	return o.forward.forwardConfig(m)
}
