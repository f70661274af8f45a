package moq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
)

// ResilientOptions tune Moq.SubscribeResilient.
type ResilientOptions struct {
	// SubscribeOptions apply to every upstream subscription.
	SubscribeOptions
	// Peer, if set, pins the provider: only this peer is subscribed at, and
	// its session is kept (redialed with backoff, see Keep) for the
	// track's life. A ticket's AddrInfo goes here. Unset: the name is
	// resolved as Subscribe does (sessions that announce it, then the DHT's
	// providers), and after a loss the previous provider is redialed while
	// any other provider found is tried too.
	Peer *peer.AddrInfo
	// Dial, if set, pins the upstream to the server it dials (moql://,
	// WebTransport, WebSocket: a server without a libp2p identity, whose
	// session Open would run): the node opens a session over what it
	// returns, keeps it (redialed with backoff, see KeepOpen) for the
	// track's life, and resubscribes there after each loss. Names are
	// relative to the server's scope, as on any session it opened. Each
	// track dials its own session: to share one, use Link. Not with Peer.
	Dial Dialer
	// Link, if set, pins the upstream to a link the caller keeps (Keep or
	// KeepOpen): the track subscribes over the link's session and, after a
	// loss, over its next one (as soon as the link is connected again:
	// Link.Session). Tracks may share a link (one session for all of
	// them); the caller detaches it once they are closed (a track whose
	// link is detached while it waits for a session ends, its reads
	// failing with an error matching ErrDetached). Not with Peer or Dial.
	Link *Link
	// MaxOutage ends the track once it has had no upstream for this long:
	// its reads then fail with an error matching ErrOutage and wrapping
	// the last attempt's error (not when that was only the bound's own
	// deadline: the end must not match context.DeadlineExceeded). The outage runs from the loss until a
	// group arrives again: an upstream subscription that is accepted and
	// then ends before delivering a group (a relay that takes it and then
	// finds its own upstream lacks the track, say) does not end it. A
	// subscription that is still up when the bound passes is not cut
	// (the publisher may be slow to write its next group); if it ends
	// without a group, the track ends at once. 0: never; the track waits
	// until Close.
	MaxOutage time.Duration
	// Keep tunes the redials (Peer set, or the previous provider).
	Keep KeepOptions
	// MaxLag bounds how far NextGroup lets its reader fall behind: when the
	// group it would return arrived more than MaxLag ago and a newer one
	// exists, it skips to the latest group (and reports TrackSkipped).
	// Default DefaultMaxLag; negative: never (the reader then lags up to
	// the cache's age, 5 s by default). Ignored with Backpressure.
	MaxLag time.Duration
}

// DefaultMaxLag is ResilientOptions.MaxLag's default.
const DefaultMaxLag = time.Second

// ErrOutage ends a resilient track that had no upstream (no group
// arriving) for its ResilientOptions.MaxOutage.
var ErrOutage = errors.New("moq: no upstream for the track within its outage bound")

// TrackEventKind says what happened to a resilient track's upstream.
type TrackEventKind int

const (
	// TrackLive: an upstream subscription was accepted (the first, or
	// after a loss). Media may not flow yet: TrackResumed marks the first
	// group after a loss, and an accepted subscription may still end
	// without one (then TrackLost follows, and the outage goes on).
	TrackLive TrackEventKind = iota
	// TrackLost: the upstream subscription ended (session ended, peer
	// gone silent, broadcast unannounced, or refused after it was
	// accepted); the track looks for the next one. Each TrackLive is
	// followed by at most one TrackLost. The track's end (ErrOutage, a
	// missing track, Close) is told by its reads, not by an event.
	TrackLost
	// TrackSkipped: ResilientTrack.NextGroup returned a group that does
	// not follow the one it returned before: the groups between were
	// missed, across an outage or because the reader fell behind and the
	// cache dropped them.
	TrackSkipped
	// TrackResumed: the first group from a new upstream arrived after a
	// loss. Skipped counts the groups the track missed meanwhile, when the
	// new upstream numbers groups as the old one did (the same publisher;
	// 0 for one that numbers afresh, such as a restarted publisher), and
	// Outage is the time from TrackLost (the loss noticed: a silent peer
	// takes up to the dead-peer bound before) to this group.
	// Readers of RecvGroup learn the gap here; NextGroup's readers also get
	// TrackSkipped.
	TrackResumed
)

func (k TrackEventKind) String() string {
	switch k {
	case TrackLive:
		return "live"
	case TrackLost:
		return "lost"
	case TrackSkipped:
		return "skipped"
	case TrackResumed:
		return "resumed"
	}
	return fmt.Sprintf("TrackEventKind(%d)", int(k))
}

// TrackEvent is a change in a resilient track's upstream.
type TrackEvent struct {
	Kind TrackEventKind
	// Peer is the upstream's peer (empty if unknown).
	Peer peer.ID
	// Err is why the upstream was lost (TrackLost).
	Err error
	// Skipped counts the groups missed (TrackSkipped, TrackResumed).
	Skipped uint64
	// Outage is the time from the loss noticed to the first group after
	// it (TrackResumed).
	Outage time.Duration
	At     time.Time
}

// ResilientTrack is a track that outlives the sessions it is received
// over: read it as any track consumer (NextGroup, RecvGroup, GetGroup).
// When its upstream is lost it resubscribes (see Moq.SubscribeResilient)
// and continues at the new upstream's latest group, so the reader sees a
// gap, not an error; Events tells what happened. Close it when done.
type ResilientTrack struct {
	*broadcast.TrackConsumer

	m      *Moq
	name   string
	track  string
	opts   ResilientOptions
	local  *broadcast.TrackProducer
	events *eventLog[TrackEvent]
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	lastSeq  uint64 // the last local sequence written
	anyGroup bool
	offset   uint64 // local = upstream + offset, for the current upstream
	epoch    uint64 // the current upstream's first local sequence
	skipped  uint64 // groups missed across outages, in total
	lastRead uint64 // NextGroup's last group, to count a reader's skips
	readAny  bool
	lostAt   time.Time // when the current outage began (zero: none)

	passes atomic.Uint64 // tryUpstream's rounds, for tests
}

// SubscribeResilient subscribes to a track of the broadcast name, as
// Subscribe does (or only where opts pins it: a peer, a server it dials,
// a link the caller keeps), and returns a track that survives the loss of
// its upstream: when the session ends, the peer stops answering (noticed
// within WithDeadPeerTimeout) or the broadcast is unannounced, it
// resubscribes, through other sessions announcing name, the DHT's
// providers and a redial of the previous provider with backoff (or only
// where it is pinned, redialed with backoff), and continues at the new
// upstream's latest group. Group sequences continue from the previous
// upstream's when the new one numbers them lower (another publisher, or
// the same one restarted). ctx bounds the first subscription only: its
// failure is returned as Subscribe's would be. The track then lives until
// Close, the publisher finishes it (reads end with io.EOF), MaxOutage
// passes without a group arriving, or the node shuts down. A track that
// never received a group and whose upstream ends it with NotFound while
// still announcing the broadcast (a relay that accepted the subscription
// but whose own upstream lacks the track) ends at once, its reads failing
// with an error matching broadcast.ErrNotFound, as a refused first
// subscription fails. Session.Subscribe keeps its semantics: a track that
// ends with its session.
func (m *Moq) SubscribeResilient(ctx context.Context, name, track string, opts ResilientOptions) (*ResilientTrack, error) {
	name = broadcast.CleanPath(name)
	if name == "" {
		return nil, broadcast.ErrInvalidPath
	}
	if n := btoi(opts.Peer != nil) + btoi(opts.Dial != nil) + btoi(opts.Link != nil); n > 1 {
		return nil, errors.New("moq: ResilientOptions: Peer, Dial and Link are exclusive")
	}
	t := &ResilientTrack{m: m, name: name, track: track, opts: opts, events: newEventLog[TrackEvent](), done: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(m.ctx)
	link := opts.Link
	switch {
	case opts.Peer != nil:
		link = m.Keep(*opts.Peer, opts.Keep)
	case opts.Dial != nil:
		link = m.KeepOpen(opts.Dial, opts.Keep)
	}
	// The track detaches a link it made, never the caller's.
	own := link != nil && opts.Link == nil
	detach := func() {
		if own {
			link.Detach()
		}
	}
	up, err := t.subscribe(ctx, link)
	if err != nil {
		t.cancel()
		detach()
		return nil, err
	}
	t.local = broadcast.NewTrack(up.tc.Info(), broadcast.Limits{Backpressure: opts.Backpressure})
	t.TrackConsumer = t.local.Consume()
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		up.tc.Close()
		t.cancel()
		detach()
		return nil, ErrShutdown
	}
	m.wg.Go(func() { t.run(up, link, detach) })
	m.mu.Unlock()
	return t, nil
}

// Events yields what happened to the track's upstream, from the first
// subscription on (the 64 latest events are kept), then as it happens,
// until the track ends or ctx ends.
func (t *ResilientTrack) Events(ctx context.Context) iter.Seq[TrackEvent] {
	return t.events.seq(ctx, false)
}

// Skipped is the number of groups missed across outages so far: those
// between the last group received and the first of the new upstream, when
// it numbers groups as the old one did (the same publisher).
func (t *ResilientTrack) Skipped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.skipped
}

// NextGroup is the track consumer's NextGroup that keeps its reader near
// the live edge (see ResilientOptions.MaxLag) and reports, with a
// TrackSkipped event, the groups the reader missed: because it fell
// behind, because the cache dropped them, or across an outage. The
// publisher and other readers never wait for a slow reader.
func (t *ResilientTrack) NextGroup(ctx context.Context) (*broadcast.GroupConsumer, error) {
	g, err := t.TrackConsumer.NextGroup(ctx)
	if err != nil {
		return nil, err
	}
	lag := t.opts.MaxLag
	if lag == 0 {
		lag = DefaultMaxLag
	}
	if latest, ok := t.Latest(); ok && lag > 0 && !t.opts.Backpressure && latest > g.Sequence() && time.Since(g.Created()) > lag {
		// Behind: jump to the live edge rather than play stale groups.
		t.StartAt(latest)
		if lg, err := t.TrackConsumer.NextGroup(ctx); err == nil {
			g = lg
		} else if ctx.Err() != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	var missed uint64
	if t.readAny && g.Sequence() > t.lastRead+1 {
		missed = g.Sequence() - t.lastRead - 1
	}
	t.lastRead, t.readAny = g.Sequence(), true
	t.mu.Unlock()
	if missed > 0 {
		t.events.push(TrackEvent{Kind: TrackSkipped, Skipped: missed, At: time.Now()})
	}
	return g, nil
}

// Close ends the track and its resubscribing, and waits for them.
func (t *ResilientTrack) Close() {
	t.cancel()
	<-t.done
	t.TrackConsumer.Close()
}

// upstream is one upstream subscription: its track, the peer and the
// session it was made on (s nil for this node's own publication or a
// forwarded broadcast, from empty then and for a session without a peer
// ID).
type upstream struct {
	tc   *broadcast.TrackConsumer
	from peer.ID
	s    *Session
}

// upstreamAt is the upstream of a subscription made on s.
func upstreamAt(tc *broadcast.TrackConsumer, s *Session) upstream {
	return upstream{tc: tc, from: s.RemotePeer(), s: s}
}

// subscribe finds an upstream: at the pinned link's session, else as
// Subscribe does (sessions announcing the name first: a redialed previous
// provider is one once it is back; then the DHT's providers).
func (t *ResilientTrack) subscribe(ctx context.Context, link *Link) (upstream, error) {
	if link != nil {
		s, err := link.Session(ctx)
		if err != nil {
			return upstream{}, err
		}
		tc, err := s.SubscribeWith(ctx, t.name, t.track, t.opts.SubscribeOptions)
		return upstreamAt(tc, s), err
	}
	return t.subscribeAround(ctx)
}

// subscribeAround subscribes as Subscribe does, noting the session it
// subscribed on: that one, not its peer's oldest, since a peer may have
// several (both ends dialed at once, or a redial raced the old one's end).
func (t *ResilientTrack) subscribeAround(ctx context.Context) (upstream, error) {
	tc, s, err := t.m.subscribeFrom(ctx, t.name, t.track, t.opts.SubscribeOptions)
	switch {
	case err != nil:
		return upstream{}, err
	case s == nil: // this node's own publication, or a forwarded broadcast
		return upstream{tc: tc}, nil
	}
	return upstreamAt(tc, s), nil
}

// run copies the upstream's groups into the local track, and resubscribes
// when it is lost; at the end it detaches the link the track made.
//
// The outage runs from a loss until a group arrives again: an upstream
// that ends before delivering any group (accepted, then reset) continues
// it, so MaxOutage counts from the first loss, not from the last
// subscription accepted.
func (t *ResilientTrack) run(up upstream, link *Link, detach func()) {
	defer close(t.done)
	defer t.events.close()
	defer detach()
	t.events.push(TrackEvent{Kind: TrackLive, Peer: up.from, At: time.Now()})
	var outageSince time.Time // zero: no outage since the last group
	for {
		got, err := t.pump(up.tc, up.from)
		up.tc.Close()
		// The publisher finished the track: a finished track's reads return
		// io.EOF itself. An abort that merely wraps it (a WebSocket whose TCP
		// connection ended under a killed process) is a loss.
		if err == io.EOF {
			_ = t.local.Finish()
			return
		}
		if t.ctx.Err() != nil {
			t.local.Abort(t.endCause())
			return
		}
		now := time.Now()
		if got || outageSince.IsZero() {
			outageSince = now
		}
		t.mu.Lock()
		t.lostAt = outageSince
		never := !t.anyGroup
		t.mu.Unlock()
		if never && errors.Is(err, broadcast.ErrNotFound) && t.trackMissing(up.s) {
			// No group ever came, and the upstream still announces the
			// broadcast: it lacks the track (a relay that accepted the
			// subscription before its own upstream refused it, say).
			// Waiting would only repeat that. The reads tell, not an
			// event: nothing is lost that a resubscription could bring.
			t.local.Abort(fmt.Errorf("moq: broadcast %q has no track %q (the upstream reset the subscription: %w)", t.name, t.track, err))
			return
		}
		t.events.push(TrackEvent{Kind: TrackLost, Peer: up.from, Err: err, At: now})
		t.m.log.Info("resilient track: upstream lost; resubscribing", "broadcast", t.name, "track", t.track, "peer", up.from, "err", err, "outage", now.Sub(outageSince))
		up, err = t.resubscribe(link, up.from, outageSince, err)
		if err != nil {
			t.local.Abort(err)
			return
		}
		t.mu.Lock()
		t.anyGroupReset()
		t.mu.Unlock()
	}
}

// unannounceGrace is how long a NotFound that ends a track before its
// first group is given to turn out to be the broadcast's end rather than
// the track's absence: a peer (a relay losing its route, say) that ends a
// broadcast resets its subscriptions with NotFound too, its withdrawal of
// the announcement arriving on another stream about then.
const unannounceGrace = 500 * time.Millisecond

// trackMissing reports whether a NotFound from the upstream session s
// means the broadcast lacks the track: s stays up and still announces the
// same broadcast for unannounceGrace. Unknown (s nil): no.
func (t *ResilientTrack) trackMissing(s *Session) bool {
	if s == nil {
		return false
	}
	b := s.s.Remote().Get(t.name)
	if b == nil || s.s.Context().Err() != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(t.ctx, unannounceGrace)
	defer cancel()
	s.awaitAnnounceChange(ctx, t.name, b)
	return t.ctx.Err() == nil && s.s.Context().Err() == nil && s.s.Remote().Get(t.name) == b
}

// anyGroupReset marks that the next upstream group starts a new numbering
// check (see pump).
func (t *ResilientTrack) anyGroupReset() { t.offset = ^uint64(0) }

// resubscribe looks for a new upstream until one answers, MaxOutage
// passes since the outage began (since) or the track ends: over the
// pinned link's next session, else around (see lookAround). lost is why
// the last upstream ended: the error wrapped when no attempt was made.
func (t *ResilientTrack) resubscribe(link *Link, prev peer.ID, since time.Time, lost error) (upstream, error) {
	ctx := t.ctx
	if t.opts.MaxOutage > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, since.Add(t.opts.MaxOutage), ErrOutage)
		defer cancel()
	}
	var up upstream
	var err error
	switch {
	case ctx.Err() != nil: // the bound passed while the last upstream was up
		err = lost
	case link != nil:
		up, err = t.overLink(ctx, link)
	default:
		up, err = t.lookAround(ctx, prev)
	}
	if errors.Is(err, errNotYet) {
		err = lost
	}
	switch {
	case err == nil:
		t.events.push(TrackEvent{Kind: TrackLive, Peer: up.from, At: time.Now()})
		return up, nil
	case t.ctx.Err() != nil:
		return upstream{}, t.endCause()
	case ctx.Err() == nil: // the caller's link was detached: no upstream will come
		return upstream{}, fmt.Errorf("moq: resilient track %q: %w", t.name, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The attempt ended with the outage bound's own deadline: wrapped,
		// it would make the track's end look like the reader's ctx ending.
		return upstream{}, fmt.Errorf("%w (%v): %q: last attempt: %v", ErrOutage, t.opts.MaxOutage, t.name, err)
	}
	return upstream{}, fmt.Errorf("%w (%v): %q: last attempt: %w", ErrOutage, t.opts.MaxOutage, t.name, err)
}

// endCause is why the track ended when its own context did: the node shut
// down (ErrShutdown) or Close was called (broadcast.ErrCancelled, as a plain
// track's reads say after Close). Not the bare context.Canceled, which a
// reader would take for its own ctx ending.
func (t *ResilientTrack) endCause() error {
	if t.m.ctx.Err() != nil {
		return ErrShutdown
	}
	return broadcast.ErrCancelled
}

// overLink subscribes over the link's session as soon as it has one (its
// connected event), until ctx ends (then it returns the last attempt's
// error) or the link is detached. After a refusal on a session that is
// still up (the broadcast lacks the track, say) it tries again once the
// peer's announcement of the broadcast changes or the session ends: what
// the peer answered cannot change before.
func (t *ResilientTrack) overLink(ctx context.Context, link *Link) (upstream, error) {
	last := errNotYet
	for {
		s, err := link.Session(ctx)
		switch {
		case ctx.Err() != nil:
			return upstream{}, last
		case err != nil:
			return upstream{}, err // detached
		}
		// Taken before subscribing, so never newer than the broadcast
		// that refuses: waiting for a change from an older one (or from
		// none, when Subscribe waits for the announcement) only costs one
		// more attempt, while waiting on a newer one could wait forever.
		announced := s.s.Remote().Get(t.name)
		tc, err := s.SubscribeWith(ctx, t.name, t.track, t.opts.SubscribeOptions)
		if err == nil {
			return upstreamAt(tc, s), nil
		}
		if ctx.Err() != nil {
			return upstream{}, last
		}
		last = err
		s.awaitAnnounceChange(ctx, t.name, announced)
	}
}

// awaitAnnounceChange waits until the peer's broadcast at name is other
// than b (withdrawn or replaced; any, if b is nil: at once if one is
// announced), the session ends or ctx ends.
func (s *Session) awaitAnnounceChange(ctx context.Context, name string, b *broadcast.Consumer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.s.Context(), cancel)
	defer stop()
	var seen map[string]*broadcast.Consumer
	if b != nil {
		seen = map[string]*broadcast.Consumer{name: b}
	}
	for path := range s.s.Remote().AnnouncedSince(ctx, name, seen) {
		if path == name {
			return
		}
	}
}

// lookAround looks for a new upstream after a loss, redialing the previous
// provider on a kept link meanwhile, until ctx ends; then it returns the
// last attempt's error. It looks when something may have changed, not on
// a timer: once at first, then whenever a session's peer announces (or
// withdraws) the name, a session is registered (a new peer, or the
// previous provider's link redialed) or a session ends; every two seconds
// for the DHT's providers when the node has a router; and, after a
// session that announces the name refused the subscription, again after
// a backoff (100 ms doubling to a second). Waiting for a publisher that
// is not there costs nothing.
func (t *ResilientTrack) lookAround(ctx context.Context, prev peer.ID) (upstream, error) {
	if prev != "" {
		// Redial the previous provider while looking elsewhere; the link
		// ends with this outage. The session it brings back registers,
		// which wakes the watch below.
		addrs := t.m.h.Peerstore().Addrs(prev)
		pl := t.m.Keep(peer.AddrInfo{ID: prev, Addrs: addrs}, t.opts.Keep)
		defer pl.Detach()
	}
	w, err := t.m.watchName(ctx, t.name)
	if err != nil {
		return upstream{}, err
	}
	defer w.stop()
	last := errNotYet
	var nextLookup time.Time // the next full resolution (DHT included)
	var backoff time.Duration
	for {
		w.refresh() // before looking: a change from now on kicks again
		up, refused, err := t.tryUpstream(ctx, prev, &nextLookup)
		if err == nil {
			return up, nil
		}
		if err != errNotYet && ctx.Err() == nil { // not an attempt the outage bound cut short
			last = err
		}
		wait := time.Duration(-1) // none: wait for a kick
		if refused {
			backoff = min(max(2*backoff, 100*time.Millisecond), time.Second)
			wait = backoff
		} else {
			backoff = 0
		}
		if t.m.disc.router != nil {
			if d := max(time.Until(nextLookup), 0); wait < 0 || d < wait {
				wait = d
			}
		}
		var timer *time.Timer
		var wake <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			wake = timer.C
		}
		select {
		case <-w.kick:
		case <-wake:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return upstream{}, last
		}
	}
}

// errNotYet: no upstream to try yet.
var errNotYet = errors.New("moq: no provider reachable yet")

// tryUpstream makes one round of attempts after a loss: sessions that
// announce the name, the previous provider's session once it is back
// (waiting briefly for its announcement), and every two seconds a full
// resolution as Subscribe does (the DHT's providers). refused reports
// that a session announcing the name refused (or failed) the subscription:
// nothing else may say when to try it again.
func (t *ResilientTrack) tryUpstream(ctx context.Context, prev peer.ID, nextLookup *time.Time) (up upstream, refused bool, err error) {
	t.passes.Add(1)
	sub := func(s *Session, wait time.Duration) (upstream, error) {
		sctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		tc, err := s.SubscribeWith(sctx, t.name, t.track, t.opts.SubscribeOptions)
		return upstreamAt(tc, s), err
	}
	var last error = errNotYet
	for _, s := range t.m.sessionsAnnouncing(ctx, t.name) {
		up, err := sub(s, time.Second)
		if err == nil {
			return up, false, nil
		}
		last, refused = err, true
	}
	if prev != "" {
		// The oldest, as Connect picks: any will do, up being the one subscribed on.
		if s := t.m.liveSession(prev); s != nil {
			up, err := sub(s, 500*time.Millisecond) // waits for the announcement
			if err == nil {
				return up, false, nil
			}
			last = err
		}
	}
	if now := time.Now(); t.m.disc.router != nil && !now.Before(*nextLookup) {
		*nextLookup = now.Add(2 * time.Second)
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		up, err := t.subscribeAround(lctx)
		if err == nil {
			return up, false, nil
		}
		last = err
	}
	return upstream{}, refused, last
}

// pump copies groups from up (at peer from) into the local track until up
// fails; got reports that a group came from up.
func (t *ResilientTrack) pump(up *broadcast.TrackConsumer, from peer.ID) (got bool, err error) {
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		// Arrival order: a group that overtook another (group streams race
		// each other) does not make the other one be dropped here; the
		// application's NextGroup decides what is too late.
		g, err := up.RecvGroup(ctx)
		if err != nil {
			return got, err
		}
		got = true
		seq, ok, resumed := t.localSeq(g.Sequence())
		if resumed != nil {
			resumed.Peer = from
			t.events.push(*resumed)
		}
		if !ok {
			continue
		}
		if t.opts.Backpressure {
			if err := t.local.WaitRoom(ctx); err != nil {
				return got, err
			}
		}
		lg, err := t.local.CreateGroup(seq)
		if err != nil {
			continue // a duplicate: the group is there already
		}
		wg.Go(func() { copyGroup(ctx, g, lg) })
	}
}

// localSeq maps an upstream sequence to the local one: the same when the
// numbering continues, shifted past the last local group when a new
// upstream numbers lower. It counts the groups skipped across an outage,
// and returns the TrackResumed event for the first group after one.
func (t *ResilientTrack) localSeq(seq uint64) (uint64, bool, *TrackEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var resumed *TrackEvent
	if t.offset == ^uint64(0) { // first group of a new upstream
		t.offset = 0
		if t.anyGroup {
			var missed uint64
			if seq <= t.lastSeq {
				t.offset = t.lastSeq + 1 - seq
			} else {
				missed = seq - t.lastSeq - 1
				t.skipped += missed
			}
			now := time.Now()
			resumed = &TrackEvent{Kind: TrackResumed, Skipped: missed, Outage: now.Sub(t.lostAt), At: now}
		}
		t.epoch = seq + t.offset
	}
	l := seq + t.offset
	if t.anyGroup && l < t.epoch {
		return 0, false, resumed // belongs before this upstream began: too old
	}
	if !t.anyGroup || l > t.lastSeq {
		t.lastSeq = l
	}
	t.anyGroup = true
	return l, true, resumed
}

// copyGroup copies g's frames, with their timestamps, into lg (the
// payloads are shared, not copied) and ends lg as g ended.
func copyGroup(ctx context.Context, g *broadcast.GroupConsumer, lg *broadcast.GroupProducer) {
	switch _, rerr, werr := broadcast.CopyGroup(ctx, lg, g, 0); {
	case werr != nil: // lg ended with the track
	case rerr != nil:
		lg.Abort(rerr)
	default:
		_ = lg.Finish()
	}
}

// sessionsAnnouncing lists the live sessions whose peer announces name,
// waiting up to 500 ms for a peer's first announcements (sessions ask for
// them when first needed).
func (m *Moq) sessionsAnnouncing(ctx context.Context, name string) []*Session {
	list, err := m.Sessions(m.ctx)
	if err != nil {
		return nil
	}
	list = slices.DeleteFunc(list, func(s *Session) bool { return s.s.Context().Err() != nil })
	return announcing(ctx, list, name, 500*time.Millisecond)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
