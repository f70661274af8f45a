package session

import (
	"context"
	"log/slog"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// Config configures a Session. The zero value is usable: it publishes nothing,
// asks the peer for all of its announcements and applies default limits.
type Config struct {
	// Publish holds the broadcasts offered to the peer. Nil offers nothing.
	Publish *broadcast.Origin
	// FillPublish, if set, is called before the peer is served from
	// Publish under prefix: with the prefix of each of its announce
	// interests, and with the broadcast's path for a SUBSCRIBE, TRACK or
	// FETCH that Publish lacks; the serving waits until it returns. An
	// owner with many broadcasts to offer can so fill Publish only with
	// what the peer uses: an idle session holds none of them. ctx ends
	// with the session.
	FillPublish func(ctx context.Context, prefix string)
	// Interest lists the path prefixes whose announcements to ask the peer
	// for; nil means [""] (everything), and an empty non-nil slice asks for
	// none.
	Interest []string
	// LazyInterest defers the announce-interest streams (one per Interest
	// prefix) until something needs the peer's announcements: the first
	// call of Remote or AwaitRemote. An idle session then holds no announce
	// stream of ours, nor the goroutine that reads it, and the peer serves
	// none for us. It applies to the versions whose publisher marks the end
	// of the set it announces first (lite-01/02's ANNOUNCE_INIT, lite-05's
	// ANNOUNCE_OK with its count), so that AwaitRemote can tell when what
	// the peer announced before the request has arrived; on lite-03/04,
	// which have no such marker, the streams open at once as without it.
	// Until the first Remote call the session neither mirrors the peer's
	// broadcasts nor ends subscriptions when the peer unannounces them.
	LazyInterest bool
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
	// SetupPath is the request target (path, and "?" and the query if
	// any) a client sends in its moq-lite-05 SETUP, for transports that
	// carry no request URI (raw QUIC): servers such as moq-relay take the
	// session's path and ?jwt= token from it. Never set it over WebTransport
	// or WebSocket, whose URL carries the target (repeating it in SETUP is
	// a protocol violation there). Empty: the connection's own, if it has
	// one (rawquic.DialURL's), else none. Other versions carry no path.
	SetupPath string
	// PeerSetup is the client's lite-05 SETUP when the server read it
	// before New (AcceptSetup), to route the session by its path: New
	// takes it as the peer's SETUP and does not expect that stream again.
	PeerSetup *wire.Setup
	// Metrics, if set, is told about the session and its media (see
	// package metrics); nil traces nothing.
	Metrics MetricsTracer
	// OnEnd, if set, is called once the session has ended (its Context is
	// done and the peer's broadcasts have ended), on a goroutine other than
	// the one that ended it. Close does not wait for it, so it may block,
	// and New never calls it for a session it does not return. It spares
	// an owner that must learn of the end a context.AfterFunc of its own.
	OnEnd func()
	// OnGoaway, if set, is called once the peer sent GOAWAY (its first),
	// with the session and the GOAWAY's URI, on a goroutine of its own:
	// it may block. GoingAway reports the same to whoever waits for it.
	OnGoaway func(s *Session, uri string)
}

// Limits bound what a peer can make a session hold. Zero fields take the
// defaults. Each field's comment states the worst case one hostile peer can
// cause through it with the defaults (heap as measured by the TestBounds
// tests, goroutines besides); docs/limits.md sums them up.
type Limits struct {
	// MaxSubscriptions is how many of the peer's subscriptions are served at
	// once; more are refused with BoundsExceeded (that stream only). Default
	// 1024. Each costs about 10 KiB and two goroutines before any group is
	// sent (10 MiB and 2048 goroutines), plus its groups in flight
	// (MaxGroupsInFlight, MaxSessionGroupsInFlight for them all).
	MaxSubscriptions int
	// MaxAnnounced is how many broadcasts the peer may have announced at
	// once, counting announcements refused as loops or, on lite-05, for a
	// full hop chain (they are remembered until they end). Further announcements are ignored, not remembered
	// (their end, when it comes, is ignored too), and counted in
	// Stats.AnnouncementsIgnored; the session goes on (a relay may carry
	// more paths than we hold) and RemoteIncomplete tells. A place freed
	// later is taken by the next announcement, not by one ignored before.
	// Default 4096: under 2 KiB each besides the path, 8 MiB.
	MaxAnnounced int
	// MaxAnnouncedBytes bounds the total length of the paths the peer has
	// announced at once, looped ones included; announcements beyond it are
	// ignored as beyond MaxAnnounced. Default 1 MiB.
	MaxAnnouncedBytes int
	// MaxAnnounceInterests is how many announce streams (ANNOUNCE_PLEASE)
	// the peer may hold open at once, counted from their stream type; more
	// are refused with BoundsExceeded (that stream only). Default 16. Each
	// holds its prefix (up to MaxMessageSize), a goroutine while changes are
	// written (and, on transports other than rawquic and p2pquic, one that
	// reads the peer's side while it is idle) and a watch of the published
	// origin, about 115 B per broadcast published under the prefix:
	// 16 x 72 KiB (1.1 MiB) and at most 32 goroutines besides the watches,
	// which on a relay forwarding 16 384 paths hold 16 x 1.8 MiB.
	MaxAnnounceInterests int
	// MaxProbes is how many probe streams the peer may hold open at once
	// (moq-lite peers open one per session); more are refused with
	// BoundsExceeded (that stream only). Default 4: 4 goroutines.
	MaxProbes int
	// HeaderTimeout bounds how long a stream the peer opened may take to
	// deliver its type and first message (a group stream: its GROUP
	// header); a stream still waiting is reset (bidi) or stopped (uni) with
	// Timeout. Default 10 s. A group stream's deadline starts again while
	// the peer's other group streams make progress (or one is being read)
	// or back-pressure holds our accept loop: QUIC makes a stream
	// acceptable before its bytes come, and such a header is late behind
	// the peer's other groups or a window our reader keeps full, not
	// abandoned. Until then such a stream holds a goroutine and 5 KiB
	// (bidi) or 21 KiB (uni), as many as the transport's stream credit
	// allows (rawquic: 1000 of each, so 26 MiB and 2000 goroutines).
	// On lite-05 it also bounds how long a Subscribe waits for the peer's
	// SETUP to learn whether its publisher answers at once.
	HeaderTimeout time.Duration
	// MaxGroupsInFlight is how many groups of one subscription are sent at
	// once; later groups wait in the track's cache. Default 64. Each is a
	// goroutine and a 32 KiB write buffer while the peer's flow control
	// holds it; MaxSessionGroupsInFlight bounds them for the whole session.
	MaxGroupsInFlight int
	// MaxSessionGroupsInFlight is how many groups of all the peer's
	// subscriptions together are sent at once; a subscription's next group
	// waits for one to end (in the order subscriptions asked, so none
	// starves), its later groups in the track's cache. Default 256: four
	// subscriptions with MaxGroupsInFlight each, far more than live tracks
	// use (a group in flight longer than the link needs is a backlog). Each
	// is a goroutine and a 32 KiB write buffer with the transport's stream
	// state: for a peer that subscribes up to MaxSubscriptions times, grants
	// stream credit and reads nothing, about 48 KiB each (12 MiB) and 256
	// goroutines, instead of MaxSubscriptions × MaxGroupsInFlight of them.
	// Small finished groups (up to 32 frames and 1 KiB), written by the
	// subscription's own goroutine, need none. Keep it above
	// MaxGroupsInFlight, so that no one subscription (one whose subscriber
	// stopped reading, say) can hold every token; a peer subscribed to more
	// live tracks than this, each with a group open, gets their groups in
	// turn as groups end.
	MaxSessionGroupsInFlight int
	// MaxFrameSize bounds one received frame. Default 16 MiB. Sizes over
	// 64 KiB are not allocated up front: memory follows the bytes received.
	MaxFrameSize int
	// MaxMessageSize bounds one control message. Default 64 KiB. A message
	// still arriving holds at most about twice the bytes received of it.
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
	// fit in both. It is shared fairly (see broadcast.Budget): the session
	// may take groups back from one holding more of it, and another may
	// take back this session's groups; those still arriving are aborted
	// and their streams stopped with BoundsExceeded. Nil means the
	// session's own bound only.
	ReceiveBudget *broadcast.Budget
	// FinishGrace is how long a subscription whose publisher finished it
	// waits for group streams still on their way before it reports the end.
	// Default 250 ms. Group streams whose header has not arrived delay the
	// end by at most FinishGrace as well. The publisher opened every group
	// stream before its FIN, so they trail it by reordering or a lost
	// packet's recovery: a round trip plus a probe timeout, well under
	// 250 ms on paths up to ~50 ms RTT. The grace starts over once the
	// accept loop, if it was away (back-pressure holds it, or it was not
	// scheduled), has taken the streams waiting for it. If it is too
	// short, a group stream arriving later is refused and its frames are
	// missing from the track's end; if too long, the end is reported that
	// much later.
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
	def(&l.MaxAnnouncedBytes, 1<<20)
	def(&l.MaxAnnounceInterests, 16)
	def(&l.MaxProbes, 4)
	def(&l.MaxGroupsInFlight, 64)
	def(&l.MaxSessionGroupsInFlight, 256)
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
	if l.HeaderTimeout <= 0 {
		l.HeaderTimeout = 10 * time.Second
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
	// broadcast.Limits.Backpressure), and a group enters it whole, once it
	// has room; its cache is held to half of MaxReceiveBytes. With Start 0,
	// reading GetGroup(0), GetGroup(1), ... gets every group in sequence
	// order (RecvGroup gives arrival order, which may differ). Group streams
	// are read to their end meanwhile, but once MaxGroupsInFlight groups
	// read ahead wait for room, further group streams wait unread (and the
	// accept loop with them): QUIC stream credit and flow control then hold
	// the publisher back, which stops its session's consumer of the track,
	// which stops a publishing application waiting in
	// TrackProducer.WaitRoom. Worst case per subscription, beyond the
	// cache: MaxGroupsInFlight groups read ahead, the groups whose streams
	// are being read (what the publisher has in flight), all charged to the
	// receive budget (a group past it is refused with BoundsExceeded: keep
	// (cache + 2 × MaxGroupsInFlight) × group size within MaxReceiveBytes),
	// plus a goroutine and a 16 KiB buffer per stream waiting unread (up to
	// the transport's stream credit). A back-pressured subscription whose
	// reader stops also stops the session's other group streams. It gets a
	// wire subscription of its own.
	Backpressure bool
}
