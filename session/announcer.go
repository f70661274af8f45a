// Serving the peer's ANNOUNCE_PLEASE: our broadcasts under its prefix, then
// every change, written by an announcer that runs only while there are changes.

package session

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// serveAnnounce answers the peer's ANNOUNCE_PLEASE with our broadcasts under
// its prefix: the current set, then every change, until either side ends it.
// The peer sends nothing after its interest: its FIN or reset ends the
// serving, a stray byte is a protocol violation. The announcements are
// written by an announcer that runs only while there are changes to send.
// On a stream that reports the peer's end without a read (peerEnder), an
// idle interest parks no goroutine at all: the end, the session's end or
// the announcer's failure starts the one that finishes it, and stray bytes
// are looked for whenever the announcer has written (and at the end).
// Elsewhere a goroutine reads the peer's side until it ends.
func (s *Session) serveAnnounce(st transport.Stream, r *bufio.Reader, hdr headerTimer) {
	handedOff := false
	defer func() {
		if !handedOff {
			s.interests.Add(-1)
		}
	}()
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
	pe, _ := st.(peerEnder)
	if _, ok := st.(deadliner); !ok || r.Buffered() > 0 {
		pe = nil // nothing to probe with, or stray bytes already in: read them here
	}
	a.handoff = pe != nil
	s.fillPrefix(a.prefix) // the first set must be whole
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
	if pe != nil {
		handedOff = true
		s.handOffAnnounce(a, pe)
		return
	}
	if r.Buffered() > 0 { // read with the interest
		s.endAnnounce(a, errStrayData)
		return
	}
	s.endAnnounce(a, a.readEnd())
}

// handOffAnnounce leaves a's stream without a reader until the peer ends
// its side, the session ends or the announcer fails: the first of them
// starts the goroutine that finishes the serving.
func (s *Session) handOffAnnounce(a *announcer, pe peerEnder) {
	// Close waits for the finish. This runs on a goroutine of the session's
	// wait group, so the count is above zero here.
	s.wg.Add(1)
	finish := func() {
		defer s.wg.Done()
		defer s.interests.Add(-1)
		a.mu.Lock()
		stop := a.stopAfter
		a.mu.Unlock()
		if stop != nil {
			stop()
		}
		s.endAnnounce(a, a.readEnd()) // the read returns at once: the stream or the session is over
	}
	a.end = func() { a.endOnce.Do(func() { go finish() }) }
	a.mu.Lock()
	a.stopAfter = context.AfterFunc(s.ctx, a.end)
	a.mu.Unlock()
	pe.OnPeerEnd(a.end)
	a.mu.Lock()
	a.armed = true
	failed := a.stopped && a.err != nil
	a.mu.Unlock()
	if failed { // before it was armed: fail could not start the finish
		a.end()
	}
}

// endAnnounce stops the announcer and ends our side of its stream: a FIN
// for the peer's, a reset with the code of what went wrong otherwise.
func (s *Session) endAnnounce(a *announcer, cause error) {
	if err := a.stop(); err != nil { // the announcer failed first: that is why the read ended
		cause = err
	}
	switch {
	case s.ctx.Err() != nil:
	case errors.Is(cause, io.EOF):
		_ = a.st.Close() // the subscriber finished: finish our side too
	default:
		a.st.CancelWrite(uint32(broadcast.CodeOf(cause)))
	}
}

// errStrayData is what the peer sent after its announce interest.
var errStrayData = &broadcast.Error{Code: broadcast.CodeUnexpectedMsg, Reason: "data after announce interest"}

// readEnd reads the peer's side of the announce stream until it ends: the
// error it ended with (io.EOF for a FIN), or errStrayData if it carried
// anything.
func (a *announcer) readEnd() error {
	a.readMu.Lock()
	defer a.readMu.Unlock()
	var b [1]byte
	if n, err := a.st.Read(b[:]); n == 0 {
		return err
	}
	return errStrayData
}

// strayData reports whether the peer sent anything after its interest,
// waiting for it at most arrivalWait: a handed-off stream has no reader to
// notice, so the announcer looks after each run that wrote.
func (a *announcer) strayData() bool {
	d, ok := a.st.(deadliner)
	if !ok {
		return false
	}
	a.readMu.Lock()
	defer a.readMu.Unlock()
	if d.SetReadDeadline(time.Now().Add(arrivalWait)) != nil {
		return false
	}
	var b [1]byte
	n, _ := a.st.Read(b[:])
	_ = d.SetReadDeadline(time.Time{})
	return n > 0
}

// peerEnder is a stream that reports the end of the peer's side (its FIN
// or reset) with a callback instead of a read (rawquic's).
type peerEnder interface{ OnPeerEnd(func()) }

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

	// A handed-off stream (handOffAnnounce): nobody reads the peer's side
	// while it is idle. end starts the finish, once; armed (under mu) says
	// fail may call it; stopAfter (under mu) undoes its hook on the
	// session's end. readMu keeps the probe for stray bytes and the final
	// read apart.
	handoff   bool
	end       func()
	endOnce   sync.Once
	armed     bool
	stopAfter func() bool
	readMu    sync.Mutex

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
		wrote := false
		for {
			path, b, ok := a.watch.Next()
			if !ok {
				break
			}
			if err := a.announce(path, b); err != nil {
				a.fail(err)
				return
			}
			wrote = true
		}
		if wrote && a.handoff && a.strayData() {
			a.fail(errStrayData)
			return
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
	armed := a.armed
	a.mu.Unlock()
	a.st.CancelRead(uint32(broadcast.CodeCancel))
	if armed {
		a.end()
	}
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
