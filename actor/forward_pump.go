// Pumps: each forwarded track that has subscribers holds one upstream
// subscription on the path's route and copies its groups into the relay
// track that every downstream subscriber shares.

package actor

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
)

var (
	errUpstreamBound = &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many forwarded tracks"}
	errUpstreamShare = &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many forwarded tracks for one peer"}
	errNoRoute       = &broadcast.Error{Code: broadcast.CodeNotFound, Reason: "broadcast unannounced"}
	errOtherOrigin   = &broadcast.Error{Code: broadcast.CodeNotFound, Reason: "broadcast now comes from another publisher"}
	errUnused        = errors.New("forwarded track unused")
	errLower         = errors.New("subscribing upstream again at a lower start")
)

// startPump is the relay broadcast's OnTrack: it must not block.
func (f *forwarder) startPump(cell *routeCell, path string, tp *broadcast.TrackProducer) {
	who, tagged := tp.Tag().(shareKey) // the downstream peer it is made for; none: local
	if tagged && !f.takeShare(who) {
		tp.Abort(errUpstreamShare)
		return
	}
	if f.upstream.Add(1) > int64(f.cfg.MaxUpstream) {
		f.upstream.Add(-1)
		if tagged {
			f.dropShare(who)
		}
		tp.Abort(errUpstreamBound)
		return
	}
	// Pending until the upstream subscription is answered: the session
	// serving a downstream subscriber answers it then, and passes a
	// refusal on as one.
	tp.Hold()
	cell.addTrack(tp)
	go func() {
		defer f.upstream.Add(-1)
		if tagged {
			defer f.dropShare(who)
		}
		defer cell.removeTrack(tp)
		f.pump(cell, path, tp)
	}()
}

// shareKey is whom MaxUpstreamPerPeer counts: a libp2p peer, or an
// anonymous session (no peer ID; bounded per source address by whoever
// admits them).
type shareKey struct {
	peer    peer.ID
	session uint64 // anonymous sessions only
}

func (s *Session) shareKey() shareKey {
	if s.peer != "" {
		return shareKey{peer: s.peer}
	}
	return shareKey{session: s.id}
}

// takeShare counts a pump against who's MaxUpstreamPerPeer, false if that
// is reached. The count is who's until the pump ends, even if its session
// ends first: the track's other subscribers keep it.
func (f *forwarder) takeShare(who shareKey) bool {
	f.shareMu.Lock()
	defer f.shareMu.Unlock()
	if f.shares[who] >= f.cfg.MaxUpstreamPerPeer {
		return false
	}
	if f.shares == nil {
		f.shares = map[shareKey]int{}
	}
	f.shares[who]++
	return true
}

func (f *forwarder) dropShare(who shareKey) {
	f.shareMu.Lock()
	defer f.shareMu.Unlock()
	if f.shares[who]--; f.shares[who] <= 0 {
		delete(f.shares, who)
	}
}

// pump feeds tp from the path's route. When the route's broadcast ends it
// waits for the next route and, if it comes from the same publisher (the
// same first hop), continues at the first group it has not forwarded:
// sequence numbers are the publisher's, so they carry over. It stops when
// tp has no subscriber left (keeping the upstream subscription for the
// linger), when the track ends upstream, or when the path is gone.
func (f *forwarder) pump(cell *routeCell, path string, tp *broadcast.TrackProducer) {
	ctx, cancel := context.WithCancelCause(f.a.lifetime)
	defer cancel(nil)
	unused := tp.Unused()
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() { // one per pump: Unused is a channel, not a context
		select {
		case <-unused:
			cancel(errUnused)
		case <-stopWatch:
		}
	}()
	info := tp.Info()
	var (
		origin    uint64
		spliced   bool   // a route was used before
		last      uint64 // highest sequence forwarded
		forwarded bool
		resumes   int    // cancelled upstream tracks subscribed again since the last progress
		prev      *route // the route of the last upstream subscription
		lower     *lowerStart
	)
	for {
		r, gone, changed := cell.get()
		if gone {
			tp.Abort(errNoRoute)
			return
		}
		if r == nil || r.b.Err() != nil { // the route is going: wait for run to choose the next
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				f.endPump(tp, context.Cause(ctx))
				return
			}
		}
		again := lower != nil && r == prev // the same route: the same publisher
		if spliced && !again && (origin == 0 || r.origin() != origin) {
			// Another publisher's sequence numbers mean nothing here.
			tp.Abort(errOtherOrigin)
			return
		}
		// The upstream subscription is made for every subscriber of tp:
		// the highest priority and the earliest start asked so far. It is not updated afterwards
		// (moq-lite's SUBSCRIBE_UPDATE could, but moq-dev's Rust publisher
		// treats one as an error), so a later subscriber's higher priority
		// applies from the next upstream subscription (after a failover).
		info.Priority = tp.AskedPriority()
		var start *uint64 // nil: the latest group
		switch {
		case again:
			start = lower.start
		case !spliced:
			// The earliest start a subscriber asked for so far. Until a
			// group arrives, one whom it leaves out has it made again
			// lower (watchStart); after that, one asking for an earlier
			// start is served from the relay track's cache (what it holds
			// from there on). After a failover the track goes on at the
			// next group instead.
			if s, ok := tp.AskedStart(); ok {
				start = &s
			}
		}
		lower = nil
		var up *broadcast.TrackConsumer
		var err error
		if start != nil {
			up, err = r.b.SubscribeTrackAt(info, *start)
		} else {
			up, err = r.b.SubscribeTrack(info)
		}
		if err != nil {
			if r.b.Err() != nil {
				continue // the route ended meanwhile
			}
			tp.Abort(err)
			return
		}
		origin, spliced, prev = r.origin(), true, r
		before, had := last, forwarded
		// Groups are received under rctx: watchStart ends it to subscribe
		// again lower; groups in flight are copied on under ctx.
		rctx, rcancel := context.WithCancelCause(ctx)
		if err = up.Ready(ctx); err == nil {
			tp.Confirm() // the upstream took it
			if start != nil {
				lower = &lowerStart{}
				go watchStart(rctx, rcancel, tp, *start, lower)
			}
			err = f.copyTrack(ctx, rctx, up, tp, &last, &forwarded)
		}
		rcancel(nil)
		progress := forwarded && (!had || last > before)
		if progress {
			resumes = 0
		}
		if ctx.Err() != nil || !errors.Is(context.Cause(rctx), errLower) {
			lower = nil // watchStart's verdict, if any, is read below only
		}
		switch {
		case errors.Is(err, io.EOF):
			up.Close()
			_ = tp.Finish()
			return
		case ctx.Err() != nil:
			if start != nil && !progress {
				// An upstream track held back at a start nothing reached:
				// a subscriber back within the linger must not join it.
				up.Close()
			} else {
				f.lingerClose(up)
			}
			f.endPump(tp, context.Cause(ctx))
			return
		case lower != nil:
			// Close first: the session's upstream track is shared, so
			// the next subscription would otherwise join this one.
			up.Close()
			f.a.log.Debug("forwarded track subscribed again at a lower start", "path", path, "track", info.Name)
			continue
		case r.b.Err() == nil && broadcast.CodeOf(err) == broadcast.CodeCancel && resumes < maxResumes:
			// A relay upstream cancels its track when its own route changes
			// under it (it can answer a subscription on the broadcast it is
			// about to replace): while the route stands, subscribe there
			// again at once and go on at the next group, a few times
			// without progress before waiting to see if the route goes.
			resumes++
			up.Close()
			f.a.log.Debug("forwarded track cancelled upstream: subscribing again", "path", path, "track", info.Name, "err", err)
			continue
		case r.b.Err() == nil && !f.routeGoing(ctx, r, changed, err):
			// The track failed, not the route: pass it on.
			up.Close()
			tp.Abort(err)
			return
		}
		up.Close()
		f.a.log.Debug("forwarded track lost its route", "path", path, "track", info.Name, "err", err)
	}
}

// startGrace is how long an upstream subscription made at a start may
// deliver nothing before a subscriber that wants the latest group has it
// made again without a start: a start the publisher already passed is
// served at once, so one that delivers nothing by then is ahead of it.
const startGrace = 500 * time.Millisecond

// lowerStart is watchStart's verdict: subscribe again at start (nil: the
// latest group). It is written before watchStart cancels the receiving
// context with errLower, and read after.
type lowerStart struct{ start *uint64 }

// watchStart ends the upstream subscription made at start (cancelling
// rctx with errLower, its verdict in lower) when, before tp has a group,
// a subscriber wants groups it leaves out: one asking for an earlier
// start (at once), or one wanting the latest group once the subscription
// delivered nothing for startGrace. A subscriber asking for a start far
// ahead thus cannot hold the shared subscription back from everyone else.
// The upstream start only goes down, and from a start to none, never back.
func watchStart(rctx context.Context, rcancel context.CancelCauseFunc, tp *broadcast.TrackProducer, start uint64, lower *lowerStart) {
	grace := time.NewTimer(startGrace)
	defer grace.Stop()
	live := false // startGrace is over: a subscriber wanting the latest group may redo it
	for {
		asked := tp.Asked() // before the checks: an ask in between wakes the wait
		if _, any := tp.Latest(); any {
			return // groups flow: later subscribers are served from the relay track
		}
		if s, ok := tp.AskedStart(); ok && s < start {
			lower.start = &s
			rcancel(errLower)
			return
		}
		if live && tp.AskedLive() {
			rcancel(errLower) // lower.start nil: the latest group
			return
		}
		select {
		case <-asked:
		case <-grace.C:
			live = true
		case <-rctx.Done():
			return
		}
	}
}

// routeGrace is how long a pump whose upstream track failed waits to learn
// whether its route is going: a node shutting down, or losing its own
// route, resets its subscriptions (Cancel, NotFound) a moment before its
// session or its announcement ends. A track that failed for good reaches
// the subscribers that much later.
const routeGrace = 500 * time.Millisecond

// maxResumes bounds the subscriptions a pump makes again on the same route
// after the upstream track was cancelled, without a group forwarded in
// between.
const maxResumes = 2

// routeGoing reports whether the route's broadcast ended or the path's
// route changed, waiting up to routeGrace for it after the upstream track
// failed with err.
func (f *forwarder) routeGoing(ctx context.Context, r *route, changed <-chan struct{}, err error) bool {
	if errors.Is(err, broadcast.ErrLagged) {
		return true // not an end: read on
	}
	t := time.NewTimer(routeGrace)
	defer t.Stop()
	select {
	case <-r.b.Done():
		return true
	case <-changed:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return true // the loop ends the pump
	}
}

// endPump ends the relay track when the pump stops for cause.
func (f *forwarder) endPump(tp *broadcast.TrackProducer, cause error) {
	if errors.Is(cause, errUnused) {
		cause = broadcast.ErrCancelled
	} else {
		cause = &broadcast.Error{Code: broadcast.CodeCancel, Reason: "node shutting down"}
	}
	tp.Abort(cause)
}

// lingerClose keeps an upstream consumer for the linger: a subscriber that
// comes back meanwhile joins the same upstream track (the session shares
// one wire subscription per track) and starts at its cached latest group.
func (f *forwarder) lingerClose(up *broadcast.TrackConsumer) {
	if f.cfg.Linger <= 0 || f.a.lifetime.Err() != nil {
		up.Close()
		return
	}
	time.AfterFunc(f.cfg.Linger, up.Close)
}

// copyTrack copies up's groups into tp until up ends (its error), or ctx
// or rctx (which only stops receiving: groups in flight are copied on)
// does. Groups at or below *last from an earlier route are skipped.
func (f *forwarder) copyTrack(ctx, rctx context.Context, up *broadcast.TrackConsumer, tp *broadcast.TrackProducer, last *uint64, forwarded *bool) error {
	floor, skip := *last, *forwarded // the splice point
	sem := make(chan struct{}, f.cfg.MaxGroupCopiers)
	// The previous group's frame count: a group is sized for it up front
	// rather than grown as its frames arrive (groups of a track are alike).
	var hint atomic.Int64
	var wg sync.WaitGroup
	gctx, stop := context.WithCancel(ctx)
	defer stop()
	// Copiers end with their group: at its end upstream (a finished track's
	// last groups are still arriving when its end is known, so they are
	// waited for, not cut), when the route fails (its groups are aborted),
	// or with ctx.
	defer wg.Wait()
	for {
		g, err := up.RecvGroup(rctx)
		if err != nil {
			return err
		}
		seq := g.Sequence()
		if skip && seq <= floor {
			continue
		}
		if !*forwarded || seq > *last {
			*last, *forwarded = seq, true
		}
		// A group already whole goes over in one piece, with no goroutine.
		if n, _, complete := g.Remaining(1<<16, 1<<40); complete {
			frames, ts, _ := g.TryReadFramesAt(make([][]byte, 0, n), make([]uint64, 0, n), n)
			if err := tp.WriteGroupAt(seq, ts, frames...); err != nil && !errors.Is(err, broadcast.ErrDuplicate) && !errors.Is(err, broadcast.ErrTooLarge) {
				return err
			}
			continue
		}
		gp, err := tp.CreateGroup(seq)
		if err != nil {
			if errors.Is(err, broadcast.ErrDuplicate) {
				continue
			}
			return err
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			gp.Abort(context.Cause(ctx))
			return ctx.Err()
		}
		gp.Grow(int(min(hint.Load(), maxFrameHint)))
		wg.Go(func() {
			defer func() { <-sem }()
			if n := copyGroup(gctx, g, gp); n > 0 {
				hint.Store(int64(n))
			}
		})
	}
}

// maxFrameHint caps the frames a relay group is sized for up front: a
// hostile publisher's huge group costs its own memory, not a guess's.
const maxFrameHint = 1024

// copyGroup copies a group's frames, with their timestamps, as they
// arrive (received tracks hold timestamps in the default timescale, as
// relay tracks do), and ends gp as g ended. It returns the frames copied
// once the group finished cleanly, 0 otherwise.
func copyGroup(ctx context.Context, g *broadcast.GroupConsumer, gp *broadcast.GroupProducer) int {
	n, rerr, werr := broadcast.CopyGroup(ctx, gp, g, 0)
	if err := errors.Join(rerr, werr); err != nil {
		gp.Abort(err)
		return 0
	}
	_ = gp.Finish()
	return n
}
