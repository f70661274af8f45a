package moq

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// Option configures New.
type Option func(*options)

type options struct {
	quic          *p2pquic.Transport
	logger        *slog.Logger
	admit         func(context.Context, peer.ID) error
	limits        session.Limits
	receiveBudget int64
	interest      []string
	incoming      int
	pendingAdmits int
	grace         time.Duration
	dialTimeout   time.Duration
	discovery     discoveryOptions // discovery.go
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

// WithReceiveBudget bounds the payload bytes that all of the node's
// sessions together hold of what peers sent them (groups arriving or
// cached), on top of each session's own Limits.MaxReceiveBytes; frames past
// it are refused after evicting cached groups (see broadcast.Budget).
// Default DefaultReceiveBudget.
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

// WithIncomingQueue sets how many admitted sessions may wait for an
// IncomingSessions reader before accepting pauses (default 16).
func WithIncomingQueue(n int) Option { return func(o *options) { o.incoming = n } }

// WithShutdownGrace bounds how long Shutdown waits for sessions to close
// (default 3 s).
func WithShutdownGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithDialTimeout bounds one dial (default 30 s).
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }
