package moq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
)

// Defaults of WithHolePunchWait and WithRelayedGrace.
const (
	DefaultHolePunchWait = 5 * time.Second
	DefaultRelayedGrace  = 10 * time.Second
)

// WithHolePunchWait bounds how long a Connect that reached the peer only
// through a circuit relay waits for DCUtR hole punching to open a direct
// path before the session starts on the circuit (default 5 s; 0 does not
// wait). It applies only to hosts that run hole punching
// (HostConfig.NAT.HolePunching). A session that starts relayed still moves
// to the direct path when one appears later.
func WithHolePunchWait(d time.Duration) Option { return func(o *options) { o.punchWait = &d } }

// WithRelayedGrace sets how long a relayed session this node dialed stays
// open after a session on a direct path to the same peer started (default
// 10 s): long enough for both sides to move their subscriptions over.
func WithRelayedGrace(d time.Duration) Option { return func(o *options) { o.relayedGrace = d } }

// PathFallback returns a session with peer p, on another path, for a
// subscription to the broadcast name whose relayed session failed before a
// direct path appeared: typically because the relay cut a limited circuit
// after its data or time limit and hole punching could not open a direct
// path (symmetric NATs). Examples: a session through a relay that allows
// unlimited circuits (RelayService.Unlimited), or one to a node that
// forwards the broadcast at the MoQ level. Return an error when there is
// none; the subscription then ends with the relayed session's error.
type PathFallback func(ctx context.Context, p peer.ID, name string) (*Session, error)

// WithPathFallback sets what a subscription made on a relayed session
// does when that session fails before moving to a direct path: it
// continues on the session f returns, from the groups the failure left
// unfinished (groups sent meanwhile may be lost on a live track; a
// back-pressured one with Start loses none). Without it the subscription
// ends with the failure: never silently, since its reads return the error
// (wrapped in ErrLimitedCircuit when the session ran on a limited circuit).
func WithPathFallback(f PathFallback) Option { return func(o *options) { o.fallback = f } }

// movingSub is a subscription made on a relayed session: the application
// reads a track of its own, which groups from the relayed session fill
// until a session on a direct path to the same peer delivers them. Make
// before break: the direct subscription starts while the relayed one still
// runs; each group sequence is copied from whichever source brings it
// first, and the relayed one stops only once it has brought the groups
// older than the direct one's first.
type movingSub struct {
	m     *Moq
	peer  peer.ID
	name  string
	track string
	opts  SubscribeOptions
	// limited: the relayed session runs on a limited circuit, whose cut
	// ends the track with ErrLimitedCircuit when nothing took over.
	limited bool
	out     *broadcast.TrackProducer
	ctx     context.Context // ends when the application closed its consumer
	cancel  context.CancelFunc

	mu        sync.Mutex
	claimed   map[uint64]int                      // group sequence → source that copies it
	whole     map[uint64]bool                     // claimed groups copied to their end
	order     []uint64                            // claimed sequences, oldest claim first
	partial   map[uint64]*broadcast.GroupProducer // groups a failed source left unfinished
	sources   int                                 // sources started
	live      map[int]*broadcast.TrackConsumer
	primary   map[int]bool // sources on the direct (or fallback) path
	moved     bool         // a direct source delivered its first group
	switchSeq uint64       // the sequence of that group
	started   bool         // a group came from some source
	firstSeq  uint64       // the first group's sequence
	moving    bool         // a direct subscription is being made
	stopped   bool         // the subscription ended: no more goroutines
	wg        sync.WaitGroup
}

// maxClaims bounds the group sequences a moving subscription remembers
// (about 40 bytes each, so 160 KiB at most); the oldest claims are
// forgotten: a source that brings a group that old again (a peer replaying
// sequences) gets it copied again, which the application's track refuses
// as a duplicate if it still holds it.
const maxClaims = 4096

// subscribeMoving subscribes on the relayed session s and returns the
// application's consumer of a track that survives the move to a direct
// session.
func (m *Moq) subscribeMoving(ctx context.Context, s *Session, name, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, error) {
	src, err := s.s.Subscribe(ctx, name, track, opts)
	if err != nil {
		return nil, err
	}
	path := s.Path()
	ms := &movingSub{
		m: m, peer: s.RemotePeer(), name: name, track: track, opts: opts, limited: path.Limited,
		out:     broadcast.NewTrack(src.Info(), broadcast.Limits{Backpressure: opts.Backpressure}),
		claimed: map[uint64]int{}, whole: map[uint64]bool{}, partial: map[uint64]*broadcast.GroupProducer{}, live: map[int]*broadcast.TrackConsumer{},
	}
	ms.ctx, ms.cancel = context.WithCancel(m.ctx)
	app := ms.out.Consume()
	unused := ms.out.Unused()
	// The watcher joins m.wg under m.mu, so never after Shutdown waits.
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		ms.cancel()
		app.Close()
		src.Close()
		return nil, ErrShutdown
	}
	m.addMoving(ms)
	m.wg.Go(func() {
		select {
		case <-unused:
		case <-ms.ctx.Done():
		}
		ms.cancel()
		ms.mu.Lock()
		ms.stopped = true // no goroutine joins ms.wg after this
		ms.mu.Unlock()
		ms.wg.Wait()
		m.removeMoving(ms)
	})
	ms.start(src, false)
	m.mu.Unlock()
	if path.Limited && m.fallback == nil {
		m.log.Warn("subscription on a limited circuit: its relay cuts it after its data or time limit unless a direct path appears first (see WithPathFallback, or a relay with unlimited circuits)",
			"peer", ms.peer, "broadcast", name, "path", path.String())
	}
	// A direct session may already exist (made while this subscribed).
	if d := m.directSession(ms.peer); d != nil {
		ms.moveTo(d)
	}
	return app, nil
}

// start copies groups from src into the application's track.
func (ms *movingSub) start(src *broadcast.TrackConsumer, direct bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.stopped {
		src.Close()
		return
	}
	id := ms.sources
	ms.sources++
	ms.live[id] = src
	if direct {
		if ms.primary == nil {
			ms.primary = map[int]bool{}
		}
		ms.primary[id] = true
	}
	ms.wg.Go(func() { ms.pump(id, src, direct) })
}

// relayedLive reports whether a relayed source still runs (mu held).
func (ms *movingSub) relayedLive() bool {
	for id := range ms.live {
		if !ms.primary[id] {
			return true
		}
	}
	return false
}

// goLocked runs f on a goroutine of ms unless ms has stopped (mu held).
func (ms *movingSub) goLocked(f func()) bool {
	if ms.stopped {
		return false
	}
	ms.wg.Go(f)
	return true
}

// pump copies src's groups that no other source claimed. A relayed source
// stops once the direct one has taken over and the groups before its
// first came; the direct one runs until the track ends. A group whose source failed half-way is finished by the
// next source that brings it (its frames after those already copied).
func (ms *movingSub) pump(id int, src *broadcast.TrackConsumer, direct bool) {
	defer func() {
		src.Close()
		ms.mu.Lock()
		delete(ms.live, id)
		ms.mu.Unlock()
	}()
	for {
		g, err := src.RecvGroup(ms.ctx)
		if err != nil {
			ms.ended(id, direct, err)
			return
		}
		seq := g.Sequence()
		ms.mu.Lock()
		_, taken := ms.claimed[seq]
		gp := ms.partial[seq]
		if !taken {
			if _, again := ms.partial[seq]; !again {
				ms.order = append(ms.order, seq)
			}
			ms.claimed[seq] = id
			delete(ms.partial, seq)
			if len(ms.order) > maxClaims {
				ms.forgetOldest()
			}
		}
		first := direct && !ms.moved
		if first {
			ms.moved, ms.switchSeq = true, seq
		}
		if !ms.started {
			ms.started, ms.firstSeq = true, seq
		}
		// A relayed source keeps bringing the groups older than the direct
		// source's first (they are on their way here, or still to be sent
		// on this path only: groups are streams of their own and arrive
		// in any order), and stops once none of them is missing.
		last := !direct && ms.moved && ms.caughtUp()
		ms.mu.Unlock()
		if first {
			ms.m.log.Info("subscription moved to a direct path", "peer", ms.peer, "broadcast", ms.name, "track", ms.track, "group", seq)
		}
		if !taken && !ms.copyGroup(g, gp) {
			ms.mu.Lock()
			delete(ms.claimed, seq) // another source may finish it
			ms.mu.Unlock()
		}
		if last {
			return
		}
	}
}

// maxCatchUp bounds how far below the direct source's first group a
// relayed source waits for missing groups: as many as a publisher keeps in
// flight (session.Limits.MaxGroupsInFlight's default).
const maxCatchUp = 64

// caughtUp reports whether every group just before the direct source's
// first is claimed (mu held). One that never comes (dropped by the
// publisher) keeps the relayed source running until the relayed session
// closes.
func (ms *movingSub) caughtUp() bool {
	if ms.switchSeq <= ms.firstSeq {
		return true
	}
	lo := ms.switchSeq - min(ms.switchSeq-ms.firstSeq, maxCatchUp)
	for s := lo; s < ms.switchSeq; s++ {
		if _, ok := ms.claimed[s]; !ok {
			return false
		}
	}
	return true
}

// forgetOldest forgets the oldest claim (mu held): a peer choosing group
// sequences cannot grow the map, and a group that old is not copied again.
func (ms *movingSub) forgetOldest() {
	delete(ms.claimed, ms.order[0])
	delete(ms.whole, ms.order[0])
	ms.order = ms.order[1:]
}

// copyGroup writes g into the application's track as it arrives: into gp,
// after the frames it has, when a failed source left it unfinished. It
// reports false when g failed before its end; the group is then kept
// unfinished for another source (or aborted with the track).
func (ms *movingSub) copyGroup(g *broadcast.GroupConsumer, gp *broadcast.GroupProducer) bool {
	if gp == nil {
		if ms.opts.Backpressure {
			if err := ms.out.WaitRoom(ms.ctx); err != nil {
				return true
			}
		}
		var err error
		if gp, err = ms.out.CreateGroup(g.Sequence()); err != nil {
			return true // a duplicate, or the track ended
		}
	}
	// Frames copied from a source that failed are skipped.
	_, rerr, werr := broadcast.CopyGroup(ms.ctx, gp, g, gp.FrameCount())
	switch {
	case werr != nil: // the track ended
		return true
	case rerr == nil:
		_ = gp.Finish()
		ms.mu.Lock()
		if ms.whole != nil {
			ms.whole[g.Sequence()] = true
		}
		ms.mu.Unlock()
		return true
	case ms.ctx.Err() != nil:
		gp.Abort(rerr)
		return true
	}
	ms.mu.Lock()
	ms.partial[g.Sequence()] = gp
	ms.mu.Unlock()
	return false
}

// ended handles a source's end: the direct source's end is the track's; a
// relayed source's end matters only while nothing replaced it.
func (ms *movingSub) ended(id int, direct bool, err error) {
	if ms.ctx.Err() != nil {
		return
	}
	ms.mu.Lock()
	replaced := !direct && (ms.moved || ms.moving)
	ms.mu.Unlock()
	if replaced {
		return
	}
	if !direct {
		err = ms.explain(err)
	}
	if !errors.Is(err, io.EOF) && ms.m.fallback != nil && ms.tryFallback(err) {
		return
	}
	ms.finish(err)
}

// explain wraps the relayed source's failure err with ErrLimitedCircuit
// when that source ran on a limited circuit: what the application sees
// says why its track ended.
func (ms *movingSub) explain(err error) error {
	if !ms.limited || errors.Is(err, io.EOF) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrLimitedCircuit, err)
}

// finish ends the application's track with the sources' end: EOF, or
// err (which also ends any group a failed source left unfinished).
func (ms *movingSub) finish(err error) {
	ms.mu.Lock()
	partial := ms.partial
	ms.partial = map[uint64]*broadcast.GroupProducer{}
	ms.mu.Unlock()
	if errors.Is(err, io.EOF) {
		_ = ms.out.Finish()
	} else {
		for _, gp := range partial {
			gp.Abort(err)
		}
		ms.out.Abort(err)
	}
	ms.cancel()
}

// tryFallback asks the node's PathFallback for another session after the
// relayed source failed with cause (a limited circuit cut by its relay,
// say) and nothing replaced it: a subscription there continues the track,
// finishing the groups the failure left unfinished. It reports whether
// the fallback is under way.
func (ms *movingSub) tryFallback(cause error) bool {
	ms.mu.Lock()
	if ms.moving || ms.moved {
		ms.mu.Unlock()
		return false
	}
	ms.moving = true
	defer ms.mu.Unlock()
	ms.m.log.Warn("the relayed path failed; trying the fallback", "peer", ms.peer, "broadcast", ms.name, "err", cause)
	return ms.goLocked(func() {
		ctx, cancel := context.WithTimeout(ms.ctx, ms.m.dialTimeout)
		defer cancel()
		s, err := ms.m.fallback(ctx, ms.peer, ms.name)
		var src *broadcast.TrackConsumer
		if err == nil {
			if err = s.waitAnnounced(ctx, ms.name); err == nil {
				src, err = s.s.Subscribe(ctx, ms.name, ms.track, ms.resumeOptions())
			}
		}
		if err != nil {
			ms.finish(fmt.Errorf("%w (fallback: %w)", cause, err))
			return
		}
		ms.m.log.Info("subscription continues on the fallback path", "peer", ms.peer, "broadcast", ms.name, "path", s.Path().String())
		ms.start(src, true)
	})
}

// resumeOptions are the subscription's options for a fallback source:
// without a Start of the application's, it starts at the oldest group not
// yet received whole (groups race each other on their own streams, so
// some may still have been on their way, and the failure may have left one
// half-done), so that a publisher (or a forwarding relay) that still holds
// them sends the groups the move would otherwise skip; those already
// copied are not copied again.
func (ms *movingSub) resumeOptions() SubscribeOptions {
	opts := ms.opts
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if opts.Start != nil {
		return opts
	}
	if !ms.started {
		// Nothing came: where the subscription started is unknown. A
		// back-pressured (lossless) one asks for everything the publisher
		// still holds; a live one starts at the latest group, as it did.
		if opts.Backpressure {
			opts.Start = new(uint64)
		}
		return opts
	}
	// Groups older than the first to arrive may have been on their way
	// too (the subscription started at the publisher's latest group, which
	// may have been overtaken): as many as a publisher keeps in flight.
	resume := ms.firstSeq - min(ms.firstSeq, maxCatchUp)
	if len(ms.order) >= maxClaims { // older claims were forgotten
		resume = slices.Min(ms.order)
	}
	for ms.whole[resume] {
		resume++
	}
	// A claim whose copy never got to the group's end (its source failed
	// before the group's first frame, say) is the fallback's to bring.
	for seq, id := range ms.claimed {
		if _, half := ms.partial[seq]; !ms.whole[seq] && !half && !ms.primary[id] {
			delete(ms.claimed, seq)
		}
	}
	opts.Start = &resume
	return opts
}

// moveTo subscribes on the direct session d and lets it take over.
func (ms *movingSub) moveTo(d *Session) {
	ms.mu.Lock()
	if ms.moving || ms.moved || ms.ctx.Err() != nil {
		ms.mu.Unlock()
		return
	}
	ms.moving = true
	defer ms.mu.Unlock()
	ms.goLocked(func() {
		ctx, cancel := context.WithTimeout(ms.ctx, ms.m.dialTimeout)
		defer cancel()
		src, err := d.SubscribeWith(ctx, ms.name, ms.track, ms.opts)
		if err != nil {
			ms.m.log.Debug("moving a subscription to the direct path failed; it stays relayed", "peer", ms.peer, "broadcast", ms.name, "err", err)
			ms.mu.Lock()
			ms.moving = false
			orphan := len(ms.live) == 0 // the relayed source ended meanwhile
			ms.mu.Unlock()
			if orphan {
				ms.finish(err)
			}
			return
		}
		ms.start(src, true)
	})
}

// addMoving and removeMoving keep the node's moving subscriptions by peer.
func (m *Moq) addMoving(ms *movingSub) {
	m.movingMu.Lock()
	defer m.movingMu.Unlock()
	if m.moving == nil {
		m.moving = map[peer.ID]map[*movingSub]struct{}{}
	}
	if m.moving[ms.peer] == nil {
		m.moving[ms.peer] = map[*movingSub]struct{}{}
	}
	m.moving[ms.peer][ms] = struct{}{}
}

func (m *Moq) removeMoving(ms *movingSub) {
	m.movingMu.Lock()
	defer m.movingMu.Unlock()
	delete(m.moving[ms.peer], ms)
	if len(m.moving[ms.peer]) == 0 {
		delete(m.moving, ms.peer)
	}
}

// sessionAdded is told of every libp2p session registered: one on a direct
// path takes over the peer's moving subscriptions.
func (m *Moq) sessionAdded(s *actor.Session) {
	ses := &Session{s: s, m: m}
	if k := ses.Path().Kind; k != PathDirect && k != PathHolePunched {
		return
	}
	m.movingMu.Lock()
	var list []*movingSub
	for ms := range m.moving[s.RemotePeer()] {
		list = append(list, ms)
	}
	m.movingMu.Unlock()
	for _, ms := range list {
		ms.moveTo(ses)
	}
}

// directSession returns a live session with p on a direct path, or nil.
func (m *Moq) directSession(p peer.ID) *Session {
	list, err := m.a.Sessions(m.ctx)
	if err != nil {
		return nil
	}
	for _, s := range list {
		if s.RemotePeer() != p || s.Context().Err() != nil {
			continue
		}
		ses := &Session{s: s, m: m}
		if k := ses.Path().Kind; k == PathDirect || k == PathHolePunched {
			return ses
		}
	}
	return nil
}

// upgradeLater moves a relayed session this node dialed onto a direct path
// to p, now that the host has a direct connection: a raw QUIC session on
// the host's socket (so through the NAT mapping hole punching opened),
// whose arrival moves the subscriptions over on both sides. The relayed
// session closes after the relayed grace.
func (m *Moq) upgradeLater(p peer.ID) {
	if m.quic == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	m.wg.Go(func() { m.upgrade(p) })
}

func (m *Moq) upgrade(p peer.ID) {
	list, err := m.a.Sessions(m.ctx)
	if err != nil {
		return
	}
	var relayed []*Session
	for _, s := range list {
		if s.RemotePeer() != p || s.Context().Err() != nil {
			continue
		}
		ses := &Session{s: s, m: m}
		switch ses.Path().Kind {
		case PathDirect, PathHolePunched:
			return // already there
		case PathRelayed:
			if s.Dialed() { // the side that dialed moves it: one direct session, not two
				relayed = append(relayed, ses)
			}
		}
	}
	if len(relayed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.dialTimeout)
	defer cancel()
	var conn actor.Conn
	for _, c := range m.h.Network().ConnsToPeer(p) {
		if !directQUIC(c) {
			continue
		}
		qc, err := m.quic.Dial(ctx, p, c.RemoteMultiaddr())
		if err == nil {
			conn = qc
			break
		}
		m.log.Debug("raw QUIC on the direct path failed", "peer", p, "err", err)
	}
	if conn == nil {
		return
	}
	s, err := m.a.Register(ctx, conn, true)
	if err != nil {
		return
	}
	m.log.Info("session on a direct path", "peer", p, "path", (&Session{s: s, m: m}).Path().String())
	m.sessionAdded(s)
	// Make before break, in both directions: the peer moves its
	// subscriptions when the direct session reaches it; ours still
	// reading relayed groups older than their direct source's first hold
	// the relayed session open up to one more grace.
	grace := time.NewTimer(m.relayedGrace)
	defer grace.Stop()
	select {
	case <-grace.C:
	case <-m.ctx.Done():
		return
	}
	if !m.awaitMoved(p) {
		return
	}
	for _, r := range relayed {
		_ = r.Close(broadcast.CodeCancel, "moved to a direct path")
	}
}

// awaitMoved waits up to the relayed grace until no subscription of ours
// with p reads from a relayed source; false if the node shuts down.
func (m *Moq) awaitMoved(p peer.ID) bool {
	tick := time.NewTicker(m.relayedGrace / 20)
	defer tick.Stop()
	limit := time.NewTimer(m.relayedGrace)
	defer limit.Stop()
	for m.stillRelayed(p) {
		select {
		case <-tick.C:
		case <-limit.C:
			m.log.Debug("closing the relayed session with subscriptions still moving", "peer", p)
			return true
		case <-m.ctx.Done():
			return false
		}
	}
	return true
}

// stillRelayed reports whether a subscription of ours with p still reads
// from a relayed source while moving (or about to move) to a direct one.
func (m *Moq) stillRelayed(p peer.ID) bool {
	m.movingMu.Lock()
	list := make([]*movingSub, 0, len(m.moving[p]))
	for ms := range m.moving[p] {
		list = append(list, ms)
	}
	m.movingMu.Unlock()
	for _, ms := range list {
		ms.mu.Lock()
		busy := !ms.stopped && (ms.moving || ms.moved) && ms.relayedLive()
		ms.mu.Unlock()
		if busy {
			return true
		}
	}
	return false
}
