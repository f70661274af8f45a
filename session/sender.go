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
	if wire.Supported(s.version, &wire.AnnounceInit{}) { // lite-01/02: the active set first, in one message
		seen = s.publish.Active(a.prefix)
		if err := a.init(seen); err != nil {
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
	return hops, ok && (a.exclude == 0 || !slices.Contains(b.Hops(), a.exclude))
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

// serveSubscribe answers one SUBSCRIBE: it replies SUBSCRIBE_OK, sends each
// group on its own uni stream and finishes when the track does.
func (s *Session) serveSubscribe(st transport.Stream, r *bufio.Reader, hdr headerTimer) {
	var sub wire.Subscribe
	if err := wire.ReadMessage(r, s.version, &sub, s.lim.MaxMessageSize); err != nil {
		s.log.Warn("bad subscribe", "err", err)
		reset(st, codeOfWire(err))
		return
	}
	if !hdr.done() {
		return
	}
	if s.served.Add(1) > int64(s.lim.MaxSubscriptions) {
		s.served.Add(-1)
		s.log.Warn("refusing subscribe: too many", "limit", s.lim.MaxSubscriptions)
		reset(st, broadcast.CodeBoundsExceeded)
		return
	}
	defer s.served.Add(-1)
	path := broadcast.CleanPath(sub.Broadcast)
	// The peer's spelling may be padded with slashes up to MaxMessageSize;
	// sub lives as long as the subscription, so keep only the clean path.
	sub.Broadcast = ""
	log := s.log.With("subscribe", sub.ID, "broadcast", path, "track", sub.Track)
	b := s.publish.Get(path)
	if b == nil {
		log.Debug("subscribe to unknown broadcast")
		reset(st, broadcast.CodeNotFound)
		return
	}
	tc, err := b.SubscribeTrack(broadcast.Track{Name: sub.Track, Priority: sub.Priority})
	if err != nil {
		log.Debug("subscribe refused", "err", err)
		reset(st, broadcast.CodeOf(err))
		return
	}
	defer tc.Close()
	if sub.Start.Set {
		tc.StartAt(sub.Start.Seq)
	}
	ok := wire.SubscribeOK{Priority: tc.Info().Priority, Ordered: sub.Ordered, MaxLatency: sub.MaxLatency, Start: sub.Start, End: sub.End}
	buf, err := wire.AppendSubscribeResponse(nil, s.version, &ok)
	if err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return
	}

	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	reading := goRead(st, func() { cancel(s.readUpdates(r)) })
	defer reading.stop()

	gs := &groupSender{s: s, id: sub.ID, base: urgency(sub.Priority), ordered: sub.Ordered, maxLatency: sub.MaxLatency}
	defer gs.wait()
	// However the subscription ends, its groups in flight end with it: their
	// streams are reset, which also frees a writer stuck on flow control.
	stopAborting := context.AfterFunc(ctx, func() { gs.cancelAll(broadcast.CodeOf(context.Cause(ctx))) })
	defer stopAborting()
	for {
		g, err := tc.RecvGroup(ctx)
		switch {
		case errors.Is(err, io.EOF):
			gs.wait() // every group written and closed,
			// out of the transport's queues (a peer that withholds credit
			// or pongs holds the FIN back for finTimeout at most),
			fctx, fcancel := context.WithTimeout(ctx, finTimeout)
			gs.flushed(fctx)
			fcancel()
			s.finLinger(ctx) // and given time to land (see finLingerBase)
			if s.ctx.Err() != nil {
				return
			}
			_ = st.Close()
			reading.await(finTimeout) // the subscriber answers our FIN with its own
			return
		case err != nil && ctx.Err() != nil: // the subscriber left, or the session ended
			gs.cancelAll(broadcast.CodeCancel)
			st.CancelWrite(uint32(broadcast.CodeOf(context.Cause(ctx))))
			return
		case err != nil: // the track was aborted: pass its code on
			gs.cancelAll(broadcast.CodeOf(err))
			st.CancelWrite(uint32(broadcast.CodeOf(err)))
			return
		}
		if sub.End.Set && g.Sequence() > sub.End.Seq {
			continue
		}
		gs.send(ctx, g)
	}
}

// finTimeout bounds how long a finished subscription waits for the
// subscriber's FIN before it stops reading.
const finTimeout = 5 * time.Second

// A finished track's subscribe stream is FINed only after its last group
// streams had time to land, because lite-03/04 have no end-of-track message
// and a subscriber may act on the FIN at once: @moq/lite (0.2.2, and its
// upstream moq-dev/moq js/lite subscriber) closes the track and forgets the
// subscription there, so a group stream it has not accepted yet is ignored
// and one it has not read to the end is cut at its next chunk.
//
// What can be observed is used: every group stream written and closed;
// on the WebSocket transport, whose writes only queue, every group stream's
// FIN written to the socket and then a WebSocket ping answered, which a
// peer's WebSocket layer does in order with the messages ahead of it (for
// Node that means the data has reached @moq/lite's stream buffers, and its
// reading of them is done before a later message is handled). Nothing says
// when a QUIC peer's application has read a stream (quic-go does not
// expose acknowledgements; browsers answer WebSocket pings below the page),
// so a time remains: finLingerBase plus finLingerRTTs round trips.
//
// Why it suffices: quic-go's Write returns once the data is packed into
// packets (all but a final short piece), so what is still on the way is
// at most a congestion window, which lands within a round trip, a lost
// packet within about three more (a probe timeout); finLingerBase covers
// the receiving page's work. Measured with the interop tests (6-frame and
// 10 000-frame tracks, 20 subscriptions each, lite-02/03/04, Chromium over
// WebTransport on loopback): without the wait, lite-02's 10 000-frame
// tracks lose groups; with 250 ms, none of 120 tracks lost a frame when
// the interop tests ran alone, but under the whole race-enabled suite on
// two shared cores a cold page's first 10 000-frame track lost 68 of 100
// groups; hence twice that. If it
// is too short for a peer (a busier page, a longer loss burst), such a
// subscriber misses the track's last frames, as it did without the wait;
// moqp2p's own subscribers do not depend on it (after the FIN they keep
// reading group streams until none arrived for Limits.FinishGrace). The
// wait is bounded by finTimeout, and ends early if the subscriber leaves.
const (
	finLingerBase = 500 * time.Millisecond
	finLingerRTTs = 4
)

// finLinger waits, before a finished subscription's FIN, finLingerBase
// plus finLingerRTTs round trips (at most finTimeout), or until ctx ends:
// the subscriber left or the session ended.
func (s *Session) finLinger(ctx context.Context) {
	d := finLingerBase
	if sc, ok := s.conn.(transport.StatsConn); ok {
		d += finLingerRTTs * sc.Stats().RTT
	}
	t := time.NewTimer(min(d, finTimeout))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// flusher is a send stream whose Write and Close only queue (the WebSocket
// transport's): Flushed is closed once its FIN has been written to the
// connection, behind all its data, or the stream was reset, or the
// connection ended; Ping then returns once the peer has taken in
// everything written before it (a WebSocket ping is answered in order with
// the messages ahead of it). quic-go's streams are not flushers: their Write
// returns once the data is packed into packets.
type flusher interface {
	Flushed() <-chan struct{}
	Ping(ctx context.Context) error
}

// reader is a goroutine reading the peer's side of a stream, joined before
// the stream's buffered reader is reused.
type reader struct {
	st   transport.ReceiveStream
	done chan struct{}
}

func goRead(st transport.ReceiveStream, f func()) *reader {
	r := &reader{st: st, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		f()
	}()
	return r
}

// await waits up to d for the reader to end by itself.
func (r *reader) await(d time.Duration) {
	select {
	case <-r.done:
	case <-time.After(d):
	}
}

// stop ends the read (STOP_SENDING, code Cancel) if it is still going, and
// waits for the goroutine.
func (r *reader) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	r.st.CancelRead(uint32(broadcast.CodeCancel))
	<-r.done
}

// readUpdates reads what the subscriber sends after SUBSCRIBE until it ends
// the stream. SUBSCRIBE_UPDATE is accepted and ignored (as JS publishers do).
// It returns why the subscription ended.
func (s *Session) readUpdates(r *bufio.Reader) error {
	for {
		var u wire.SubscribeUpdate
		if err := wire.ReadMessage(r, s.version, &u, s.lim.MaxMessageSize); err != nil {
			if isWireErr(err) {
				return &broadcast.Error{Code: codeOfWire(err), Reason: err.Error()}
			}
			if errors.Is(err, io.EOF) {
				return err
			}
			return remoteErr(err)
		}
	}
}

// urgency maps a subscriber priority (higher = more important) onto QUIC
// urgencies 0 (first) to 6, keeping 7 for groups demoted as stale.
func urgency(priority uint8) int8 { return 6 - int8(int(priority)*7/256) }

// groupSender runs the group streams of one subscription. By default the
// newest group gets the subscription's urgency and older ones in flight are
// demoted one step, so a congested link carries the newest group first (what
// live media wants). A subscriber that asked for ordered delivery (moq-lite's
// SUBSCRIBE "ordered": oldest group first) gets the reverse: the oldest group
// in flight has the subscription's urgency, newer ones wait a step below
// until they become the oldest. Groups older
// than the subscriber's max latency are reset with code Old instead of
// queueing forever. At most MaxGroupsInFlight groups of the subscription,
// and MaxSessionGroupsInFlight of the whole session (see groupTokens), are
// sent at once; more wait, leaving the rest in the track's bounded cache (a
// consumer that falls behind it skips evicted groups), so a slow subscriber
// costs bounded memory.
//
// A group that is small and already finished when it arrives is written by
// the subscription's goroutine itself, in one stream write (see
// writeSmallGroup); every other group gets a goroutine that writes its
// frames as they come, holding one of the session's tokens.
type groupSender struct {
	s          *Session
	id         uint64
	base       int8
	ordered    bool // oldest group first
	maxLatency time.Duration
	buf        []byte     // writeSmallGroup's buffer; only send's goroutine uses it
	hdr        wire.Group // writeSmallGroup's header (kept here: no allocation per group)

	mu     sync.Mutex
	groups []*outGroup   // in flight, oldest first
	freed  chan struct{} // closed when a group leaves, if someone waits
	wg     sync.WaitGroup
	// unflushed are the Flushed channels of closed group streams that may
	// still sit in the transport's queues (flusher streams only), waited
	// for before the subscription's FIN. Settled ones are dropped as more
	// are added, so the list is bounded by what the transport holds.
	unflushed []<-chan struct{}
	flusher   flusher // the last flusher group stream, for its Ping
}

// closedStream notes a group stream that was just closed, if its transport
// queues what is written.
func (gs *groupSender) closedStream(st transport.SendStream) {
	f, ok := st.(flusher)
	if !ok {
		return
	}
	ch := f.Flushed()
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.flusher = f
	if len(gs.unflushed) == cap(gs.unflushed) { // before it grows: drop the settled ones
		gs.unflushed = slices.DeleteFunc(gs.unflushed, func(ch <-chan struct{}) bool {
			select {
			case <-ch:
				return true
			default:
				return false
			}
		})
	}
	gs.unflushed = append(gs.unflushed, ch)
}

// flushed waits until every closed group stream has left the transport's
// queues and, if they were flushers, until the peer has taken them in
// (Ping), or until ctx ends.
func (gs *groupSender) flushed(ctx context.Context) {
	gs.mu.Lock()
	pending, f := gs.unflushed, gs.flusher
	gs.unflushed, gs.flusher = nil, nil
	gs.mu.Unlock()
	for _, ch := range pending {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
	if f != nil {
		_ = f.Ping(ctx) // an error ends the wait too: the session or the subscription is ending
	}
}

type outGroup struct {
	seq     uint64
	created time.Time // when the publisher made the group: its age
	ctx     context.Context
	cancel  context.CancelCauseFunc
	// stream is set while the group's stream is open and may be reset:
	// from opened until the writer closes it or a cancel resets it.
	stream  transport.SendStream
	urgency int8       // its stream's urgency, set when it opens and when it changes
	hdr     wire.Group // the GROUP header, encoded by the writer
}

// abortLocked cancels the group with cause and resets its stream if it is
// open, which also ends a write stuck on flow control. gs.mu is held.
func (og *outGroup) abortLocked(cause error) {
	og.cancel(cause)
	if og.stream != nil {
		og.stream.CancelWrite(uint32(broadcast.CodeOf(cause)))
		og.stream = nil
	}
}

// A finished group of at most inlineFrames frames and inlineBytes of payload
// is written inline: its encoding stays below a QUIC packet, so quic-go
// copies the write and returns at once.
const (
	inlineFrames = 32
	inlineBytes  = 1024
)

func (gs *groupSender) send(ctx context.Context, g *broadcast.GroupConsumer) {
	if !gs.waitSlot(ctx) {
		return
	}
	seq, created := g.Sequence(), g.Created()
	_, _, small := g.Remaining(inlineFrames, inlineBytes)
	// The subscription's slot comes first, so that a subscription waits for
	// at most one session token at a time (see groupTokens). A small group
	// takes none: it is written on this goroutine and holds nothing once
	// written (see writeSmallGroup).
	if !small && !gs.s.inFlight.acquire(ctx, gs.s.lim.MaxSessionGroupsInFlight) {
		return
	}
	gs.mu.Lock()
	older := false // an older group is still in flight
	for _, old := range gs.groups {
		if gs.maxLatency > 0 && created.Sub(old.created) > gs.maxLatency {
			old.abortLocked(&broadcast.Error{Code: broadcast.CodeOld, Reason: "group older than the subscriber's max latency"})
			continue
		}
		if old.seq < seq {
			older = true
			if !gs.ordered {
				gs.setUrgencyLocked(old, gs.demoted())
			}
		}
	}
	u := gs.base
	if gs.ordered && older {
		u = gs.demoted()
	}
	if small {
		gs.mu.Unlock()
		gs.s.writeSmallGroup(ctx, gs, seq, u, g)
		return
	}
	gctx, cancel := context.WithCancelCause(ctx)
	og := &outGroup{seq: seq, created: created, ctx: gctx, cancel: cancel, urgency: u}
	gs.groups = append(gs.groups, og)
	gs.mu.Unlock()
	gs.wg.Go(func() {
		defer gs.s.inFlight.release()
		defer gs.remove(og)
		gs.s.writeGroup(gctx, gs, og, g)
	})
}

// demoted is the urgency of a group that waits for another of the same
// subscription: one step below the subscription's.
func (gs *groupSender) demoted() int8 { return min(gs.base+1, 7) }

// setUrgencyLocked changes og's urgency, and its stream's if it is open.
// gs.mu is held.
func (gs *groupSender) setUrgencyLocked(og *outGroup, u int8) {
	if og.urgency == u {
		return
	}
	og.urgency = u
	if og.stream != nil {
		og.stream.SetPriority(u)
	}
}

// waitSlot waits until fewer than MaxGroupsInFlight groups are in flight.
func (gs *groupSender) waitSlot(ctx context.Context) bool {
	for {
		gs.mu.Lock()
		if len(gs.groups) < gs.s.lim.MaxGroupsInFlight {
			gs.mu.Unlock()
			return true
		}
		if gs.freed == nil {
			gs.freed = make(chan struct{})
		}
		freed := gs.freed
		gs.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		}
	}
}

// groupTokens bounds the group writers of a whole session (Limits.
// MaxSessionGroupsInFlight), on top of each subscription's
// MaxGroupsInFlight: without it a peer that subscribes MaxSubscriptions
// times, grants stream credit and reads nothing would hold MaxSubscriptions
// × MaxGroupsInFlight writers. Its zero value is ready to use.
//
// Fairness: tokens go to waiters in the order they asked (FIFO), and a
// subscription asks for one token at a time (after its own slot, from its
// one sending goroutine), so a subscription waiting for a token gets one
// after at most one release per other waiting subscription: none starves,
// however many tokens the others hold. With the defaults (64 per
// subscription, 256 per session) no subscription can hold more than a
// quarter of the tokens, so at least four make progress at once.
type groupTokens struct {
	mu      sync.Mutex
	used    int
	waiters []chan struct{} // oldest first; closed when given a token
}

// acquire takes a token, waiting in line while limit are in use; false if ctx
// ended first (then it holds none).
func (p *groupTokens) acquire(ctx context.Context, limit int) bool {
	p.mu.Lock()
	if p.used < limit && len(p.waiters) == 0 {
		p.used++
		p.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	}
	p.mu.Lock()
	select {
	case <-ch: // given a token meanwhile: pass it on
		p.mu.Unlock()
		p.release()
		return false
	default:
	}
	p.waiters = slices.DeleteFunc(p.waiters, func(w chan struct{}) bool { return w == ch })
	p.mu.Unlock()
	return false
}

// release returns a token: to the oldest waiter if there is one.
func (p *groupTokens) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) > 0 {
		close(p.waiters[0]) // the token changes hands: used stays
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		return
	}
	p.used--
}

// inUse is how many tokens are held.
func (p *groupTokens) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}

// remove forgets a group whose writer returned. A writer that left because
// the group was cancelled, with its stream neither closed nor reset yet,
// has it reset here with the cancel's code.
func (gs *groupSender) remove(og *outGroup) {
	gs.mu.Lock()
	if og.stream != nil && og.ctx.Err() != nil {
		og.stream.CancelWrite(uint32(broadcast.CodeOf(context.Cause(og.ctx))))
	}
	og.stream = nil
	og.cancel(nil)
	gs.groups = slices.DeleteFunc(gs.groups, func(x *outGroup) bool { return x == og })
	if gs.ordered { // the oldest group left in flight goes first now
		var oldest *outGroup
		for _, x := range gs.groups {
			if oldest == nil || x.seq < oldest.seq {
				oldest = x
			}
		}
		if oldest != nil {
			gs.setUrgencyLocked(oldest, gs.base)
		}
	}
	if gs.freed != nil {
		close(gs.freed)
		gs.freed = nil
	}
	gs.mu.Unlock()
}

// opened records the group's open stream, so that a cancel resets it; false
// if the group was cancelled meanwhile (the writer then resets it).
func (gs *groupSender) opened(og *outGroup, ctx context.Context, st transport.SendStream) bool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	og.stream = st
	st.SetPriority(og.urgency) // as of now: it may have changed while opening
	return true
}

// closing takes the group's stream out of reach of cancels before the writer
// closes it; false if a cancel reset it already.
func (gs *groupSender) closing(og *outGroup) bool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if og.stream == nil {
		return false
	}
	og.stream = nil
	return true
}

func (gs *groupSender) cancelAll(code broadcast.Code) {
	gs.mu.Lock()
	for _, og := range gs.groups {
		og.abortLocked(&broadcast.Error{Code: code})
	}
	gs.mu.Unlock()
}

func (gs *groupSender) wait() { gs.wg.Wait() }

// groupWriter is a group writer's reusable state: the stream's write buffer
// and a batch of frames read from the group under one lock.
type groupWriter struct {
	w      *bufio.Writer
	frames [][]byte
}

var groupWriters = sync.Pool{New: func() any {
	return &groupWriter{w: bufio.NewWriterSize(nil, 32<<10), frames: make([][]byte, 0, 64)}
}}

// writeSmallGroup sends a finished group whose frames are all at hand
// (groupSender.send checked it is small) in one stream write and FIN. It
// needs no goroutine: the write does not wait, so small groups arriving
// back to back leave in shared packets rather than one packet each. It
// takes no session token either: it holds neither a goroutine nor a write
// buffer of its own after it returns (the subscription's buffer is reused),
// only the transport's copy of under a packet of data, for as many streams
// as the peer's stream credit lets us open; and while it waits for that
// credit in OpenUniStream, its subscription sends nothing else.
func (s *Session) writeSmallGroup(ctx context.Context, gs *groupSender, seq uint64, urgency int8, g *broadcast.GroupConsumer) {
	st, err := s.conn.OpenUniStream(ctx)
	if err != nil {
		return
	}
	st.SetPriority(urgency)
	b := wire.AppendUniStreamType(gs.buf[:0], wire.UniGroup)
	gs.hdr = wire.Group{SubscribeID: gs.id, Sequence: seq}
	if b, err = wire.AppendMessage(b, s.version, &gs.hdr); err != nil {
		st.CancelWrite(uint32(broadcast.CodeEncode))
		return
	}
	var frames, bytes uint64
	for {
		f, ok, err := g.TryReadFrame()
		if !ok || err != nil {
			break // the end: the group finished after these frames
		}
		b = wire.AppendFrameHeader(b, uint64(len(f)))
		b = append(b, f...)
		frames++
		bytes += uint64(len(f))
	}
	gs.buf = b
	if _, err := st.Write(b); err != nil {
		return
	}
	if st.Close() == nil {
		gs.closedStream(st)
		s.counters.groupsSent.Add(1)
		s.counters.framesSent.Add(frames)
		s.counters.bytesSent.Add(bytes)
	}
}

// writeGroup sends one group: GROUP header, frames, FIN. It batches the
// frames at hand into one write and flushes before it would wait, so small
// frames cost one stream write per burst rather than one each.
func (s *Session) writeGroup(ctx context.Context, gs *groupSender, og *outGroup, g *broadcast.GroupConsumer) {
	st, err := s.conn.OpenUniStream(ctx)
	if err != nil {
		return
	}
	if !gs.opened(og, ctx, st) { // cancelled while opening
		st.CancelWrite(uint32(broadcast.CodeOf(context.Cause(ctx))))
		return
	}
	gw := groupWriters.Get().(*groupWriter)
	w := gw.w
	w.Reset(st)
	defer func() { w.Reset(nil); groupWriters.Put(gw) }()
	var frames, bytes uint64
	defer func() {
		s.counters.framesSent.Add(frames)
		s.counters.bytesSent.Add(bytes)
	}()

	var hdr [16]byte
	b := wire.AppendUniStreamType(hdr[:0], wire.UniGroup)
	og.hdr = wire.Group{SubscribeID: gs.id, Sequence: og.seq}
	b, err = wire.AppendMessage(b, s.version, &og.hdr)
	if err != nil {
		st.CancelWrite(uint32(broadcast.CodeEncode))
		return
	}
	if _, err := w.Write(b); err != nil {
		return
	}
	write := func(f []byte) error {
		if _, err := w.Write(wire.AppendFrameHeader(hdr[:0], uint64(len(f)))); err != nil {
			return err
		}
		_, err := w.Write(f)
		frames++
		bytes += uint64(len(f))
		return err
	}
	for {
		batch, err := g.TryReadFrames(gw.frames[:0], cap(gw.frames))
		for _, f := range batch {
			if write(f) != nil {
				clear(batch)
				return
			}
		}
		clear(batch)
		if len(batch) > 0 {
			continue
		}
		if err == nil { // nothing at hand: send what we have, then wait
			if w.Flush() != nil {
				return
			}
			var f []byte
			if f, err = g.ReadFrame(ctx); err == nil {
				if write(f) != nil {
					return
				}
				continue
			}
		}
		if errors.Is(err, io.EOF) && w.Flush() == nil && gs.closing(og) {
			if st.Close() == nil {
				gs.closedStream(st)
			}
			s.counters.groupsSent.Add(1)
		} else if ctx.Err() == nil {
			st.CancelWrite(uint32(broadcast.CodeOf(err)))
		}
		return
	}
}
