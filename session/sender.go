// Sending groups: a stream per group, prioritised by QUIC urgency, at most
// MaxGroupsInFlight per subscription and MaxSessionGroupsInFlight per session
// (groupTokens) at once.

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
	stats      *subStats  // the subscription's counters (stats.go)

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
			gs.stats.reset(broadcast.CodeOld)
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
		incremental := u == gs.base
		gs.mu.Unlock()
		gs.s.writeSmallGroup(ctx, gs, seq, u, incremental, g)
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

// update applies a SUBSCRIBE_UPDATE's priority to the groups sent from
// now on (those in flight keep theirs, as with moq-dev's publisher), and,
// where the version carries them, its order and max latency.
func (gs *groupSender) update(u *wire.SubscribeUpdate, extended bool) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.base = urgency(u.Priority)
	if extended {
		gs.ordered, gs.maxLatency = u.Ordered, u.MaxLatency
	}
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
		gs.prioritize(og.stream, u, u == gs.base)
	}
}

// scheduler is a send stream whose urgency comes with how streams of one
// urgency share the link (rawquic's): incremental ones round-robin, the
// others one at a time, in the order they were opened.
type scheduler interface {
	SetSchedule(urgency int8, incremental bool)
}

// prioritize gives st urgency u. A group at the subscription's urgency is
// incremental: it shares the link with other subscriptions' groups of that
// urgency. Groups a step below wait their turn and go one at a time, oldest
// first, rather than round-robin: interleaved, every group in flight would
// arrive in slivers, late as a whole, and cost the receiver a wake-up and
// a read per sliver (fan-out to 100 subscribers spent 10–15% more CPU
// that way). Chromium's MoQT implementation (quiche) goes further and gives
// every group stream a send order of its own.
func (gs *groupSender) prioritize(st transport.SendStream, u int8, incremental bool) {
	if sc, ok := st.(scheduler); ok {
		sc.SetSchedule(u, incremental)
		return
	}
	st.SetPriority(u)
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
	gs.prioritize(st, og.urgency, og.urgency == gs.base) // as of now: it may have changed while opening
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
		if og.ctx.Err() == nil {
			gs.stats.reset(code)
		}
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
	ts     []uint64 // the frames' timestamps
}

var groupWriters = sync.Pool{New: func() any {
	return &groupWriter{w: bufio.NewWriterSize(nil, 32<<10), frames: make([][]byte, 0, 64), ts: make([]uint64, 0, 64)}
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
func (s *Session) writeSmallGroup(ctx context.Context, gs *groupSender, seq uint64, urgency int8, incremental bool, g *broadcast.GroupConsumer) {
	st, err := s.conn.OpenUniStream(ctx)
	if err != nil {
		return
	}
	gs.prioritize(st, urgency, incremental)
	b := wire.AppendUniStreamType(gs.buf[:0], wire.UniGroup)
	gs.hdr = wire.Group{SubscribeID: gs.id, Sequence: seq}
	if b, err = wire.AppendMessage(b, s.version, &gs.hdr); err != nil {
		st.CancelWrite(uint32(broadcast.CodeEncode))
		return
	}
	var frames, bytes, prev uint64
	for {
		f, ts, ok, err := g.TryReadFrameAt()
		if !ok || err != nil {
			break // the end: the group finished after these frames
		}
		b = s.appendFrameHeader(b, &prev, ts, len(f))
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
		s.sentGroup(gs.stats, frames, bytes)
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
	// The frames written are counted at each flush, not only at the
	// group's end: a long group (a GOP, say) would otherwise stay out of
	// the statistics until it finishes, and a reader sampling them mid-group
	// would see the peer hold frames we never counted as sent.
	var frames, bytes uint64
	count := func() {
		if frames > 0 {
			s.counters.framesSent.Add(frames)
			s.counters.bytesSent.Add(bytes)
			gs.stats.media(frames, bytes)
			frames, bytes = 0, 0
		}
	}
	defer count()

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
	var prev uint64 // the previous frame's timestamp
	write := func(f []byte, ts uint64) error {
		if _, err := w.Write(s.appendFrameHeader(hdr[:0], &prev, ts, len(f))); err != nil {
			return err
		}
		_, err := w.Write(f)
		frames++
		bytes += uint64(len(f))
		return err
	}
	for {
		batch, stamps, err := g.TryReadFramesAt(gw.frames[:0], gw.ts[:0], cap(gw.frames))
		for i, f := range batch {
			if write(f, stamps[i]) != nil {
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
			count()
			var f []byte
			var ts uint64
			if f, ts, err = g.ReadFrameAt(ctx); err == nil {
				if write(f, ts) != nil {
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
			gs.stats.groupDone()
		} else if ctx.Err() == nil {
			st.CancelWrite(uint32(broadcast.CodeOf(err)))
			gs.stats.reset(broadcast.CodeOf(err))
		}
		return
	}
}
