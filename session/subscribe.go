// Our subscriptions: a SUBSCRIBE stream each, shared by the local consumers
// of one track unless they ask for a range or a pace, and the end of a track
// the publisher finished.

package session

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// subscription is one wire subscription of ours: the SUBSCRIBE stream and the
// track its groups are written into.
type subscription struct {
	id     uint64
	path   string
	track  *broadcast.TrackProducer
	opts   SubscribeOptions
	shared bool
	stats  *subStats // its counters (stats.go)
	// wireScale is the timescale of the publisher's TRACK_INFO (lite-05;
	// 0 before it, and on other versions): frames arrive in it.
	wireScale atomic.Uint64

	ready  chan struct{} // closed once SUBSCRIBE_OK arrived or the subscription failed
	err    error         // why it failed; read after ready is closed
	ctx    context.Context
	cancel context.CancelCauseFunc
	// room is held by the one group stream that waits for room in the track
	// and then creates its group (Backpressure): one room, one group.
	room chan struct{}

	mu        sync.Mutex
	receiving int // group streams being read
	// lastGroup is when a group stream last arrived or ended, noted only
	// once the publisher's FIN is in (finAt set): finishAfterGroups needs
	// no earlier time, and a clock read per group is not free.
	lastGroup time.Time
	finAt     time.Time // when finishAfterGroups started
	idle      chan struct{}
	// span: the groups owed, from lite-05's START, DROP and END;
	// wake is closed when it changes, if finishAfterGroups waits.
	span  groupSpan
	wake  chan struct{}
	ahead int           // groups read ahead, waiting for room (Backpressure)
	turn  chan struct{} // closed when ahead or streaming goes down, if someone waits
	// streaming counts groups put into the track as they arrive and still
	// arriving (Backpressure): while one is, no group stream waits unread.
	streaming int
	// endSeen is closed when lite-05's END arrived: the track ends once
	// the groups before it are in, FIN or not.
	endSeen chan struct{}
}

// Subscribe subscribes to a track of the peer's broadcast at path and returns
// a consumer starting at the latest group (or opts.Start). It waits until the
// peer accepts the subscription, so that groups the publisher writes after
// it returned are delivered, and returns the peer's refusal (for instance
// an error matching broadcast.ErrNotFound) or ctx's error. On lite-05,
// which has no SUBSCRIBE_OK, that is the publisher's first response when
// its SETUP promised one at once (moqp2p's does); a peer that makes no
// such promise (moq-net, @moq/net) is taken at its TRACK_INFO, and groups
// it writes before our SUBSCRIBE arrives are not delivered. Local subscribers
// of one track share one wire subscription unless opts sets Start or End.
// The broadcast need not have been announced. Close the consumer when done:
// the wire subscription ends with its last consumer.
func (s *Session) Subscribe(ctx context.Context, path, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, error) {
	if s.ctx.Err() != nil {
		return nil, ErrClosed
	}
	path = broadcast.CleanPath(path)
	info := broadcast.Track{Name: track, Priority: opts.Priority}
	if opts.Start != nil || opts.End != nil || opts.Backpressure { // a range, or a pace, is not shareable
		lim := s.lim.Model
		if lim.Backpressure = opts.Backpressure; lim.Backpressure {
			// Its cache is not evicted for the budget's sake: leave the
			// other half of the budget to the groups read ahead.
			if lim.CacheMaxBytes <= 0 {
				lim.CacheMaxBytes = broadcast.DefaultCacheMaxBytes
			}
			lim.CacheMaxBytes = min(lim.CacheMaxBytes, max(s.lim.MaxReceiveBytes/2, 1))
		}
		tp := broadcast.NewTrack(info, lim)
		tc := tp.Consume()
		return s.awaitReady(ctx, tc, s.startSubscription(path, tp, opts, false))
	}
	s.mu.Lock()
	if s.shared[trackKey{path, track}] != nil {
		s.mu.Unlock()
		return s.join(ctx, path, info)
	}
	remote := s.remoteLocked(path)
	tp := broadcast.NewTrack(info, s.lim.Model)
	if err := remote.InsertTrack(tp); err != nil {
		s.mu.Unlock()
		if !errors.Is(err, broadcast.ErrDuplicate) {
			// The peer's broadcast has ended (with the session, say): a
			// track of it would never get a group.
			return nil, err
		}
		// A consumer of Remote made the track on demand an instant ago; its
		// subscription registers itself momentarily. Join the track.
		return s.join(ctx, path, info)
	}
	tc := tp.Consume()
	sub := s.startSubscriptionLocked(path, tp, opts, true)
	s.mu.Unlock()
	return s.awaitReady(ctx, tc, sub)
}

// join adds a consumer to a shared track and waits for the subscription
// that owns the track it joined (looked up after joining, so a subscription
// that ended in between is never waited on).
func (s *Session) join(ctx context.Context, path string, info broadcast.Track) (*broadcast.TrackConsumer, error) {
	tc, err := s.remoteBroadcast(path).Consume().SubscribeTrack(info)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	sub := s.shared[trackKey{path, info.Name}]
	s.mu.Unlock()
	if sub == nil { // it ended already: the consumer reports how
		if s.ctx.Err() != nil { // with the session: nothing will ever arrive
			tc.Close()
			return nil, ErrClosed
		}
		return tc, nil
	}
	return s.awaitReady(ctx, tc, sub)
}

func (s *Session) awaitReady(ctx context.Context, tc *broadcast.TrackConsumer, sub *subscription) (*broadcast.TrackConsumer, error) {
	select {
	case <-sub.ready:
		if sub.err != nil {
			tc.Close()
			return nil, sub.err
		}
		return tc, nil
	case <-ctx.Done():
		tc.Close()
		return nil, ctx.Err()
	case <-s.ctx.Done():
		select {
		case <-sub.ready: // settled as the session ended: report that
			return s.awaitReady(ctx, tc, sub)
		default:
		}
		tc.Close()
		return nil, ErrClosed
	}
}

// remoteBroadcast returns the producer standing for the peer's broadcast at
// path, making it if needed. Its tracks are made on demand: the first local
// subscriber of a track starts a wire subscription.
func (s *Session) remoteBroadcast(path string) *broadcast.Producer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remoteLocked(path)
}

func (s *Session) remoteLocked(path string) *broadcast.Producer {
	if p, ok := s.remotes[path]; ok && p.Consume().Err() == nil {
		return p
	}
	return s.newRemoteLocked(path, nil)
}

func (s *Session) newRemoteLocked(path string, hops []uint64) *broadcast.Producer {
	p := broadcast.New(broadcast.Config{Hops: hops, Limits: s.lim.Model, OnTrack: func(tp *broadcast.TrackProducer) {
		// Pending until the peer accepts the subscription (or refuses it):
		// a relay forwarding the track answers its own subscriber then.
		tp.Hold()
		opts := SubscribeOptions{Priority: tp.Info().Priority}
		if start, ok := tp.AskedStart(); ok { // a relay asking for its subscribers' earliest group
			opts.Start = &start
		}
		s.startSubscription(path, tp, opts, true)
	}})
	if s.remotes == nil {
		s.remotes = map[string]*broadcast.Producer{}
	}
	s.remotes[path] = p
	return p
}

// startSubscription registers a wire subscription and starts it.
func (s *Session) startSubscription(path string, tp *broadcast.TrackProducer, opts SubscribeOptions, shared bool) *subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startSubscriptionLocked(path, tp, opts, shared)
}

func (s *Session) startSubscriptionLocked(path string, tp *broadcast.TrackProducer, opts SubscribeOptions, shared bool) *subscription {
	sub := &subscription{
		id:      s.nextSubID.Add(1) - 1, // moq-lite peers count from 0
		path:    path,
		track:   tp,
		opts:    opts,
		shared:  shared,
		ready:   make(chan struct{}),
		room:    make(chan struct{}, 1),
		endSeen: make(chan struct{}),
	}
	sub.stats = s.obs.track(false, sub.id, path, tp.Info().Name)
	var ctx context.Context
	ctx, sub.cancel = context.WithCancelCause(s.ctx)
	sub.ctx = ctx
	if s.subs == nil { // the session's first subscription
		s.subs = map[uint64]*subscription{}
	}
	s.subs[sub.id] = sub
	if shared {
		if s.shared == nil {
			s.shared = map[trackKey]*subscription{}
		}
		s.shared[trackKey{path, tp.Info().Name}] = sub
	}
	s.spawn(func() { s.runSubscription(ctx, sub) })
	return sub
}

func (s *Session) runSubscription(ctx context.Context, sub *subscription) {
	log := s.log.With("subscribe", sub.id, "broadcast", sub.path, "track", sub.track.Info().Name)
	var once sync.Once
	settle := func(err error) {
		once.Do(func() {
			sub.err = err
			if err == nil {
				sub.track.Confirm() // a relay waiting to answer its subscriber may now
			}
			close(sub.ready)
		})
	}
	forget := func() {
		s.obs.untrack(sub.stats)
		s.mu.Lock()
		delete(s.subs, sub.id)
		if key := (trackKey{sub.path, sub.track.Info().Name}); sub.shared && s.shared[key] == sub {
			delete(s.shared, key)
		}
		s.mu.Unlock()
	}
	// end aborts the track first (so nobody can join it any more), then
	// forgets the subscription, and only then tells waiters it failed: a
	// caller that retries at once starts a new subscription.
	end := func(err error) {
		sub.track.Abort(err)
		forget()
		settle(err)
		sub.cancel(err)
	}
	defer forget()

	if !s.awaitVersion(ctx) { // a compat SETUP is still under way
		end(remoteErr(context.Cause(ctx)))
		return
	}
	// Before lite-05 no START, DROP or END comes to read a span against:
	// keeping one would only cost a map entry per group out of order. Set
	// here, once the version is known (a subscription may start during a
	// compat SETUP), and before SUBSCRIBE, so before any group arrives.
	sub.mu.Lock()
	sub.span.lost = !s.version.HasSubscribeRange()
	sub.mu.Unlock()
	// Before SUBSCRIBE: its groups must find the loop running. On lite-05
	// the loop also reads the peer's SETUP, which peerStartsEagerly may need.
	s.acceptGroups()
	if s.version.HasFrameTimestamps() {
		// lite-05 has no SUBSCRIBE_OK: TRACK_INFO says the track exists
		// (moq-dev's subscribers ask for it first too); when the
		// subscription is settled is peerStartsEagerly's decision.
		info, err := s.trackInfo(ctx, sub.path, sub.track.Info().Name)
		if err != nil {
			end(err)
			return
		}
		sub.wireScale.Store(info.Timescale)
		if s.dgStarted.CompareAndSwap(false, true) {
			s.startDatagrams()
		}
	}
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		end(s.connErr(err))
		return
	}
	msg := wire.Subscribe{
		ID: sub.id, Broadcast: wirePath(sub.path), Track: sub.track.Info().Name,
		Priority: sub.opts.Priority, Ordered: sub.opts.Ordered, MaxLatency: sub.opts.MaxLatency,
	}
	if sub.opts.Start != nil {
		msg.Start = wire.GroupAt(*sub.opts.Start)
	}
	if sub.opts.End != nil {
		msg.End = wire.GroupAt(*sub.opts.End)
	}
	buf := wire.AppendStreamType(nil, wire.StreamSubscribe)
	if buf, err = wire.AppendMessage(buf, s.version, &msg); err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		end(s.connErr(err))
		return
	}

	// The reader settles the subscription on the peer's first reply and
	// reports how the stream ended.
	result := make(chan error, 1)
	go func() { result <- s.readResponses(st, sub, settle) }() // always joined below
	// lite-05: settled by the first response, if the peer promised one at
	// once; else now. Decided with SUBSCRIBE on its way: the peer's SETUP
	// is there by now, but for a peer that sent none.
	if s.version.HasSubscribeRange() && !s.peerStartsEagerly(ctx) {
		settle(nil)
	}

	select {
	case err := <-result:
		switch {
		case errors.Is(err, io.EOF): // the publisher finished the track
			settle(nil) // lite-05 without a response first: the track ends
			// Answer its FIN only once the groups in flight have landed, so
			// that our FIN tells the publisher we have everything.
			s.finishAfterGroups(ctx, sub)
			_ = st.Close()
		default:
			if ctx.Err() == nil {
				log.Debug("subscription ended by peer", "err", err)
			}
			reset(st, broadcast.CodeCancel)
			end(err)
		}
	case <-sub.endSeen: // lite-05 END: no group at or after it comes
		// The track ends once the groups before END are in (at once if
		// the responses account for all of them; else as after a FIN),
		// and the subscribe stream with the publisher's FIN, which it
		// may hold back until its groups have landed.
		s.finishAfterGroups(ctx, sub)
		if !errors.Is(context.Cause(ctx), io.EOF) { // aborted: the session or the broadcast ended
			reset(st, broadcast.CodeCancel)
			<-result
			return
		}
		t := time.NewTimer(finTimeout)
		defer t.Stop()
		select {
		case err := <-result:
			if errors.Is(err, io.EOF) {
				_ = st.Close()
				return
			}
			if s.ctx.Err() == nil {
				log.Debug("subscription ended by peer after END", "err", err)
			}
			reset(st, broadcast.CodeCancel)
		case <-t.C: // no FIN: a track that ended needs no stream
			reset(st, broadcast.CodeCancel)
			<-result
		case <-s.ctx.Done():
			reset(st, broadcast.CodeCancel)
			<-result
		}
	case <-sub.track.Unused(): // the last local consumer left: unsubscribe
		reset(st, broadcast.CodeCancel)
		end(broadcast.ErrCancelled)
		<-result
	case <-ctx.Done(): // the session ended, or the broadcast was unannounced
		reset(st, broadcast.CodeCancel)
		end(remoteErr(context.Cause(ctx)))
		<-result
	}
}

// readResponses reads SUBSCRIBE_OK (the first reply must be one; it settles
// the subscription), then anything else until the stream ends. lite-05 has
// no SUBSCRIBE_OK: its first response, whichever, settles a subscription
// not settled yet (see peerStartsEagerly). START, DROP and END say which
// groups sub is owed (groupSpan); END also has runSubscription end the
// track once they are in. It returns io.EOF for a clean finish; failures
// are settled by the caller.
func (s *Session) readResponses(st transport.Stream, sub *subscription, settle func(error)) error {
	r := getReader(st)
	defer putReader(r)
	first := !s.version.HasSubscribeRange()
	ended := false
	for {
		m, err := wire.ReadSubscribeResponse(r, s.version, s.lim.MaxMessageSize)
		if err != nil {
			switch {
			case isWireErr(err):
				err = &broadcast.Error{Code: codeOfWire(err), Reason: err.Error()}
			case errors.Is(err, io.EOF) && first:
				err = &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "subscribe stream ended before SUBSCRIBE_OK"}
			case !errors.Is(err, io.EOF):
				err = s.connErr(err)
			}
			return err
		}
		switch m := m.(type) {
		case *wire.SubscribeOK:
			first = false
		case *wire.SubscribeDrop:
			if first {
				return &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "SUBSCRIBE_DROP before SUBSCRIBE_OK"}
			}
			s.log.Debug("publisher dropped groups", "start", m.Start, "end", m.End, "code", m.Error)
			sub.respond(func(sp *groupSpan) { sp.dropped(m.Start, m.End) })
			sub.track.Drop(m.Start, m.End) // a fetch of one is answered at once
		case *wire.SubscribeStart:
			s.log.Debug("subscription starts", "group", m.Group)
			sub.respond(func(sp *groupSpan) { sp.started(m.Group) })
		case *wire.SubscribeEnd: // no group at or after m.Group; the FIN follows
			s.log.Debug("subscription ends", "before", m.Group)
			if !ended {
				ended = true
				sub.respond(func(sp *groupSpan) { sp.ended(m.Group) })
				close(sub.endSeen)
			}
		}
		settle(nil) // any response answers the subscribe (only the first counts)
	}
}

// finishAfterGroups ends the track once its group streams are done: on
// lite-05 as soon as END has come and every group before it arrived (or
// was dropped), none still being read; else as follows. The
// publisher FINs the subscribe stream after writing every group, but the group
// streams are separate (lite-03/04 have no "last group" message) and may
// still be on their way, so wait until none of this subscription's is being
// read, no accepted group stream is still unsorted, none has arrived for
// FinishGrace, and the accept loop has taken the streams that were waiting
// for it then (back-pressure, or a busy machine, can hold it longer than
// FinishGrace while streams of ours wait).
func (s *Session) finishAfterGroups(ctx context.Context, sub *subscription) {
	sub.mu.Lock()
	sub.finAt = time.Now() // from here on groups note their times
	finAt := sub.finAt
	sub.mu.Unlock()
	var caughtUp time.Time // the accept loop took every stream waiting after this last group
	unsortedUntil := finAt.Add(s.lim.FinishGrace)
	for {
		sub.mu.Lock()
		last := finAt
		if sub.lastGroup.After(last) {
			last = sub.lastGroup
		}
		busy, since := sub.receiving > 0, time.Since(last)
		if !busy && sub.span.covered() { // lite-05: END came and every group before it
			sub.mu.Unlock()
			_ = sub.track.Finish()
			sub.cancel(io.EOF)
			return
		}
		if sub.wake == nil {
			sub.wake = make(chan struct{})
		}
		wake := sub.wake // closed when START, DROP, END or a datagram group changes the span
		var idle chan struct{}
		// An unsorted stream may be one of ours: look again once one is
		// sorted, but not past FinishGrace (a stream whose header never
		// comes must not hold the end up). The count is read again after
		// taking the channel, so a stream sorted in between still wakes us.
		if left := time.Until(unsortedUntil); !busy && left > 0 && s.unsorted.Load() > 0 {
			sub.mu.Unlock()
			sorted := s.sorted.wait()
			if s.unsorted.Load() == 0 {
				continue
			}
			t := time.NewTimer(left)
			select {
			case <-sorted:
				t.Stop()
				continue
			case <-wake:
				t.Stop()
				continue
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				sub.track.Abort(remoteErr(context.Cause(ctx)))
				return
			}
		}
		if busy {
			if sub.idle == nil {
				sub.idle = make(chan struct{})
			}
			idle = sub.idle
		}
		sub.mu.Unlock()
		if busy {
			select {
			case <-idle:
				continue
			case <-ctx.Done():
				sub.track.Abort(remoteErr(context.Cause(ctx)))
				return
			}
		}
		if since >= s.lim.FinishGrace {
			// Group streams already here but not yet taken by the accept
			// loop (held by back-pressure, or not yet scheduled on a busy
			// machine) are counted nowhere: once after the last group, wait
			// until the loop has taken what was waiting, then look again.
			if !last.Equal(caughtUp) && s.uniBusy.Load() {
				if !s.awaitUniCaughtUp(ctx) {
					sub.track.Abort(remoteErr(context.Cause(ctx)))
					return
				}
				// What it took may be ours: its header gets FinishGrace.
				caughtUp, unsortedUntil = last, time.Now().Add(s.lim.FinishGrace)
				continue
			}
			_ = sub.track.Finish()
			sub.cancel(io.EOF)
			return
		}
		select {
		case <-time.After(s.lim.FinishGrace - since):
		case <-wake:
		case <-ctx.Done():
			sub.track.Abort(remoteErr(context.Cause(ctx)))
			return
		}
	}
}
