package session

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
)

// Stats counts a session's media: payload bytes and frames of the groups it
// sent and received, on group streams, datagrams and FETCH answers
// (transport overhead excluded; see transport.StatsConn for that).
type Stats struct {
	GroupsSent     uint64 `json:"groups_sent"`
	GroupsReceived uint64 `json:"groups_received"`
	FramesSent     uint64 `json:"frames_sent"`
	FramesReceived uint64 `json:"frames_received"`
	BytesSent      uint64 `json:"bytes_sent"`
	BytesReceived  uint64 `json:"bytes_received"`
	// DatagramsSent and DatagramsReceived count the groups among the above
	// that travelled as datagrams (moq-lite-05).
	DatagramsSent     uint64 `json:"datagrams_sent"`
	DatagramsReceived uint64 `json:"datagrams_received"`
	// DatagramsDropped counts datagrams the transport handed over that
	// went into no track: malformed, for a subscription we no longer (or
	// never) had, or refused by the track (its group came by stream
	// already, or it no longer fits the receive budget). Datagrams the
	// transport itself lost are not counted.
	DatagramsDropped uint64 `json:"datagrams_dropped"`
	// AnnouncementsIgnored counts the peer's announcements left out of
	// Remote because it held MaxAnnounced broadcasts (or
	// MaxAnnouncedBytes of paths) already, or on lite-05 because the hop
	// chain had no room for the responder's hop: not media, but what a
	// peer that announces more than we hold (a big relay) costs us.
	AnnouncementsIgnored uint64 `json:"announcements_ignored"`
}

type counters struct {
	groupsSent, groupsReceived       atomic.Uint64
	framesSent, framesReceived       atomic.Uint64
	bytesSent, bytesReceived         atomic.Uint64
	datagramsSent, datagramsReceived atomic.Uint64
	datagramsDropped                 atomic.Uint64
	announcementsIgnored             atomic.Uint64
}

// Stats returns the session's counters so far.
func (s *Session) Stats() Stats {
	c := &s.counters
	return Stats{
		GroupsSent: c.groupsSent.Load(), GroupsReceived: c.groupsReceived.Load(),
		FramesSent: c.framesSent.Load(), FramesReceived: c.framesReceived.Load(),
		BytesSent: c.bytesSent.Load(), BytesReceived: c.bytesReceived.Load(),
		DatagramsSent: c.datagramsSent.Load(), DatagramsReceived: c.datagramsReceived.Load(),
		DatagramsDropped:     c.datagramsDropped.Load(),
		AnnouncementsIgnored: c.announcementsIgnored.Load(),
	}
}

// SubscriptionStats count one live subscription's media: one of ours
// (Served false: groups the peer sent us) or one of the peer's that we
// serve (Served true: groups we send).
type SubscriptionStats struct {
	ID        uint64 `json:"id"` // the subscription's ID on the wire
	Broadcast string `json:"broadcast"`
	Track     string `json:"track"`
	Served    bool   `json:"served"`
	// Groups counts groups delivered whole: sent and closed (served), or
	// received to their end (ours). Frames and Bytes count payload as it
	// went out or came in, including that of groups reset midway.
	Groups uint64 `json:"groups"`
	Frames uint64 `json:"frames"`
	Bytes  uint64 `json:"bytes"`
	// Resets counts group streams that ended early, by moq-lite code: for
	// a served subscription those we reset (Old: older than the
	// subscriber's max latency; Cancel: the subscription ended with groups
	// in flight; other codes: the track's own), for ours those the
	// publisher reset and those we refused (Old or Lagged: the track had
	// moved past the group; BoundsExceeded: the receive budget).
	Resets map[broadcast.Code]uint64 `json:"resets,omitempty"`
	// Skipped counts sequence numbers between the first and the latest
	// group that never started: for a served subscription, groups the
	// track's cache evicted before they could be sent (or the publisher
	// never made); for ours, groups the publisher never sent.
	Skipped uint64 `json:"skipped"`
	// Latest is the highest group sequence seen (valid when HasLatest).
	Latest    uint64 `json:"latest"`
	HasLatest bool   `json:"has_latest"`
	// Behind is how far the latest group's sending started behind live,
	// measured on the publishing side (served subscriptions only): the
	// group's age on the publisher's clock, from its making to its send
	// starting. It grows when the subscriber or the link is slower than
	// the media. It is 0 on the subscribing side: lite-05's frame
	// timestamps are media times in the track's timescale, with no
	// wall-clock origin shared with the publisher, so a subscriber cannot
	// tell from them how far it is behind live (and lite-04 frames carry
	// no timestamp at all).
	Behind time.Duration `json:"behind_ns"`
}

// resetBuckets are the codes counted one by one; larger codes (the
// application's) share the last bucket, reported as CodeApp.
const resetBuckets = int(broadcast.CodeApp) + 1

// subStats are one subscription's live counters. Their methods run on the
// media path and allocate nothing.
type subStats struct {
	id            uint64
	path, track   string
	dir           Direction     // Sent for a subscription we serve
	tr            SessionTracer // nil: no metrics
	groups        atomic.Uint64
	frames, bytes atomic.Uint64
	started       atomic.Uint64 // groups that started (streams that named it, groups handed to the sender)
	first, latest atomic.Uint64 // sequence + 1; 0: none yet
	behind        atomic.Int64
	resets        [resetBuckets]atomic.Uint64
}

// groupStarted notes that group seq started (created at created, zero if
// unknown).
func (st *subStats) groupStarted(seq uint64, created time.Time) {
	if st == nil {
		return
	}
	st.started.Add(1)
	for {
		f := st.first.Load()
		if f != 0 && f <= seq+1 || st.first.CompareAndSwap(f, seq+1) {
			break
		}
	}
	for {
		l := st.latest.Load()
		if l >= seq+1 {
			break
		}
		if st.latest.CompareAndSwap(l, seq+1) {
			if !created.IsZero() {
				st.behind.Store(int64(time.Since(created)))
			}
			break
		}
	}
}

// media counts frames and their payload bytes.
func (st *subStats) media(frames, bytes uint64) {
	if st == nil || frames == 0 {
		return
	}
	st.frames.Add(frames)
	st.bytes.Add(bytes)
	if st.tr != nil {
		st.tr.Frames(st.dir, frames, bytes)
	}
}

// groupDone counts a group delivered whole.
func (st *subStats) groupDone() {
	if st == nil {
		return
	}
	st.groups.Add(1)
	if st.tr != nil {
		st.tr.Group(st.dir)
	}
}

// reset counts a group stream ended early with code.
func (st *subStats) reset(code broadcast.Code) {
	if st == nil {
		return
	}
	st.resets[min(int(code), resetBuckets-1)].Add(1)
	if st.tr != nil {
		st.tr.GroupReset(st.dir, code)
	}
}

func (st *subStats) snapshot() SubscriptionStats {
	out := SubscriptionStats{
		ID: st.id, Broadcast: st.path, Track: st.track, Served: st.dir == Sent,
		Groups: st.groups.Load(), Frames: st.frames.Load(), Bytes: st.bytes.Load(),
		Behind: time.Duration(st.behind.Load()),
	}
	if l := st.latest.Load(); l > 0 {
		out.Latest, out.HasLatest = l-1, true
		if span, started := l-st.first.Load()+1, st.started.Load(); span > started {
			out.Skipped = span - started
		}
	}
	for code := range st.resets {
		if n := st.resets[code].Load(); n > 0 {
			if out.Resets == nil {
				out.Resets = map[broadcast.Code]uint64{}
			}
			out.Resets[broadcast.Code(code)] = n
		}
	}
	return out
}

// Subscriptions returns the counters of the session's live subscriptions,
// ours and those we serve: ours first, each side by broadcast, then ID.
func (s *Session) Subscriptions() []SubscriptionStats {
	return s.obs.subscriptions()
}

// Idle returns a channel closed once the session has no subscriptions,
// ours or the peer's that we serve (none that Subscriptions would list):
// at once if it has none now. A subscription that starts after it closed
// does not reopen it; call Idle again to wait for that one. Subscriptions
// count themselves out as they end, which closes it: nobody polls.
// Select on Done too: a subscription made as the session ends may never
// start, and so never end.
func (s *Session) Idle() <-chan struct{} {
	return s.obs.idle()
}

// Direction says which way media flows, for metrics.
type Direction uint8

// Directions of media.
const (
	Received Direction = iota // groups of our subscriptions
	Sent                      // groups of the peer's subscriptions we serve
)

// String is "received" or "sent".
func (d Direction) String() string {
	if d == Sent {
		return "sent"
	}
	return "received"
}

// MetricsTracer is told about sessions as they start, for metrics; package
// metrics implements it for Prometheus. Without one (the default) nothing
// is traced, and the session's own counters (Stats, Subscriptions) still
// count.
type MetricsTracer interface {
	// SessionStarted is called once a session's version is known; the
	// SessionTracer it returns gets the session's events until Closed.
	SessionStarted(info SessionInfo) SessionTracer
}

// SessionInfo describes a session that started, for a MetricsTracer.
type SessionInfo struct {
	Transport string // transport.Stats.Transport; "" if the connection has no Stats
	Version   string // moq-lite version, e.g. "moq-lite-04"
	Outbound  bool   // this side opened the connection (Config.Client)
	// Link reads the connection's counters (nil without them).
	Link func() transport.Stats
}

// SessionTracer receives one session's events. Frames and Group run on the
// media path, once per batch of frames and once per group: they must not
// block and should not allocate.
type SessionTracer interface {
	// Frames counts frames and payload bytes sent or received.
	Frames(d Direction, frames, bytes uint64)
	// Group counts a group sent or received whole.
	Group(d Direction)
	// GroupReset counts a group stream that ended early with code.
	GroupReset(d Direction, code broadcast.Code)
	// Subscription counts subscriptions starting (+1) and ending (-1).
	Subscription(d Direction, delta int)
	// Closed is called once when the session has ended.
	Closed()
}

// observer is a session's bookkeeping for Subscriptions, Idle and its
// MetricsTracer.
type observer struct {
	mu     sync.Mutex
	tr     SessionTracer // set once the session started, if Config.Metrics is set
	closed bool
	// live is made with the first subscription: one pointer, so that Idle
	// costs Session no field of its own (TestSessionSize).
	live *liveSubs
}

// liveSubs are the subscriptions counted and Idle's channel.
type liveSubs struct {
	subs map[*subStats]struct{}
	idle chan struct{} // closed when subs empties; made only while some wait
}

// started hands the session to metrics (Config.Metrics, if set), unless
// it has ended.
func (o *observer) started(s *Session, metrics MetricsTracer) {
	if metrics == nil {
		return
	}
	info := SessionInfo{Version: s.version.String(), Outbound: s.client}
	if sc, ok := s.conn.(transport.StatsConn); ok {
		info.Link = sc.Stats
		info.Transport = sc.Stats().Transport
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.tr = metrics.SessionStarted(info)
	}
}

// ended tells the tracer the session is over.
func (o *observer) ended() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.closed = true
	if o.tr != nil {
		o.tr.Closed()
	}
}

// sentGroup counts a group that went out whole, with frames and bytes of
// payload, in the session's counters and in st (a subscription's, or a
// FETCH answer's from observer.fetch).
func (s *Session) sentGroup(st *subStats, frames, bytes uint64) {
	s.counters.groupsSent.Add(1)
	s.counters.framesSent.Add(frames)
	s.counters.bytesSent.Add(bytes)
	st.media(frames, bytes)
	st.groupDone()
}

// fetch counts one FETCH answer (served: one we send) for the session's
// tracer, as a subscription's groups are counted, but it is no
// subscription: SubscriptionStats and Idle do not see it.
func (o *observer) fetch(served bool) *subStats {
	st := &subStats{}
	if served {
		st.dir = Sent
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		st.tr = o.tr
	}
	return st
}

// track starts counting a subscription; untrack it when it ends.
func (o *observer) track(served bool, id uint64, path, track string) *subStats {
	// Copies: a peer's path may be cut from a message padded up to
	// MaxMessageSize, which must not live as long as the subscription.
	st := &subStats{id: id, path: strings.Clone(path), track: strings.Clone(track)}
	if served {
		st.dir = Sent
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live == nil {
		o.live = &liveSubs{subs: map[*subStats]struct{}{}}
	}
	o.live.subs[st] = struct{}{}
	if o.tr != nil && !o.closed {
		st.tr = o.tr
		o.tr.Subscription(st.dir, 1)
	}
	return st
}

func (o *observer) untrack(st *subStats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live == nil {
		return
	}
	if _, ok := o.live.subs[st]; !ok {
		return
	}
	delete(o.live.subs, st)
	if st.tr != nil {
		st.tr.Subscription(st.dir, -1)
	}
	if len(o.live.subs) == 0 && o.live.idle != nil {
		close(o.live.idle)
		o.live.idle = nil
	}
}

// idle returns a channel closed once no subscription is counted.
func (o *observer) idle() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live == nil || len(o.live.subs) == 0 {
		return closedChan
	}
	if o.live.idle == nil {
		o.live.idle = make(chan struct{})
	}
	return o.live.idle
}

func (o *observer) subscriptions() []SubscriptionStats {
	o.mu.Lock()
	var list []*subStats
	if o.live != nil {
		list = make([]*subStats, 0, len(o.live.subs))
		for st := range o.live.subs {
			list = append(list, st)
		}
	}
	o.mu.Unlock()
	out := make([]SubscriptionStats, len(list))
	for i, st := range list {
		out[i] = st.snapshot()
	}
	slices.SortFunc(out, func(a, b SubscriptionStats) int {
		if a.Served != b.Served {
			if a.Served {
				return 1
			}
			return -1
		}
		if c := strings.Compare(a.Broadcast, b.Broadcast); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}
