package session

import (
	"log/slog"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Config configures a Session. The zero value is usable: it publishes nothing,
// asks the peer for all of its announcements and applies default limits.
type Config struct {
	// Publish holds the broadcasts offered to the peer. Nil offers nothing.
	Publish *broadcast.Origin
	// Interest lists the path prefixes whose announcements to ask the peer
	// for; nil means [""] (everything), and an empty non-nil slice asks for
	// none.
	Interest []string
	// HopID identifies this node in hop lists. Zero means Publish's ID, or a
	// random one without Publish.
	HopID uint64
	// Limits bound what the peer may make this session hold.
	Limits Limits
	// Logger receives protocol events; nil means slog.Default().
	Logger *slog.Logger
	// Client marks the side that opened the connection. It matters only
	// when the protocol leaves the version to the compat SETUP ("moql" or
	// none, as @moq/lite over WebSocket): the client sends CLIENT_SETUP.
	Client bool
}

// Limits bound a session's resources. Zero fields take the defaults.
type Limits struct {
	// MaxSubscriptions is how many of the peer's subscriptions are served at
	// once; more are refused with BoundsExceeded. Default 1024.
	MaxSubscriptions int
	// MaxAnnounced is how many broadcasts the peer may have announced at
	// once; more close the session with BoundsExceeded. Default 4096.
	MaxAnnounced int
	// MaxGroupsInFlight is how many groups of one subscription are sent at
	// once; later groups wait in the track's cache. Default 64.
	MaxGroupsInFlight int
	// MaxFrameSize bounds one received frame. Default 16 MiB.
	MaxFrameSize int
	// MaxMessageSize bounds one control message. Default 64 KiB.
	MaxMessageSize int
	// Model bounds the caches of tracks received from the peer. Its Budget
	// is the session's own (MaxReceiveBytes): a value set here is replaced.
	Model broadcast.Limits
	// MaxReceiveBytes bounds the payload bytes of everything received from
	// the peer that the session holds: frames of groups still arriving (a
	// frame being read counts as its memory is allocated) and of groups
	// the tracks cache. Beyond it, finished cached groups are evicted,
	// oldest first in each track, and a group stream that still does not fit
	// is stopped with BoundsExceeded (frames it delivered before stay). What
	// it does not cover: per group stream, a 16 KiB read buffer and its
	// goroutine, so that the worst case for the peer's open group streams is
	// MaxReceiveBytes + the connection's incoming uni-stream limit (1000 for
	// rawquic) × ~24 KiB. Default 64 MiB.
	MaxReceiveBytes int64
	// ReceiveBudget, if set, is a budget shared with other sessions (of one
	// node, say) that also bounds what this session receives: a frame must
	// fit in both. Nil means the session's own bound only.
	ReceiveBudget *broadcast.Budget
	// FinishGrace is how long a subscription whose publisher finished it
	// waits for group streams still on their way before it reports the end.
	// Default 250 ms.
	FinishGrace time.Duration
	// SetupTimeout bounds the compat SETUP exchange. Default 10 s.
	SetupTimeout time.Duration
}

// DefaultMaxReceiveBytes is the default of Limits.MaxReceiveBytes.
const DefaultMaxReceiveBytes = 64 << 20

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxSubscriptions, 1024)
	def(&l.MaxAnnounced, 4096)
	def(&l.MaxGroupsInFlight, 64)
	def(&l.MaxFrameSize, 16<<20)
	def(&l.MaxMessageSize, 64<<10)
	if l.MaxReceiveBytes <= 0 {
		l.MaxReceiveBytes = DefaultMaxReceiveBytes
	}
	// Called once per session: this is the session's budget.
	l.Model.Budget = broadcast.NewBudget(l.MaxReceiveBytes, l.ReceiveBudget)
	if l.FinishGrace <= 0 {
		l.FinishGrace = 250 * time.Millisecond
	}
	if l.SetupTimeout <= 0 {
		l.SetupTimeout = 10 * time.Second
	}
	return l
}

// SubscribeOptions shape one subscription. When several local subscribers
// share a wire subscription, the first one's options apply.
type SubscribeOptions struct {
	// Priority: higher is delivered first when the link is congested.
	Priority uint8
	// Ordered asks the publisher for oldest-first delivery.
	Ordered bool
	// MaxLatency lets the publisher drop groups older than this; 0 = never.
	MaxLatency time.Duration
	// Start, if set, is the first group wanted instead of the latest. A
	// subscription with Start or End gets a wire subscription of its own.
	Start *uint64
	// End, if set, is the last group wanted (inclusive).
	End *uint64
	// Backpressure makes the subscription lossless, for finite transfers: the
	// returned consumer's track keeps every group it has not received (see
	// broadcast.Limits.Backpressure), and a group stream is not read until
	// that track has room for its group. The publisher is then held back by
	// QUIC flow control and stream credit, which stops its session's
	// consumer of the track after MaxGroupsInFlight groups, which stops a
	// publishing application waiting in TrackProducer.WaitRoom. A subscription
	// with Backpressure gets a wire subscription of its own. Each group
	// stream waiting for room holds a goroutine and a 16 KiB read buffer,
	// so the worst case is the connection's incoming uni-stream limit (1000
	// for rawquic) times that, plus what the transport buffers (its
	// connection flow-control window).
	Backpressure bool
}
