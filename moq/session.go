package moq

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// Session is a moq-lite session with one peer. It is a cheap handle: copies
// refer to the same session, and dropping it closes nothing.
type Session struct {
	s *actor.Session
	m *Moq
}

// RemotePeer is the authenticated peer at the other end; empty for a
// client of a server.Server (browser, Node, moql://), which has no libp2p identity.
func (s *Session) RemotePeer() peer.ID { return s.s.RemotePeer() }

// Scope is the path a server.Server session is confined to ("" for everything):
// names on it are relative to the scope.
func (s *Session) Scope() string { return s.s.Scope() }

// RemoteAddr is the transport address of the other end.
func (s *Session) RemoteAddr() net.Addr { return s.s.Conn().RemoteAddr() }

// Dialed reports whether this node opened the session.
func (s *Session) Dialed() bool { return s.s.Dialed() }

// Version is the negotiated moq-lite version, e.g. "moq-lite-04".
func (s *Session) Version() string { return s.s.Version() }

// Announced yields the broadcasts the peer announces under prefix, as
// broadcast.Origin.Announced does: first (path, b) for each one announced
// now, then every change as it happens, (path, b) when the peer announces
// path and (path, nil) when it withdraws it (a replacement comes as the
// two in a row). The second value is the broadcast to read tracks from, or
// nil for a withdrawal; it is never an error. A loop that falls behind
// sees only the net change per path. The iteration ends when ctx ends, the
// session ends (see Err for why) or the loop breaks; it reports no error of
// its own. A session asks its peer for announcements only once something
// needs them (this, Subscribe, forwarding): the first iteration on a
// session waits for the peer's answer (a round trip, at most two seconds;
// on moq-lite-03/04 the request went out with the session), so that its
// first values are what the peer announces now.
func (s *Session) Announced(ctx context.Context, prefix string) iter.Seq2[string, *broadcast.Consumer] {
	return func(yield func(string, *broadcast.Consumer) bool) {
		wctx, cancel := context.WithTimeout(ctx, remoteWait)
		_ = s.s.AwaitRemote(wctx) // a slow peer's first set then comes as changes
		cancel()
		for path, b := range s.s.Remote().Announced(ctx, prefix) {
			if !yield(path, b) {
				return
			}
		}
	}
}

// Subscribe reads a track of the peer's broadcast called name, on this
// session only (see the package doc for the other ways to subscribe). It
// subscribes at once if the peer announced the broadcast, else waits for the
// announcement: it returns ErrNotAnnounced, wrapping why the session ended,
// if the session ends first, and ctx's error if ctx does. A peer that
// announced more broadcasts than the session holds (a big relay; see
// session.Limits.MaxAnnounced) is asked without waiting, since name may be
// among the announcements left out. It returns once
// the peer accepted the subscription, or with the peer's refusal (an error
// matching broadcast.ErrNotFound for a track the broadcast lacks). The
// broadcast's end is reported by the consumer (its reads fail with an error
// matching broadcast.ErrNotFound once the peer unannounces it). An empty
// name fails with broadcast.ErrInvalidPath at once. Close the consumer when
// done.
func (s *Session) Subscribe(ctx context.Context, name, track string) (*broadcast.TrackConsumer, error) {
	return s.SubscribeWith(ctx, name, track, SubscribeOptions{})
}

// SubscribeWith is Subscribe with options (priority, ordering, latency
// budget, group range, back-pressure).
func (s *Session) SubscribeWith(ctx context.Context, name, track string, opts SubscribeOptions) (*broadcast.TrackConsumer, error) {
	name = broadcast.CleanPath(name)
	if name == "" { // no peer announces it: fail now, not when ctx ends
		return nil, broadcast.ErrInvalidPath
	}
	if err := s.waitAnnounced(ctx, name); err != nil {
		if ctx.Err() != nil { // name the wait that ctx cut short
			return nil, fmt.Errorf("moq: waiting for %s to announce %q: %w", s.remoteName(), name, err)
		}
		return nil, err
	}
	var tc *broadcast.TrackConsumer
	var err error
	if s.Path().Kind == PathRelayed {
		// The track outlives the circuit: it moves to a direct path when
		// one appears (migrate.go).
		tc, err = s.m.subscribeMoving(ctx, s, name, track, opts)
	} else {
		tc, err = s.s.Subscribe(ctx, name, track, opts)
	}
	if errors.Is(err, session.ErrClosed) {
		return nil, s.notAnnounced()
	}
	return tc, err
}

// remoteWait bounds how long a look at the sessions (Moq.Subscribe, a
// resilient track's search) waits for a peer's first set of announcements,
// which a session asks for only when first needed: a peer slower than that
// is looked at again on the next pass.
const remoteWait = 2 * time.Second

// announcing returns the sessions whose peer announces name, once what
// each announced before its session asked is known or wait has passed:
// every peer is asked at once and the wait is shared, so peers that never
// answer cost one wait per pass, not one each. Sessions whose peer
// announced more than they hold (remoteIncomplete) come last: name may be
// among the announcements they left out.
func announcing(ctx context.Context, sessions []*Session, name string, wait time.Duration) []*Session {
	for _, s := range sessions {
		s.s.Remote() // ask every peer at once: their answers arrive together
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out, maybe []*Session
	for _, s := range sessions {
		if s.s.Remote().Get(name) == nil {
			_ = s.s.AwaitRemote(wctx)
		}
		switch {
		case s.s.Remote().Get(name) != nil:
			out = append(out, s)
		case s.remoteIncomplete():
			maybe = append(maybe, s)
		}
	}
	return append(out, maybe...)
}

// remoteIncomplete reports whether the peer announced more broadcasts than
// the session holds: a name missing from Remote may still be announced.
func (s *Session) remoteIncomplete() bool {
	select {
	case <-s.s.RemoteIncomplete():
		return true
	default:
		return false
	}
}

// remoteName names the other end for an error: its peer ID, else its
// address.
func (s *Session) remoteName() string {
	if p := s.RemotePeer(); p != "" {
		return p.String()
	}
	return s.RemoteAddr().String()
}

// waitAnnounced waits for the peer to announce name. Once the peer has
// announced more than the session holds, the announcement may never show:
// it stops waiting then, and the subscription goes to the peer, which
// refuses a broadcast it lacks.
func (s *Session) waitAnnounced(ctx context.Context, name string) error {
	if s.s.Remote().Get(name) != nil || s.remoteIncomplete() {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.s.Context(), cancel)
	defer stop()
	incomplete, waited := s.s.RemoteIncomplete(), make(chan struct{})
	defer close(waited)
	go func() {
		select {
		case <-incomplete:
			cancel()
		case <-waited:
		}
	}()
	for path, b := range s.s.Remote().Announced(wctx, name) {
		if path == name && b != nil {
			return nil
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case s.s.Err() == nil && s.remoteIncomplete():
		return nil
	}
	return s.notAnnounced()
}

// Fetch asks the peer for one past group of a track it publishes
// (moq-lite-05 FETCH) and returns it once it has arrived whole: a catch-up
// or a repair, where Subscribe gives what comes next. The peer serves the
// group from its cache, so an old one it dropped is refused as NotFound;
// one not produced yet is waited for by the peer (a moqp2p peer waits its
// HeaderTimeout, 10 s by default, then refuses with Timeout: match it with
// broadcast.CodeOf(err) == broadcast.CodeTimeout). Fetch fails with the
// peer's refusal (matching broadcast.ErrNotFound for an unknown
// broadcast, track or group), ErrNoFetch on a version before lite-05
// (Version), the session's end (Err tells why; a session that had ended
// before the call gives an error wrapping it), broadcast.ErrBudget if the
// group outgrows the session's receive memory bound, or ctx's error. It
// does not wait for the broadcast's announcement: a peer serves what it
// has. Over a limited relayed path (Path().Limited) the group counts
// against the circuit's data limit.
func (s *Session) Fetch(ctx context.Context, name, track string, group uint64) (*broadcast.GroupConsumer, error) {
	name = broadcast.CleanPath(name)
	if name == "" {
		return nil, broadcast.ErrInvalidPath
	}
	g, err := s.s.Fetch(ctx, name, track, group)
	if cause := s.s.Err(); errors.Is(err, session.ErrClosed) && cause != nil {
		return nil, fmt.Errorf("moq: fetch: %w: %w", err, cause)
	}
	return g, err
}

// notAnnounced is ErrNotAnnounced for a session that ended, wrapping why it
// ended when that is known.
func (s *Session) notAnnounced() error {
	if cause := s.s.Err(); cause != nil {
		return fmt.Errorf("%w: %w", ErrNotAnnounced, cause)
	}
	return ErrNotAnnounced
}

// Publish offers b at name to this session's peer only, until unpublish is
// called or b ends. A node-wide publication at the same name takes turns with
// it as moq-lite origins do (fewer hops first, the newer one on ties).
func (s *Session) Publish(name string, b *broadcast.Consumer) (unpublish func(), err error) {
	return s.s.Offer(name, b)
}

// Close ends the session with a moq-lite code and reason.
func (s *Session) Close(code broadcast.Code, reason string) error { return s.s.Close(code, reason) }

// Goaway tells the peer that this session is about to end and, if uri is
// set, where to reconnect (lite-04's GOAWAY). The session keeps working;
// close it once the peer had time to leave. It waits for the session's
// version (a compat SETUP still running) until ctx ends; versions before
// lite-04 have no GOAWAY, for which it returns ErrNoGoaway.
//
// A node whose peer sends GOAWAY leaves: it closes the session (Cancel,
// "peer sent GOAWAY") once no subscription uses it either way, 2 s after
// the GOAWAY at the latest. Subscriptions still on it then end with it,
// as on any session's end; kept links and resilient tracks redial (the
// same peer or Dialer: a GOAWAY's URI is not followed).
func (s *Session) Goaway(ctx context.Context, uri string) error { return s.s.Goaway(ctx, uri) }

// Context ends when the session does, with Err's error as its cause: for
// context.AfterFunc, or to bound work done for the session.
func (s *Session) Context() context.Context { return s.s.Context() }

// Closed is closed when the session has ended.
func (s *Session) Closed() <-chan struct{} { return s.s.Done() }

// Err is why the session ended (nil while it runs): a *transport.ConnError
// carries the code and reason either side closed it with.
func (s *Session) Err() error { return s.s.Err() }

// Stats describe a session's link and media.
type Stats struct {
	// RTT is the smoothed round-trip time; where the transport knows none
	// (libp2p streams over TCP or a relay) it is the host's latency
	// estimate for the peer. 0 if unknown.
	RTT time.Duration
	// Link counters (bytes and packets on the wire, losses, congestion
	// window), as far as the transport has them (see transport.Stats).
	Link transport.Stats
	// Media counters (payload bytes, frames, groups).
	Media session.Stats
	// Subscriptions are the live subscriptions' counters, ours and those
	// we serve (see session.SubscriptionStats).
	Subscriptions []session.SubscriptionStats
	// Since is how long the session has existed; SendRate and RecvRate are
	// the average payload bit rates over it.
	Since              time.Duration
	SendRate, RecvRate float64 // bits per second
}

// Stats returns the session's statistics.
func (s *Session) Stats() Stats {
	st := Stats{Media: s.s.Stats(), Since: time.Since(s.s.Created()), Subscriptions: s.s.Subscriptions()}
	if sc, ok := s.s.Conn().(transport.StatsConn); ok {
		st.Link = sc.Stats()
		st.RTT = st.Link.RTT
	}
	if st.RTT == 0 && s.RemotePeer() != "" {
		st.RTT = s.m.h.Peerstore().LatencyEWMA(s.RemotePeer())
	}
	if secs := st.Since.Seconds(); secs > 0 {
		st.SendRate = float64(st.Media.BytesSent) * 8 / secs
		st.RecvRate = float64(st.Media.BytesReceived) * 8 / secs
	}
	return st
}
