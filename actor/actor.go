package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

// Actor owns a node's sessions, publications and pending connects. Its
// methods are safe for concurrent use; they talk to one goroutine.
type Actor struct {
	cfg Config
	log *slog.Logger

	// Requests.
	connectc     chan connectReq
	registerc    chan registerReq
	publishc     chan publishReq
	unpublishc   chan unpublishReq
	queryc       chan queryReq
	shutdownc    chan shutdownReq
	subscribec   chan subscribeReq    // an incoming-session subscriber starts
	unsubscribec chan *Incoming       // and ends
	watchc       chan sessionWatchReq // a session watch starts
	unwatchc     chan *SessionWatch   // and ends
	// Events from the actor's own goroutines.
	dialDonec  chan dialDone
	endedc     chan sessionEnded
	closedc    chan struct{} // a session closed (or gave up) during shutdown
	pubEndedc  chan publicationEnded
	shutting   chan struct{} // closed when Shutdown begins: requests are refused
	stopped    chan struct{} // closed when run returns
	lifetime   context.Context
	endLife    context.CancelFunc
	nextID     uint64 // session, dial and publication IDs (only run touches it)
	shutdownAt []chan struct{}

	// State, touched only by run.
	sessions map[peer.ID][]*Session // per peer, in arrival order
	byID     map[uint64]*Session
	pending  map[peer.ID]*dial
	pubs     map[string]*published
	pubByID  map[uint64]*published
	closing  int // sessions whose Close has not returned during shutdown
	// subscribers receive every accepted session registered while they
	// are here (Incoming).
	subscribers map[*Incoming]struct{}
	// watches are told of every session registered (WatchSessions).
	watches map[*SessionWatch]struct{}
	fwd     *forwarder // nil without Config.Forward (forward.go)

	// own holds the publications too, for the node's own subscribers
	// (Local); safe for concurrent use.
	own *broadcast.Origin

	// Connect flights by peer (peer.ID → *flight): Connect's callers, not
	// run, use them. An entry lives until its request is answered.
	flights sync.Map
}

type dial struct {
	id      uint64
	waiters []*waiter
	// compactAt is the length of waiters at which callers that gave up are
	// dropped: twice what was left the last time, so a burst of joins
	// costs amortized O(1) each and the list holds at most about twice the
	// callers still waiting.
	compactAt int
}

// connectBatch is how many connect requests wait in their channel, and how
// many run takes in a row: callers hand theirs over without waiting for
// run, which takes a burst without a full select per request.
const connectBatch = 64

// minCompact is the shortest waiter list that is scanned for callers that
// gave up.
const minCompact = 16

// New starts an actor.
func New(cfg Config) *Actor {
	cfg = cfg.withDefaults()
	a := &Actor{
		cfg:          cfg,
		log:          cfg.Logger,
		connectc:     make(chan connectReq, connectBatch),
		registerc:    make(chan registerReq),
		publishc:     make(chan publishReq),
		unpublishc:   make(chan unpublishReq),
		queryc:       make(chan queryReq),
		shutdownc:    make(chan shutdownReq),
		subscribec:   make(chan subscribeReq),
		unsubscribec: make(chan *Incoming),
		subscribers:  map[*Incoming]struct{}{},
		watchc:       make(chan sessionWatchReq),
		unwatchc:     make(chan *SessionWatch),
		watches:      map[*SessionWatch]struct{}{},
		dialDonec:    make(chan dialDone),
		endedc:       make(chan sessionEnded),
		closedc:      make(chan struct{}),
		pubEndedc:    make(chan publicationEnded),
		shutting:     make(chan struct{}),
		stopped:      make(chan struct{}),
		sessions:     map[peer.ID][]*Session{},
		byID:         map[uint64]*Session{},
		pending:      map[peer.ID]*dial{},
		pubs:         map[string]*published{},
		pubByID:      map[uint64]*published{},
		own:          broadcast.NewOrigin(cfg.HopID),
	}
	a.lifetime, a.endLife = context.WithCancel(context.Background())
	var fwdKick chan struct{}
	if cfg.Forward != nil {
		a.fwd = newForwarder(a, *cfg.Forward)
		fwdKick = a.fwd.kick
	}
	go a.run(fwdKick)
	return a
}

// run is the actor: the only goroutine that reads or writes its state.
func (a *Actor) run(fwdKick <-chan struct{}) {
	defer close(a.stopped)
	for {
		select {
		case r := <-a.connectc:
			a.connect(r)
			// A burst of connects (many callers asking for one peer at
			// once) is taken without a full select per request.
			for range connectBatch {
				select {
				case r := <-a.connectc:
					a.connect(r)
					continue
				default:
				}
				break
			}
		case r := <-a.registerc:
			// A caller that gave up before this point closes conn itself.
			if r.w.take() {
				s, err := a.register(r.conn, r.opts)
				res := sessionResult{s: s, err: err}
				if err == nil && !r.opts.Dialed {
					res.subs = a.subscriberList() // the caller announces s to them
				}
				r.w.reply <- res
			}
		case r := <-a.publishc:
			if r.cl.take() { // else the caller gave up: publish nothing
				p, err := a.publish(r.name, r.b)
				r.reply <- publishResult{p, err}
			}
		case r := <-a.unpublishc:
			a.unpublish(r.id)
			close(r.reply)
		case r := <-a.queryc:
			r.reply <- a.snapshot()
		case r := <-a.shutdownc:
			a.shutdown(r)
		case r := <-a.subscribec:
			a.subscribers[r.in] = struct{}{}
			r.reply <- a.liveAccepted()
		case in := <-a.unsubscribec:
			delete(a.subscribers, in)
		case r := <-a.watchc:
			a.watches[r.w] = struct{}{}
			r.reply <- a.snapshotSessions()
		case w := <-a.unwatchc:
			delete(a.watches, w)
		case e := <-a.dialDonec:
			a.dialFinished(e)
		case e := <-a.endedc:
			a.sessionEnded(e.id)
		case <-a.closedc:
			a.closing--
		case e := <-a.pubEndedc:
			a.unpublish(e.id)
		case <-fwdKick: // nil without forwarding
			if !a.isShutting() {
				a.fwd.drain()
			}
		}
		if a.isShutting() && a.closing == 0 && len(a.pending) == 0 {
			for _, c := range a.shutdownAt {
				close(c)
			}
			a.endLife()
			return
		}
	}
}

func (a *Actor) isShutting() bool {
	select {
	case <-a.shutting:
		return true
	default:
		return false
	}
}

func (a *Actor) id() uint64 {
	a.nextID++
	return a.nextID
}

// live returns the oldest session to p that is not closing: a connect must
// never hand out a session that is already going away (an upstream actor
// did; docs/interop.md#iroh-live), and when both ends dialed at once, both
// sessions stay and the oldest is preferred.
func (a *Actor) live(p peer.ID) *Session {
	for _, s := range a.sessions[p] {
		if s.live() {
			return s
		}
	}
	return nil
}

// liveCount is how many of p's sessions are not closing.
func (a *Actor) liveCount(p peer.ID) int {
	n := 0
	for _, s := range a.sessions[p] {
		if s.live() {
			n++
		}
	}
	return n
}

func (a *Actor) connect(r connectReq) {
	if a.isShutting() {
		r.w.answer(sessionResult{err: ErrShutdown})
		return
	}
	if s := a.live(r.addr.ID); s != nil {
		r.w.answer(sessionResult{s: s})
		return
	}
	if d := a.pending[r.addr.ID]; d != nil { // coalesce: one dial per peer
		// Forget callers that gave up, so a caller retrying with short
		// contexts cannot grow the list: it holds at most about twice the
		// live ones.
		if len(d.waiters) >= d.compactAt {
			d.waiters = slices.DeleteFunc(d.waiters, func(w *waiter) bool { return w.abandoned() })
			d.compactAt = 2*len(d.waiters) + minCompact
		}
		d.waiters = append(d.waiters, r.w)
		return
	}
	if len(a.pending) >= a.cfg.MaxPendingDials {
		r.w.answer(sessionResult{err: fmt.Errorf("%w (%d in flight)", ErrTooManyDials, len(a.pending))})
		return
	}
	d := &dial{id: a.id(), waiters: []*waiter{r.w}, compactAt: minCompact}
	a.pending[r.addr.ID] = d
	go a.runDial(d.id, r.addr)
}

// runDial dials on its own goroutine and always reports back, even if the
// dial function panics, so no waiter hangs (an upstream hazard; see
// docs/interop.md#iroh-live). If the actor does not keep the connection, this
// goroutine closes it: closing is network I/O, which never runs on run's
// goroutine.
func (a *Actor) runDial(id uint64, addr peer.AddrInfo) {
	ev := dialDone{id: id, peer: addr.ID, verdict: make(chan error, 1)}
	defer func() {
		if p := recover(); p != nil {
			ev.conn, ev.err = nil, fmt.Errorf("%w: %v", ErrDialPanic, p)
		}
		a.dialDonec <- ev // run waits for every dial before it returns
		if ev.conn != nil {
			if err := <-ev.verdict; err != nil { // run answers at once
				refuse(ev.conn, err)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(a.lifetime, a.cfg.DialTimeout)
	defer cancel()
	ev.conn, ev.err = a.cfg.Dial(ctx, addr)
	if ev.err != nil {
		// A failed dial has no connection, whatever it returned beside
		// the error (a typed nil, say): run answers no verdict for it.
		ev.conn = nil
	}
	if ev.err == nil && ev.conn.RemotePeer() != addr.ID {
		_ = ev.conn.CloseWithError(uint32(broadcast.CodeUnauthorized), "unexpected peer")
		ev.conn, ev.err = nil, fmt.Errorf("moq: dialed %s but reached %s", addr.ID, ev.conn.RemotePeer())
	}
}

func (a *Actor) dialFinished(e dialDone) {
	d := a.pending[e.peer]
	if d == nil || d.id != e.id {
		// Not ours any more (cannot happen with one dial per peer, but a
		// finished dial must never answer someone else's waiters).
		if e.conn != nil {
			e.verdict <- errStaleDial
		}
		return
	}
	delete(a.pending, e.peer)
	res := sessionResult{err: e.err}
	if e.err == nil {
		s, err := a.register(e.conn, RegisterOptions{Dialed: true})
		e.verdict <- err    // the dial's goroutine closes a refused connection
		l := a.live(e.peer) // the oldest live one, which may be an incoming session
		switch {
		case l != nil && (err == nil || errors.Is(err, ErrTooManySessions)):
			res.s = l
		case err != nil:
			res.err = err
		default: // the peer closed it as it started (for instance, refused it)
			res.err = fmt.Errorf("moq: session closed as it started: %w", context.Cause(s.Context()))
		}
	}
	for _, w := range d.waiters { // every waiter gets the same outcome, failure included
		w.answer(res)
	}
}

// register starts a session on conn and offers it every publication. It
// never closes conn: a refused connection is closed by whoever asked, off
// the actor's goroutine.
func (a *Actor) register(conn Conn, opts RegisterOptions) (*Session, error) {
	dialed := opts.Dialed
	if a.isShutting() {
		return nil, ErrShutdown
	}
	// Anonymous sessions (empty peer ID) are bounded by whoever accepts
	// them (a server.Server), not per peer: they share one key.
	if p := conn.RemotePeer(); p != "" {
		if n := a.liveCount(p); n >= a.cfg.MaxSessionsPerPeer {
			return nil, fmt.Errorf("%w: %s already has %d", ErrTooManySessions, p, n)
		}
	}
	origin := broadcast.NewOrigin(a.cfg.HopID)
	cfg := a.cfg.Session
	cfg.Publish, cfg.HopID = origin, a.cfg.HopID
	cfg.Logger = a.log.With("peer", conn.RemotePeer().String())
	cfg.Client = opts.Client || dialed // the side that opened the connection (metrics label it outbound)
	cfg.PeerSetup = opts.PeerSetup
	s := &Session{id: a.id(), peer: conn.RemotePeer(), dialed: dialed, scope: opts.Scope, created: time.Now(), origin: origin, cost: opts.Cost}
	if s.cost <= 0 {
		s.cost = DefaultLinkCost
	}
	if a.fwd != nil {
		userFill := cfg.FillPublish
		cfg.FillPublish = func(ctx context.Context, prefix string) {
			if userFill != nil {
				userFill(ctx, prefix)
			}
			a.fwd.fill(ctx, s, prefix)
		}
	}
	// The session tells run when it ends: its own end hook calls this, so
	// an idle session costs no hook (nor goroutine) of the actor's.
	userEnd := cfg.OnEnd
	cfg.OnEnd = func() {
		if userEnd != nil {
			userEnd()
		}
		select {
		case a.endedc <- sessionEnded{id: s.id}:
		case <-a.stopped:
		}
	}
	if userGoaway := cfg.OnGoaway; userGoaway != nil {
		cfg.OnGoaway = func(ss *session.Session, uri string) { userGoaway(ss, uri); leave(ss) }
	} else {
		cfg.OnGoaway = func(ss *session.Session, _ string) { leave(ss) }
	}
	// Offer first, start serving after: a peer that subscribes the moment
	// the session is up, without waiting for an announcement (gomoqt does),
	// must find every publication already there.
	for _, p := range a.pubs {
		a.offer(p, s)
	}
	ss, err := session.New(conn, cfg)
	if err != nil {
		for _, p := range a.pubs {
			if stop := p.stops[s.id]; stop != nil {
				stop()
				delete(p.stops, s.id)
			}
		}
		origin.Close()
		return nil, err
	}
	s.Session = ss
	a.sessions[s.peer] = append(a.sessions[s.peer], s)
	a.byID[s.id] = s
	if a.fwd != nil {
		a.fwd.added(s)
	}
	for w := range a.watches {
		w.note(s)
	}
	// An incoming session from a peer we are dialing answers those waiters now.
	if d := a.pending[s.peer]; d != nil && !dialed {
		if l := a.live(s.peer); l != nil {
			for _, w := range d.waiters {
				w.answer(sessionResult{s: l})
			}
			d.waiters = nil
		}
	}
	return s, nil
}

// sessionEnded forgets a session by its ID, never a newer one of the same peer.
func (a *Actor) sessionEnded(id uint64) {
	s := a.byID[id]
	if s == nil {
		return
	}
	delete(a.byID, id)
	list := slices.DeleteFunc(a.sessions[s.peer], func(x *Session) bool { return x.id == id })
	if len(list) == 0 {
		delete(a.sessions, s.peer)
	} else {
		a.sessions[s.peer] = list
	}
	for _, p := range a.pubs {
		// stop also drops the hook the offer left on the broadcast: without
		// it a long-lived publication keeps every ended session's origin.
		if stop := p.stops[id]; stop != nil {
			stop()
		}
		delete(p.stops, id)
	}
	if a.fwd != nil {
		a.fwd.removed(s)
	}
	s.origin.Close()
}

func (a *Actor) publish(name string, b *broadcast.Consumer) (*Publication, error) {
	name = broadcast.CleanPath(name)
	switch {
	case a.isShutting():
		return nil, ErrShutdown
	case name == "":
		return nil, broadcast.ErrInvalidPath
	case a.pubs[name] != nil && !a.pubs[name].ended():
		return nil, fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	if old := a.pubs[name]; old != nil {
		// Its broadcast ended, and the name is free: the watch's report of
		// the end may still be on its way, and finds the publication gone.
		a.unpublish(old.pub.id)
	}
	pub := &Publication{a: a, id: a.id(), name: name, b: b}
	p := &published{pub: pub, stops: map[uint64]func(){}}
	a.pubs[name], a.pubByID[pub.id] = p, p
	if stop, err := a.own.Publish(name, b); err == nil {
		p.unown = stop
	}
	if a.fwd != nil {
		a.fwd.published(name)
	}
	for _, s := range a.byID {
		a.offer(p, s)
	}
	// A broadcast that ends is unpublished and its name freed (an upstream
	// actor kept such broadcasts published; docs/interop.md#iroh-live).
	ctx, cancel := context.WithCancel(a.lifetime)
	p.watch = cancel
	go func() {
		select {
		case <-b.Done():
		case <-ctx.Done():
			return
		}
		select {
		case a.pubEndedc <- publicationEnded{id: pub.id}:
		case <-a.stopped:
		}
	}()
	return pub, nil
}

func (a *Actor) offer(p *published, s *Session) {
	name, ok := broadcast.StripPrefix(p.pub.name, s.scope)
	if !ok || name == "" {
		return // outside the session's scope
	}
	stop, err := s.origin.Publish(name, p.pub.b)
	if err != nil {
		a.log.Debug("not offering broadcast", "name", p.pub.name, "peer", s.peer, "err", err)
		return
	}
	p.stops[s.id] = stop
}

// unpublish withdraws a publication by ID: an old publication's end can never
// remove a newer one at the same name (docs/interop.md#iroh-live).
func (a *Actor) unpublish(id uint64) {
	p := a.pubByID[id]
	if p == nil {
		return
	}
	delete(a.pubByID, id)
	delete(a.pubs, p.pub.name)
	p.watch()
	if p.unown != nil {
		p.unown()
	}
	for _, stop := range p.stops {
		stop()
	}
	if a.fwd != nil && !a.isShutting() {
		a.fwd.unpublished(p.pub.name)
	}
}

func (a *Actor) snapshot() snapshot {
	var snap snapshot
	snap.sessions = a.snapshotSessions()
	for name := range a.pubs {
		snap.published = append(snap.published, name)
	}
	slices.Sort(snap.published)
	snap.pending = len(a.pending)
	snap.subscribers = len(a.subscribers)
	if a.fwd != nil {
		snap.forward = a.fwd.snapshot()
	}
	for _, d := range a.pending {
		snap.held += len(d.waiters)
		for _, w := range d.waiters {
			if !w.abandoned() {
				snap.waiters++
			}
		}
	}
	return snap
}

// snapshotSessions lists the live sessions, oldest first.
func (a *Actor) snapshotSessions() []*Session {
	var list []*Session
	for _, l := range a.sessions {
		for _, s := range l {
			if s.live() {
				list = append(list, s)
			}
		}
	}
	slices.SortFunc(list, func(x, y *Session) int { return int(x.id) - int(y.id) })
	return list
}

// shutdown refuses new work, fails pending connects and closes every session.
// The actor stops once they have all closed (or the grace ran out) and every
// dial has reported back.
func (a *Actor) shutdown(r shutdownReq) {
	a.shutdownAt = append(a.shutdownAt, r.reply)
	if a.isShutting() {
		return
	}
	close(a.shutting)
	for _, d := range a.pending {
		for _, w := range d.waiters {
			w.answer(sessionResult{err: ErrShutdown})
		}
		d.waiters = nil
	}
	for id := range a.pubByID {
		a.unpublish(id)
	}
	if a.fwd != nil {
		a.fwd.stop()
	}
	a.closing = len(a.byID)
	grace := a.cfg.ShutdownGrace
	for _, s := range a.byID {
		go func() {
			done := make(chan struct{})
			go func() {
				_ = s.Close(broadcast.CodeCancel, "shutdown")
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(grace):
				a.log.Warn("session did not close within the shutdown grace", "peer", s.peer)
			}
			a.closedc <- struct{}{} // run waits for every one of these
		}()
	}
	a.endLife() // cancels dials in flight
}
