// The peer's announcements: an ANNOUNCE_PLEASE stream of ours mirrors the
// broadcasts the peer announces into Remote, within MaxAnnounced and
// MaxAnnouncedBytes; announcements beyond them are ignored.

package session

import (
	"context"
	"errors"
	"io"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// marksInitialSet reports whether v's publisher marks the end of the set
// it announces first on an announce stream: lite-01/02 send it whole in
// ANNOUNCE_INIT, lite-05 counts it in ANNOUNCE_OK (moq-dev's lite-05
// publisher writes that many `active` ANNOUNCEs next). lite-03/04 only
// send ANNOUNCEs, the first set and later changes alike.
func marksInitialSet(v wire.Version) bool {
	return wire.Supported(v, &wire.AnnounceInit{}) || v.HasAnnounceOK()
}

// openInterest starts the announce-interest streams, once.
func (s *Session) openInterest() {
	s.interestOnce.Do(func() {
		s.remoteOrigin() // before any stream can announce into it
		s.remoteKnown = make(chan struct{})
		s.initialPending.Store(int32(len(s.interest)))
		if len(s.interest) == 0 {
			close(s.remoteKnown)
			return
		}
		for _, p := range s.interest {
			s.spawn(func() { s.runInterest(broadcast.CleanPath(p)) })
		}
	})
}

// initialSetIn notes that one interest stream has its first set (or has
// ended without it); the last one wakes AwaitRemote.
func (s *Session) initialSetIn() {
	if s.initialPending.Add(-1) == 0 {
		close(s.remoteKnown)
	}
}

// runInterest asks the peer for its broadcasts under prefix and mirrors them
// into Remote until the stream or the session ends.
func (s *Session) runInterest(prefix string) {
	initial := false // this stream's first set is in Remote (or never will be)
	setIn := func() {
		if !initial {
			initial = true
			s.initialSetIn()
		}
	}
	defer setIn()
	st, err := s.conn.OpenStream(s.ctx)
	if err != nil {
		return
	}
	please := wire.AnnouncePlease{Prefix: wirePrefix(prefix)}
	if s.version == wire.Lite04 || s.version == wire.Lite05 {
		please.ExcludeHop = s.hop // don't echo back what we announced
	}
	buf := wire.AppendStreamType(nil, wire.StreamAnnounce)
	if buf, err = wire.AppendMessage(buf, s.version, &please); err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return
	}
	if !marksInitialSet(s.version) {
		setIn() // nothing will tell: what has arrived is all we know
	}
	stop := context.AfterFunc(s.ctx, func() { reset(st, broadcast.CodeCancel) })
	defer stop()

	r := getReader(st)
	defer putReader(r)
	active := map[string]*broadcast.Producer{} // what this stream announced
	// Active announcements we refused as loops (or, on lite-05, for a hop
	// chain with no room for the responder's hop): remembered (to tell a
	// duplicate and to match their end), so counted like active ones.
	looped := map[string]bool{}
	warnedFull := false // a dropped full hop chain was logged as a warning
	var readErr error
	defer func() {
		// A closed stream ends all it announced; a lost connection is
		// reported as what it is, not as the broadcasts' unannouncement.
		cause := s.connLost(readErr)
		for path, p := range active {
			s.endRemoteWith(path, p, cause)
		}
		for path := range looped {
			s.release(path)
		}
	}()
	if wire.Supported(s.version, &wire.AnnounceInit{}) { // lite-01/02: the active set comes first
		var init wire.AnnounceInit
		if err := wire.ReadMessage(r, s.version, &init, s.lim.MaxMessageSize); err != nil {
			readErr = err
			if isWireErr(err) {
				s.fail(codeOfWire(err), "announce init: %v", err)
			}
			return
		}
		for _, suffix := range init.Suffixes {
			path := broadcast.JoinPath(prefix, suffix)
			if active[path] != nil {
				s.fail(broadcast.CodeDuplicate, "announce init: %q listed twice", path)
				return
			}
			p, err := s.announceRemote(path, nil)
			if err != nil {
				s.ignoreAnnounced(path, err)
				continue
			}
			active[path] = p
		}
		setIn()
	}
	var responder uint64 // lite-05: the publisher's hop, left out of each hop list
	// lite-05: the first initialLeft ANNOUNCEs are the set active when the
	// publisher answered.
	var initialLeft uint64
	if s.version.HasAnnounceOK() {
		var ok wire.AnnounceOK
		if err := wire.ReadMessage(r, s.version, &ok, s.lim.MaxMessageSize); err != nil {
			readErr = err
			if isWireErr(err) {
				s.fail(codeOfWire(err), "announce ok: %v", err)
			}
			return
		}
		responder, initialLeft = ok.Hop, ok.Active
	}
	for {
		if initialLeft == 0 {
			setIn()
		}
		var m wire.Announce
		if err := wire.ReadMessage(r, s.version, &m, s.lim.MaxMessageSize); err != nil {
			readErr = err
			switch {
			case errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
				_ = st.Close()
			case isWireErr(err):
				s.fail(codeOfWire(err), "announce: %v", err)
			}
			return
		}
		if initialLeft > 0 {
			initialLeft--
		}
		path := broadcast.JoinPath(prefix, m.Suffix)
		// lite-05: the responder's hop completes the chain. A chain already
		// at MaxHops has no room for it: a long route or a loop, which a
		// relay may legitimately forward, not a malformed message. moq-dev
		// (rs/moq-net/src/lite/subscriber.rs) drops just that announcement;
		// so do we, remembering it as a looped one.
		full := false
		if m.Active && s.version.HasAnnounceOK() {
			switch {
			case len(m.Hops) >= wire.MaxHops:
				full = true
			case responder != 0:
				m.Hops = append(m.Hops, responder)
			}
		}
		// Announcements over the bounds are ignored, not remembered: the
		// path's end, if it comes, then matches nothing (the default case),
		// and a later active for it is taken as new.
		refused := m.Active && (full || containsNonZero(m.Hops, s.hop)) // remembered, not announced
		switch {
		case m.Active && (active[path] != nil || looped[path]) && s.version.HasAnnounceOK():
			// lite-05: a repeated active replaces the first (a new route)
			if err := s.reannounce(path, m.Hops, refused, active, looped); err != nil {
				s.ignoreAnnounced(path, err)
			} else if full {
				s.ignoreHopsFull(path, &warnedFull)
			}
		case m.Active && (active[path] != nil || looped[path]):
			s.fail(broadcast.CodeDuplicate, "announce: %q announced twice", path)
			return
		case refused:
			if err := s.hold(path); err != nil {
				s.ignoreAnnounced(path, err)
				continue
			}
			looped[path] = true
			if full {
				s.ignoreHopsFull(path, &warnedFull)
			} else {
				s.log.Debug("ignoring looped announcement", "path", path)
			}
		case m.Active:
			p, err := s.announceRemote(path, m.Hops)
			if err != nil {
				s.ignoreAnnounced(path, err)
				continue
			}
			active[path] = p
		case active[path] != nil:
			s.endRemote(path, active[path])
			delete(active, path)
		case looped[path]:
			s.release(path)
			delete(looped, path)
		default: // ended for a path never active (or ignored): tolerated, as moq-lite does
		}
	}
}

// reannounce applies lite-05's repeated `active` for a path already
// announced (or refused): the broadcast stays as it is unless the new
// route is refused (it loops through us or its hop chain is full: it
// ends), the old one was (it starts), or the route leads to another
// publisher (it ends and starts again: that publisher's groups are another
// sequence). A route change to the same publisher does not disturb its
// subscriptions.
func (s *Session) reannounce(path string, hops []uint64, refused bool, active map[string]*broadcast.Producer, looped map[string]bool) error {
	switch {
	case active[path] != nil && !refused && otherPublisher(active[path].Hops(), hops):
		s.endRemote(path, active[path])
		delete(active, path)
		p, err := s.announceRemote(path, hops)
		if err != nil {
			return err
		}
		active[path] = p
	case active[path] != nil && refused:
		s.endRemote(path, active[path])
		delete(active, path)
		if err := s.hold(path); err != nil {
			return err
		}
		looped[path] = true
	case looped[path] && !refused:
		s.release(path)
		delete(looped, path)
		p, err := s.announceRemote(path, hops)
		if err != nil {
			return err
		}
		active[path] = p
	}
	return nil
}

// otherPublisher reports whether a route with hops leads to another
// publisher than one with old: the first hops differ, or either is
// unknown (0, or no hops), as moq-dev's subscriber judges a restart
// (rs/moq-net/src/lite/subscriber.rs, restart_announce).
func otherPublisher(old, hops []uint64) bool {
	return len(old) == 0 || len(hops) == 0 || old[0] == 0 || old[0] != hops[0]
}

func containsNonZero(hops []uint64, id uint64) bool {
	for _, h := range hops {
		if h != 0 && h == id {
			return true
		}
	}
	return false
}

// ignoreAnnounced notes an announcement of the peer's at path left out for
// the bounds (err). A peer that announces more than we hold violates
// nothing: a relay forwards what all its other peers announce (moq-relay
// closes no session for their count), so closing the session would break
// every link to a relay as soon as it carried more paths than we hold,
// and let any of its peers do that on purpose. Remote stays within the bounds; the rest
// is counted (Stats.AnnouncementsIgnored), logged once per session, and
// signalled by RemoteIncomplete.
func (s *Session) ignoreAnnounced(path string, err error) {
	if s.countIgnored() {
		s.log.Warn("the peer announces more broadcasts than the session holds: ignoring those over the bound",
			"path", path, "err", err, "max_announced", s.lim.MaxAnnounced, "max_announced_bytes", s.lim.MaxAnnouncedBytes)
	}
}

// ignoreHopsFull notes a lite-05 announcement at path dropped because its
// hop chain had no room for the responder's hop. Remote lacks a broadcast
// the peer has, as for the bounds, so it is counted the same way. Logged
// as a warning once per announce stream (*warned), then at debug level: a
// loop can repeat it.
func (s *Session) ignoreHopsFull(path string, warned *bool) {
	s.countIgnored()
	log := s.log.Warn
	if *warned {
		log = s.log.Debug
	}
	*warned = true
	log("dropping announcement: hop chain at the maximum (a long route or a loop)", "path", path, "max_hops", wire.MaxHops)
}

// countIgnored counts one ignored announcement and reports whether it was
// the session's first (which closes RemoteIncomplete).
func (s *Session) countIgnored() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.counters.announcementsIgnored.Add(1) == 1
	if first && s.overflow != nil {
		close(s.overflow)
	}
	return first
}

// RemoteIncomplete is closed once the peer has announced more than the
// session holds (Limits.MaxAnnounced, MaxAnnouncedBytes), or on lite-05 a
// broadcast whose hop chain was full: Remote then lacks some of the peer's
// broadcasts (Stats.AnnouncementsIgnored counts them), so a path missing
// from it may still be there to subscribe to.
func (s *Session) RemoteIncomplete() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overflow == nil {
		s.overflow = make(chan struct{})
		if s.counters.announcementsIgnored.Load() > 0 {
			close(s.overflow)
		}
	}
	return s.overflow
}

// errTooManyAnnounced and errAnnouncedBytes are the peer's announcements
// over MaxAnnounced and MaxAnnouncedBytes.
var (
	errTooManyAnnounced = &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "too many announced broadcasts"}
	errAnnouncedBytes   = &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "announced paths too long in total"}
)

// hold counts one more announcement of the peer's, at path, against
// MaxAnnounced and MaxAnnouncedBytes.
func (s *Session) hold(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holdLocked(path)
}

func (s *Session) holdLocked(path string) error {
	switch {
	case s.announced >= s.lim.MaxAnnounced:
		return errTooManyAnnounced
	case s.announcedBytes+len(path) > s.lim.MaxAnnouncedBytes:
		return errAnnouncedBytes
	}
	s.announced++
	s.announcedBytes += len(path)
	return nil
}

// release undoes hold.
func (s *Session) release(path string) {
	s.mu.Lock()
	s.releaseLocked(path)
	s.mu.Unlock()
}

func (s *Session) releaseLocked(path string) {
	s.announced--
	s.announcedBytes -= len(path)
}

// announceRemote publishes the peer's broadcast at path into Remote.
func (s *Session) announceRemote(path string, hops []uint64) (*broadcast.Producer, error) {
	s.mu.Lock()
	if err := s.holdLocked(path); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	p := s.newRemoteLocked(path, hops)
	// Subscriptions made before the announcement keep serving new local
	// subscribers: move their tracks into the announced broadcast.
	for key, sub := range s.shared {
		if key.path == path {
			_ = p.InsertTrack(sub.track)
		}
	}
	s.mu.Unlock()
	if _, err := s.remoteOrigin().Publish(path, p.Consume()); err != nil && s.ctx.Err() == nil {
		s.log.Debug("not publishing remote broadcast", "path", path, "err", err)
	}
	return p, nil
}

// endRemote ends the peer's broadcast: it leaves Remote, and every
// subscription to it is cancelled.
func (s *Session) endRemote(path string, p *broadcast.Producer) {
	s.endRemoteWith(path, p, nil)
}

// connLost is why the session's connection is gone, if a failed read
// (readErr, possibly nil) or the session's end says it is; else nil. A
// read that says so ends the session first (connEnded).
func (s *Session) connLost(readErr error) error {
	s.connEnded(readErr)
	if s.ctx.Err() != nil {
		return remoteErr(context.Cause(s.ctx))
	}
	return nil
}

// endRemoteWith is endRemote with the error the broadcast's readers get:
// err, or NotFound ("broadcast unannounced") if err is nil.
func (s *Session) endRemoteWith(path string, p *broadcast.Producer, err error) {
	s.mu.Lock()
	s.releaseLocked(path)
	if s.remotes[path] == p {
		delete(s.remotes, path)
	}
	var subs []*subscription
	for _, sub := range s.subs {
		if sub.path == path {
			subs = append(subs, sub)
		}
	}
	s.mu.Unlock()
	if err == nil {
		err = &broadcast.Error{Code: broadcast.CodeNotFound, Reason: "broadcast unannounced"}
	}
	p.Abort(err)
	for _, sub := range subs {
		sub.cancel(err)
	}
}

// endRemotes ends every remote broadcast when the session ends.
func (s *Session) endRemotes() {
	s.mu.Lock()
	remotes := s.remotes
	s.remotes = nil
	s.mu.Unlock()
	err := remoteErr(context.Cause(s.ctx))
	for _, p := range remotes {
		p.Abort(err)
	}
}
