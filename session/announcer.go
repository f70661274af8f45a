// Serving the peer's ANNOUNCE_PLEASE: our broadcasts under its prefix, then
// every change, written by an announcer that runs only while there are changes.

package session

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// serveAnnounce answers the peer's ANNOUNCE_PLEASE with our broadcasts under
// its prefix: the current set, then every change, until either side ends it.
// This goroutine reads the peer's side of the stream (it sends nothing after
// its interest: its FIN or reset ends the serving, a stray byte is a
// protocol violation); the announcements are written by an announcer that
// runs only while there are changes to send, so an idle session parks one
// goroutine here, not two.
func (s *Session) serveAnnounce(st transport.Stream, r *bufio.Reader, hdr headerTimer) {
	var please wire.AnnouncePlease
	if err := wire.ReadMessage(r, s.version, &please, s.lim.MaxMessageSize); err != nil {
		s.log.Warn("bad announce interest", "err", err)
		reset(st, codeOfWire(err))
		return
	}
	if !hdr.done() {
		return
	}
	// Only the clean prefix and the hop are kept: the prefix may be as long
	// as a message, and one copy of it is enough.
	a := &announcer{s: s, st: st, exclude: please.ExcludeHop, prefix: broadcast.CleanPath(please.Prefix), sent: map[string]bool{}}
	var seen map[string]*broadcast.Consumer
	switch {
	case wire.Supported(s.version, &wire.AnnounceInit{}): // lite-01/02: the active set first, in one message
		seen = s.publish.Active(a.prefix)
		if err := a.init(seen); err != nil {
			a.fail(err)
		}
	case s.version.HasAnnounceOK(): // lite-05: ANNOUNCE_OK with the size of the active set, then the set
		seen = s.publish.Active(a.prefix)
		if err := a.ok(seen); err != nil {
			a.fail(err)
		}
	}
	w := s.publish.WatchSince(a.prefix, seen, a.kick)
	a.mu.Lock()
	a.watch = w
	a.mu.Unlock()
	a.kick() // the initial set, and whatever changed since
	cause := error(&broadcast.Error{Code: broadcast.CodeUnexpectedMsg, Reason: "data after announce interest"})
	if _, err := r.ReadByte(); err != nil {
		cause = err
	}
	if err := a.stop(); err != nil { // the announcer failed first: that is why the read ended
		cause = err
	}
	switch {
	case s.ctx.Err() != nil:
	case errors.Is(cause, io.EOF):
		_ = st.Close() // the subscriber finished: finish our side too
	default:
		st.CancelWrite(uint32(broadcast.CodeOf(cause)))
	}
}

// announcer writes one announce stream's ANNOUNCE messages. The origin's
// Watch calls kick on changes; kick starts a goroutine that sends what
// changed and ends when nothing is left.
type announcer struct {
	s       *Session
	st      transport.Stream
	exclude uint64 // the peer's hop: what it announced is not sent back
	prefix  string
	watch   *broadcast.Watch // set before the first kick can start a run

	mu      sync.Mutex
	running bool  // a run is under way
	again   bool  // kicked during the run: look once more
	stopped bool  // no more runs
	err     error // why writing stopped, if it did
	wg      sync.WaitGroup

	// Used by one run at a time.
	sent map[string]bool
	buf  []byte
}

// announcerDrained is called by a run that found nothing more to send,
// before it decides whether to end: tests put a change there.
var announcerDrained = func() {}

func (a *announcer) kick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped || a.watch == nil {
		return // a change before serveAnnounce has the watch: it kicks once it does
	}
	if a.running {
		a.again = true
		return
	}
	a.running = true
	a.wg.Go(a.run)
}

// run sends every pending change, then returns.
func (a *announcer) run() {
	for {
		for {
			path, b, ok := a.watch.Next()
			if !ok {
				break
			}
			if err := a.announce(path, b); err != nil {
				a.fail(err)
				return
			}
		}
		if a.watch.Closed() {
			a.fail(&broadcast.Error{Code: broadcast.CodeCancel, Reason: "origin closed"})
			return
		}
		announcerDrained()
		a.mu.Lock()
		if !a.again || a.stopped {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.again = false
		a.mu.Unlock()
	}
}

// offer says whether b goes to this peer: not too far, not its own.
func (a *announcer) offer(b *broadcast.Consumer) ([]uint64, bool) {
	hops, ok := sendHops(b.Hops(), a.s.hop)
	if a.s.version.HasAnnounceOK() {
		hops = hops[:len(hops)-1] // our own hop went once, in ANNOUNCE_OK; the peer appends it
	}
	return hops, ok && (a.exclude == 0 || !slices.Contains(b.Hops(), a.exclude))
}

// ok sends lite-05's ANNOUNCE_OK (our hop ID and how many broadcasts are
// active) and then those broadcasts, in path order.
func (a *announcer) ok(active map[string]*broadcast.Consumer) error {
	var paths []string
	for path, b := range active {
		if _, ok := a.offer(b); ok {
			paths = append(paths, path)
		}
	}
	slices.Sort(paths)
	buf, err := wire.AppendMessage(nil, a.s.version, &wire.AnnounceOK{Hop: a.s.hop, Active: uint64(len(paths))})
	if err == nil {
		_, err = a.st.Write(buf)
	}
	for _, path := range paths {
		if err != nil {
			break
		}
		err = a.announce(path, active[path])
	}
	return err
}

// init sends lite-01/02's ANNOUNCE_INIT: the active set in one message.
func (a *announcer) init(active map[string]*broadcast.Consumer) error {
	var init wire.AnnounceInit
	for path, b := range active {
		if _, ok := a.offer(b); ok {
			suffix, _ := broadcast.StripPrefix(path, a.prefix)
			init.Suffixes = append(init.Suffixes, suffix)
			a.sent[path] = true
		}
	}
	slices.Sort(init.Suffixes)
	buf, err := wire.AppendMessage(nil, a.s.version, &init)
	if err == nil {
		_, err = a.st.Write(buf)
	}
	return err
}

// announce sends one change: b active at path, or path ended (b nil).
func (a *announcer) announce(path string, b *broadcast.Consumer) error {
	msg := wire.Announce{Active: b != nil}
	msg.Suffix, _ = broadcast.StripPrefix(path, a.prefix)
	switch {
	case b != nil:
		hops, ok := a.offer(b)
		if !ok || a.sent[path] { // too far or the peer's own; never active twice in a row (fatal to moq-dev subscribers)
			return nil
		}
		msg.Hops = hops
		a.sent[path] = true
	case !a.sent[path]:
		return nil
	default:
		delete(a.sent, path)
	}
	var err error
	if a.buf, err = wire.AppendMessage(a.buf[:0], a.s.version, &msg); err == nil {
		_, err = a.st.Write(a.buf)
	}
	if err != nil {
		a.s.log.Debug("announce stream ended", "err", err)
	}
	return err
}

// fail stops the announcer with err and ends the serving goroutine's read.
func (a *announcer) fail(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.stopped, a.running = true, false
	a.mu.Unlock()
	a.st.CancelRead(uint32(broadcast.CodeCancel))
}

// stop ends the watch, waits for a run under way and returns why the
// announcer failed, if it did.
func (a *announcer) stop() error {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	if a.watch != nil {
		a.watch.Stop()
	}
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
