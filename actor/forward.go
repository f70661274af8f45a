// Forwarding: a node re-offers what its sessions' peers announce to its other
// sessions, so that any node can relay. The run goroutine owns the route
// table; relay broadcasts and their pumps (forward_pump.go) only read the
// route each path currently uses, through a routeCell.

package actor

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Defaults of Forward.
const (
	// DefaultLinkCost is a link's cost when RegisterOptions.Cost is 0: a
	// direct link. A relayed link is conventionally 10 (as iroh-moq ranks
	// its relay links).
	DefaultLinkCost = 1
	// DefaultForwardLinger is how long an upstream subscription outlives its
	// last downstream subscriber (moq-relay keeps its subscriptions warm
	// for a while too), so that a subscriber that comes back at once joins
	// the cached track instead of asking upstream again.
	DefaultForwardLinger   = 2 * time.Second
	DefaultMaxForwardPaths = 16384
	DefaultMaxRoutes       = 65536
	DefaultMaxUpstream     = 4096
	// DefaultMaxUpstreamPerPeer is the share of MaxUpstream one
	// downstream peer may take: eight peers, not four sessions, fill it.
	DefaultMaxUpstreamPerPeer = 512
	// DefaultMaxGroupCopiers bounds the groups of one forwarded track
	// copied at once while they are still arriving.
	DefaultMaxGroupCopiers = 64
)

// DefaultWithdrawGrace is Forward.WithdrawGrace's default: how long a path
// whose last route was withdrawn stays forwarded, its pumps waiting,
// before it ends. An upstream relay that
// fails over replaces its broadcast: moq-lite has no message for that, so
// it announces the path ended, then active with the new hops, two
// ANNOUNCEs from one change. run takes each change as it arrives, and may
// take the end alone before the active is read (a loaded node, or the two
// in different packets); ending the path then would end every track
// forwarded on it. The two are written back to back, so the second trails
// the first by the upstream's scheduling and at most one loss recovery on
// the link: 500 ms covers a probe timeout on links up to about 150 ms of
// round trip. A path really withdrawn reaches downstream peers that much
// later.
const DefaultWithdrawGrace = 500 * time.Millisecond

// offerBatch is how many forwarded paths run offers to sessions in a row
// before it looks at its other work: a session that asks for the node's
// announcements has every path under the prefix offered to it, and
// thousands of them would hold every other request up.
const offerBatch = 256

// Forward configures forwarding (Config.Forward). With it, every broadcast a
// session's peer announces is a route to its path, and the node offers one
// relay broadcast per path to its other sessions, with the route's hop list
// (the session layer appends this node's hop ID when announcing it). The
// zero value forwards everything to everyone with the defaults.
type Forward struct {
	// Prefixes are the paths forwarded (whole segments, as broadcast
	// paths match); empty means every path.
	Prefixes []string
	// Accept, if set, says whether a session's announcement of path
	// becomes a route (for instance: the peer may publish there). Nil
	// accepts every session.
	Accept func(s *Session, path string) bool
	// Offer, if set, says whether the relay broadcast at path is offered
	// to a session (for instance: the peer may subscribe there). Nil
	// offers to every session.
	Offer func(s *Session, path string) bool
	// Linger is how long an upstream subscription is kept after its last
	// subscriber left. Default DefaultForwardLinger; negative means none.
	Linger time.Duration
	// MaxPaths bounds the paths forwarded at once (relay broadcasts);
	// announcements of further paths are not forwarded. Worst case: about
	// 2 KiB per path plus one origin entry (≈ 0.5 KiB) per session it is
	// offered to: those whose peer asked for announcements or subscribed.
	// It is above a default peer's session.Limits.MaxAnnounced on purpose:
	// it bounds the node's table, not what one peer sees, and a peer
	// ignores what it does not hold. Default DefaultMaxForwardPaths.
	MaxPaths int
	// MaxRoutes bounds the routes held node-wide (one per session and
	// announced path; each session's peer is also bounded by
	// session.Limits.MaxAnnounced); further ones are ignored. Worst case
	// about 200 B each. Default DefaultMaxRoutes.
	MaxRoutes int
	// MaxUpstream bounds the forwarded tracks with an upstream
	// subscription at once (each a goroutine, a relay track's cache within
	// Limits, and up to MaxGroupCopiers goroutines while groups arrive);
	// a subscription beyond it is refused with BoundsExceeded. Default
	// DefaultMaxUpstream.
	MaxUpstream int
	// MaxUpstreamPerPeer bounds the forwarded tracks one downstream peer
	// had the node subscribe upstream for (the peer whose SUBSCRIBE made
	// the relay track; later subscribers join it for free), so that one
	// peer cannot take every MaxUpstream slot: its subscription beyond it
	// is refused with BoundsExceeded. A peer is a libp2p peer ID with all
	// its sessions, or an anonymous session on its own. At most
	// MaxUpstream. Default DefaultMaxUpstreamPerPeer; negative: no share,
	// as a downstream relay forwarding many tracks through one link may
	// need.
	MaxUpstreamPerPeer int
	// WithdrawGrace is how long a path whose last route was withdrawn
	// waits for a route to come back before it ends (see
	// DefaultWithdrawGrace, the default; negative: none).
	WithdrawGrace time.Duration
	// MaxGroupCopiers bounds the groups of one forwarded track copied at
	// once while still arriving (a goroutine each); the next waits.
	// Default DefaultMaxGroupCopiers.
	MaxGroupCopiers int
	// Cost, if set, gives a session's link cost in place of its
	// RegisterOptions.Cost; 0 (or less) keeps that one.
	Cost func(s *Session) int
	// Limits bound each relay track's cache (broadcast.Limits defaults:
	// the latest group always, older ones within 5 s, 64 MiB, 1024 groups).
	Limits broadcast.Limits
}

func (f Forward) withDefaults() Forward {
	if f.Linger == 0 {
		f.Linger = DefaultForwardLinger
	}
	if f.Linger < 0 {
		f.Linger = 0
	}
	if f.MaxPaths <= 0 {
		f.MaxPaths = DefaultMaxForwardPaths
	}
	if f.MaxRoutes <= 0 {
		f.MaxRoutes = DefaultMaxRoutes
	}
	if f.MaxUpstream <= 0 {
		f.MaxUpstream = DefaultMaxUpstream
	}
	switch {
	case f.MaxUpstreamPerPeer == 0:
		f.MaxUpstreamPerPeer = min(DefaultMaxUpstreamPerPeer, f.MaxUpstream)
	case f.MaxUpstreamPerPeer < 0 || f.MaxUpstreamPerPeer > f.MaxUpstream:
		f.MaxUpstreamPerPeer = f.MaxUpstream
	}
	if f.MaxGroupCopiers <= 0 {
		f.MaxGroupCopiers = DefaultMaxGroupCopiers
	}
	switch {
	case f.WithdrawGrace == 0:
		f.WithdrawGrace = DefaultWithdrawGrace
	case f.WithdrawGrace < 0:
		f.WithdrawGrace = 0
	}
	f.Prefixes = slices.Clone(f.Prefixes)
	for i, p := range f.Prefixes {
		f.Prefixes[i] = broadcast.CleanPath(p)
	}
	return f
}

// ForwardStats are a forwarder's counters.
type ForwardStats struct {
	Paths    int // paths forwarded now
	Routes   int // routes held now
	Upstream int // forwarded tracks with an upstream subscription now
	// Offers counts relay broadcasts offered to sessions since the start:
	// each is one ANNOUNCE to a peer, so it stops growing once routes have
	// settled (no announce storm).
	Offers uint64
	// Switches counts changes of a path's route since the start.
	Switches uint64
	// Refused counts announcements not forwarded for a bound.
	Refused uint64
}

// forwarder is the forwarding state. Only run touches it, except the
// fields marked otherwise.
type forwarder struct {
	a   *Actor
	cfg Forward
	// local holds every relay broadcast, for this node's own subscribers.
	local   *broadcast.Origin
	watches map[uint64]*fwdWatch // by session ID
	paths   map[string]*fwdPath
	touched map[string]bool // paths whose routes changed, until settle
	routes  int
	seq     uint64
	stats   ForwardStats

	kick     chan struct{} // capacity 1: some watch has changes, or offers wait
	dirtyMu  sync.Mutex
	dirty    map[uint64]bool // sessions whose watch fired (dirtyMu)
	expired  []*orphan       // paths whose WithdrawGrace ran out (dirtyMu)
	wants    []*offerJob     // sessions asking for their offers (dirtyMu)
	jobs     []*offerJob     // offers being made, a batch at a time
	upstream atomic.Int64    // pumps running (any goroutine)
	shareMu  sync.Mutex
	shares   map[shareKey]int // pumps running per peer that made their track (shareMu)
}

// offerJob offers the forwarded paths under prefix to a session that asked
// (fill), offerBatch paths at a time.
type offerJob struct {
	s      *Session
	prefix string     // full path
	paths  []*fwdPath // the paths under prefix forwarded when it started
	done   chan struct{}
}

// fwdWatch follows one session's Remote origin.
type fwdWatch struct {
	s      *Session
	w      *broadcast.Watch
	routes map[string]*route // by full path
}

// route is one way to a path: a session whose peer announces it.
type route struct {
	s    *Session
	b    *broadcast.Consumer
	hops []uint64
	cost int
	seq  uint64 // arrival order, to prefer the older of equals
}

// origin is the first hop: the publisher's node, 0 if unknown.
func (r *route) origin() uint64 {
	if len(r.hops) == 0 {
		return 0
	}
	return r.hops[0]
}

// fwdPath is one forwarded path: its routes, the one in use, and the relay
// broadcast offered to the other sessions.
type fwdPath struct {
	path   string
	routes []*route
	active *route
	prod   *broadcast.Producer
	stops  map[uint64]func() // unpublish from a session's origin, by session ID
	local  func()            // unpublish from the local origin
	cell   *routeCell
	// orphan is set while the path has no route (WithdrawGrace): its
	// timer and the token its expiry carries.
	orphan *orphan
}

type orphan struct {
	p *fwdPath
	t *time.Timer
}

// routeCell is what a path's pumps read: the route in use and a channel
// closed when it changes. run writes it.
type routeCell struct {
	mu      sync.Mutex
	cur     *route
	gone    bool // the path is no longer forwarded
	changed chan struct{}
	tracks  map[*broadcast.TrackProducer]struct{} // relay tracks being pumped
}

func (c *routeCell) get() (*route, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, c.gone, c.changed
}

func (c *routeCell) set(r *route, gone bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur, c.gone = r, gone
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *routeCell) addTrack(tp *broadcast.TrackProducer) {
	c.mu.Lock()
	c.tracks[tp] = struct{}{}
	c.mu.Unlock()
}

func (c *routeCell) removeTrack(tp *broadcast.TrackProducer) {
	c.mu.Lock()
	delete(c.tracks, tp)
	c.mu.Unlock()
}

func (c *routeCell) trackList() []*broadcast.TrackProducer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*broadcast.TrackProducer, 0, len(c.tracks))
	for tp := range c.tracks {
		out = append(out, tp)
	}
	return out
}

func newForwarder(a *Actor, cfg Forward) *forwarder {
	return &forwarder{
		a:       a,
		cfg:     cfg.withDefaults(),
		local:   broadcast.NewOrigin(a.cfg.HopID),
		watches: map[uint64]*fwdWatch{},
		paths:   map[string]*fwdPath{},
		touched: map[string]bool{},
		kick:    make(chan struct{}, 1),
		dirty:   map[uint64]bool{},
	}
}

// forwarded reports whether the policy forwards path at all.
func (f *forwarder) forwarded(path string) bool {
	if len(f.cfg.Prefixes) == 0 {
		return true
	}
	return slices.ContainsFunc(f.cfg.Prefixes, func(p string) bool { return broadcast.HasPrefix(path, p) })
}

// added starts following a new session's announcements. Forwarded paths
// are offered to it only under the prefixes its peer uses (fill): an idle
// session holds none of them, and its arrival costs run no work per path.
func (f *forwarder) added(s *Session) {
	fw := &fwdWatch{s: s, routes: map[string]*route{}}
	f.watches[s.id] = fw
	id := s.id
	// The callback runs under the Remote origin's lock: mark and kick only.
	fw.w = s.Remote().WatchSince("", nil, func() {
		f.dirtyMu.Lock()
		f.dirty[id] = true
		f.dirtyMu.Unlock()
		select {
		case f.kick <- struct{}{}:
		default:
		}
	})
	f.dirtyMu.Lock()
	f.dirty[id] = true // anything the peer announced already
	f.dirtyMu.Unlock()
	f.kickRun()
}

func (f *forwarder) kickRun() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// fill is s's session.Config.FillPublish: the peer asked for the
// announcements of s under prefix (relative to the session's scope), or
// subscribes to a path s lacks, so the forwarded paths under it are
// offered to s, now and as they come. It returns once they are (or ctx,
// the session's, ends, or the node shuts down), so that the peer's first
// set of announcements is whole. Jobs run in order, so a request that an
// earlier one covers returns after that one too.
func (f *forwarder) fill(ctx context.Context, s *Session, prefix string) {
	job := &offerJob{s: s, prefix: broadcast.JoinPath(s.scope, prefix), done: make(chan struct{})}
	f.dirtyMu.Lock()
	f.wants = append(f.wants, job)
	f.dirtyMu.Unlock()
	f.kickRun()
	select {
	case <-job.done:
	case <-ctx.Done():
	case <-f.a.shutting:
	}
}

// startOffers takes the requests of sessions for offers: from now on the
// paths under each prefix are offered to its session as they come
// (offerTo), and those forwarded already by offerSome.
func (f *forwarder) startOffers() {
	f.dirtyMu.Lock()
	wants := f.wants
	f.wants = nil
	f.dirtyMu.Unlock()
	for _, job := range wants {
		s := job.s
		if f.a.byID[s.id] != s {
			close(job.done) // gone
			continue
		}
		// A prefix already wanted costs no scan: its paths were offered, or
		// an earlier job offers them before this one is done. So a peer
		// asking again and again (a SUBSCRIBE to a path we lack) costs run
		// O(paths) at most maxWanted+1 times.
		if !s.wants(job.prefix) {
			prefix := s.want(job.prefix)
			for _, p := range f.paths {
				if broadcast.HasPrefix(p.path, prefix) && p.stops[s.id] == nil {
					job.paths = append(job.paths, p)
				}
			}
		}
		f.jobs = append(f.jobs, job)
	}
}

// offerSome makes at most offerBatch offers of the jobs waiting, oldest
// job first, and kicks run again if some are left: run answers other
// requests between batches.
func (f *forwarder) offerSome() {
	n := 0
	for len(f.jobs) > 0 && n < offerBatch {
		job := f.jobs[0]
		if f.a.byID[job.s.id] != job.s { // the session ended: removed undid its offers
			job.paths = nil
		}
		for len(job.paths) > 0 && n < offerBatch {
			p := job.paths[0]
			job.paths[0] = nil
			job.paths = job.paths[1:]
			if f.paths[p.path] == p { // still forwarded
				f.offerTo(p, job.s)
				n++
			}
		}
		if len(job.paths) == 0 {
			close(job.done)
			f.jobs[0] = nil
			f.jobs = f.jobs[1:]
		}
	}
	if len(f.jobs) > 0 {
		f.kickRun()
	}
}

// removed forgets an ended session: its routes and its offers.
func (f *forwarder) removed(s *Session) {
	fw := f.watches[s.id]
	if fw == nil {
		return
	}
	delete(f.watches, s.id)
	fw.w.Stop()
	for path, r := range fw.routes {
		f.dropRoute(path, r)
		f.touched[path] = true
	}
	f.settle()
	if !s.offered {
		return // nothing was offered to it: no work per path
	}
	for _, p := range f.paths {
		// Its origin closes with it, but the relay broadcast would keep
		// the publication's end hook until the broadcast ends.
		if stop := p.stops[s.id]; stop != nil {
			stop()
			delete(p.stops, s.id)
		}
	}
}

// drain applies the changes of every watch that fired, then makes a batch
// of the offers waiting.
func (f *forwarder) drain() {
	defer f.offerSome()
	f.startOffers()
	f.dirtyMu.Lock()
	ids := f.dirty
	f.dirty = map[uint64]bool{}
	expired := f.expired
	f.expired = nil
	f.dirtyMu.Unlock()
	for _, o := range expired {
		if p := o.p; p.orphan == o && f.paths[p.path] == p { // not taken over or ended since
			f.endPath(p)
		}
	}
	for id := range ids {
		fw := f.watches[id]
		if fw == nil {
			continue
		}
		for {
			p, b, ok := fw.w.Next()
			if !ok {
				break
			}
			f.change(fw, p, b)
		}
	}
	f.settle()
}

// settle chooses the route of every path whose routes changed. It runs
// after a whole batch of changes, so that a broadcast replaced at once
// (moq-lite announces a replacement as ended, then active) moves the path
// to its new route, pumps and all, rather than ending it and starting
// another: the next hop downstream then sees no change at all when the
// new route has the same hops, and continues at the next group when it
// comes from the same publisher.
func (f *forwarder) settle() {
	for path := range f.touched {
		delete(f.touched, path)
		if p := f.paths[path]; p != nil {
			f.choose(p)
		}
	}
}

// change applies one announcement change of a session's peer: b announced
// at p (relative to the session's scope), or p withdrawn (b nil).
func (f *forwarder) change(fw *fwdWatch, p string, b *broadcast.Consumer) {
	path := broadcast.JoinPath(fw.s.scope, p)
	if old := fw.routes[path]; old != nil {
		delete(fw.routes, path)
		f.dropRoute(path, old)
		f.touched[path] = true
	}
	if b == nil || !f.forwarded(path) || (f.cfg.Accept != nil && !f.cfg.Accept(fw.s, path)) {
		return
	}
	// A path published here is served from here: a route to it elsewhere
	// would only be a backup of our own broadcast (or a loop).
	if f.a.pubs[path] != nil {
		return
	}
	p0 := f.paths[path]
	if f.routes >= f.cfg.MaxRoutes || (p0 == nil && len(f.paths) >= f.cfg.MaxPaths) {
		f.stats.Refused++
		f.a.log.Debug("not forwarding: bound reached", "path", path, "routes", f.routes, "paths", len(f.paths))
		return
	}
	f.seq++
	cost := fw.s.cost
	if f.cfg.Cost != nil {
		if c := f.cfg.Cost(fw.s); c > 0 {
			cost = c
		}
	}
	r := &route{s: fw.s, b: b, hops: slices.Clone(b.Hops()), cost: cost, seq: f.seq}
	fw.routes[path] = r
	f.routes++
	if p0 == nil {
		p0 = &fwdPath{path: path, stops: map[uint64]func(){}, cell: &routeCell{changed: make(chan struct{}), tracks: map[*broadcast.TrackProducer]struct{}{}}}
		f.paths[path] = p0
	}
	p0.routes = append(p0.routes, r)
	f.touched[path] = true
}

func (f *forwarder) dropRoute(path string, r *route) {
	p := f.paths[path]
	if p == nil {
		return
	}
	n := len(p.routes)
	p.routes = slices.DeleteFunc(p.routes, func(x *route) bool { return x == r })
	f.routes -= n - len(p.routes)
}

// better ranks routes: live first, then lower cost, then fewer hops, then
// older.
func better(x, y *route) bool {
	if lx, ly := x.live(), y.live(); lx != ly {
		return lx
	}
	if x.cost != y.cost {
		return x.cost < y.cost
	}
	if len(x.hops) != len(y.hops) {
		return len(x.hops) < len(y.hops)
	}
	return x.seq < y.seq
}

// sameOrigin reports whether x and y come from one known publisher (the
// first hop of their hop lists).
func sameOrigin(x, y *route) bool { return x.origin() != 0 && x.origin() == y.origin() }

// strictlyBetter is better without the age tie-break: what it takes to
// leave a route that still works (switching has a cost downstream).
func strictlyBetter(x, y *route) bool {
	return better(x, y) && (x.live() != y.live() || x.cost != y.cost || len(x.hops) != len(y.hops))
}

func (r *route) live() bool { return r.s.live() && r.b.Err() == nil }

// choose picks the path's route after a change and updates the relay
// broadcast and its offers to match.
func (f *forwarder) choose(p *fwdPath) {
	var best *route
	for _, r := range p.routes {
		if best == nil || better(r, best) {
			best = r
		}
	}
	if best == nil {
		f.orphaned(p)
		return
	}
	if p.orphan != nil {
		p.orphan.t.Stop()
		p.orphan = nil
	}
	switch {
	case p.active == best:
		return
	case p.active != nil && slices.Contains(p.routes, p.active) && !strictlyBetter(best, p.active):
		return // keep a working route rather than churn
	case p.active != nil && slices.Contains(p.routes, p.active) && p.active.live() && !sameOrigin(best, p.active):
		// Another publisher's route (or one whose origin is unknown) takes
		// over only once this one stops working: the pumps cannot splice
		// two publishers' groups, so switching would cut every subscriber.
		// Any peer may announce any path with a short hop list; preferring
		// it at once would let it take a working broadcast from them.
		return
	}
	old := p.active
	p.active = best
	if old != nil {
		f.stats.Switches++
	}
	if old == nil || !slices.Equal(old.hops, best.hops) {
		f.reannounce(p)
	} else {
		// Same hop list: only the split horizon moves.
		if stop := p.stops[best.s.id]; stop != nil {
			stop()
			delete(p.stops, best.s.id)
		}
		if old.s.live() {
			f.offerTo(p, old.s)
		}
	}
	p.cell.set(best, false)
}

// orphaned keeps a path that lost its last route for WithdrawGrace: a
// route back by then (the replacement's active) takes over as if it had
// come in the same batch as the end (the active route and the relay
// broadcast stay as they were meanwhile; pumps wait for run's choice, the
// old route's broadcast having ended), else the path ends.
func (f *forwarder) orphaned(p *fwdPath) {
	if p.active == nil || f.a.lifetime.Err() != nil {
		f.endPath(p)
		return
	}
	if p.orphan != nil {
		return
	}
	o := &orphan{p: p}
	p.orphan = o
	o.t = time.AfterFunc(f.cfg.WithdrawGrace, func() {
		f.dirtyMu.Lock()
		f.expired = append(f.expired, o)
		f.dirtyMu.Unlock()
		f.kickRun()
	})
}

// reannounce replaces the relay broadcast with one carrying the active
// route's hops: peers must learn the new hop list, or two nodes that each
// hold the other's route would keep it alive after the origin left (the
// hop list is what lets them refuse it). Relay tracks move over, so local
// subscribers and pumps carry on.
func (f *forwarder) reannounce(p *fwdPath) {
	old := p.prod
	path := p.path
	p.prod = broadcast.New(broadcast.Config{
		Hops:    p.active.hops,
		Limits:  f.cfg.Limits,
		OnTrack: func(tp *broadcast.TrackProducer) { f.startPump(p.cell, path, tp) },
	})
	for _, tp := range p.cell.trackList() {
		_ = p.prod.InsertTrack(tp)
	}
	for id, stop := range p.stops {
		stop()
		delete(p.stops, id)
	}
	if p.local != nil {
		p.local()
	}
	if old != nil {
		old.Finish()
	}
	if stop, err := f.local.Publish(path, p.prod.Consume()); err == nil {
		p.local = stop
	}
	for _, list := range f.a.sessions {
		for _, s := range list {
			f.offerTo(p, s)
		}
	}
}

// offerTo publishes the path's relay broadcast into s's origin, if the
// session's peer wants it (fill) and the policy and the split horizon
// allow: never back to the session the route comes from (over lite-03 hop
// IDs are unknown, so the peer could not tell it is its own).
func (f *forwarder) offerTo(p *fwdPath, s *Session) {
	if p.prod == nil || p.active == nil || s == p.active.s || p.stops[s.id] != nil || !s.live() || !s.wants(p.path) {
		return
	}
	name, ok := broadcast.StripPrefix(p.path, s.scope)
	if !ok || name == "" || (f.cfg.Offer != nil && !f.cfg.Offer(s, p.path)) {
		return
	}
	// Tagged: a relay track made for s counts in its peer's MaxUpstreamPerPeer.
	stop, err := s.origin.Publish(name, p.prod.Consume().Tagged(s.shareKey()))
	if err != nil {
		f.a.log.Debug("not forwarding", "path", p.path, "peer", s.peer, "err", err)
		return
	}
	p.stops[s.id] = stop
	s.offered = true
	f.stats.Offers++
}

// endPath stops forwarding a path that has no route left.
func (f *forwarder) endPath(p *fwdPath) {
	if p.orphan != nil {
		p.orphan.t.Stop()
		p.orphan = nil
	}
	delete(f.paths, p.path)
	for _, stop := range p.stops {
		stop()
	}
	if p.local != nil {
		p.local()
	}
	p.cell.set(nil, true)
	if p.prod != nil {
		p.prod.Finish()
	}
}

// published drops the routes to a path now published here.
func (f *forwarder) published(path string) {
	p := f.paths[path]
	if p == nil {
		return
	}
	for _, r := range slices.Clone(p.routes) {
		if fw := f.watches[r.s.id]; fw != nil && fw.routes[path] == r {
			delete(fw.routes, path)
		}
	}
	f.routes -= len(p.routes)
	p.routes = nil
	f.endPath(p)
}

// unpublished takes up again the routes to a path no longer published
// here.
func (f *forwarder) unpublished(path string) {
	for _, fw := range f.watches {
		rel, ok := broadcast.StripPrefix(path, fw.s.scope)
		if !ok || rel == "" || fw.routes[path] != nil {
			continue
		}
		if b := fw.s.Remote().Get(rel); b != nil {
			f.change(fw, rel, b)
		}
	}
	f.settle()
}

// stop ends forwarding at shutdown.
func (f *forwarder) stop() {
	for _, fw := range f.watches {
		fw.w.Stop()
	}
	f.watches = map[uint64]*fwdWatch{}
	for _, p := range f.paths {
		f.endPath(p)
	}
	f.startOffers()
	for _, job := range f.jobs {
		close(job.done)
	}
	f.jobs = nil
	f.routes = 0
	f.local.Close()
}

func (f *forwarder) snapshot() ForwardStats {
	st := f.stats
	st.Paths, st.Routes, st.Upstream = len(f.paths), f.routes, int(f.upstream.Load())
	return st
}

// Forwarded is the origin of every broadcast this node forwards (nil
// without Config.Forward): subscribing to one of its tracks shares the
// node's one upstream subscription and follows the path's route when it
// changes.
func (a *Actor) Forwarded() *broadcast.Origin {
	if a.fwd == nil {
		return nil
	}
	return a.fwd.local
}

// ForwardStats returns the forwarder's counters (zero without forwarding).
func (a *Actor) ForwardStats(ctx context.Context) (ForwardStats, error) {
	s, err := a.query(ctx)
	return s.forward, err
}
