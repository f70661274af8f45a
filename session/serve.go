// Serving the peer's SUBSCRIBE: SUBSCRIBE_OK, the track's groups (through a
// groupSender), and a FIN once the last groups had time to land.

package session

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// codeUnknownBroadcast refuses a SUBSCRIBE, TRACK or FETCH for a broadcast
// we neither publish nor fill on demand. Unroutable, as the reference
// (moq-dev/moq rs/moq-net/src/model/origin.rs, request_broadcast) sends it
// on every version; a peer that knows only NotFound sees an unknown code,
// as it would from that implementation.
const codeUnknownBroadcast = broadcast.CodeUnroutable

// readyWait bounds how long a SUBSCRIBE waits for a pending track's source
// to confirm it (broadcast.TrackProducer.Hold) before it is accepted.
const readyWait = 5 * time.Second

// serveSubscribe answers one SUBSCRIBE: it replies SUBSCRIBE_OK (lite-05:
// START at once; when the track finishes, DROP for the groups not served,
// then END), sends each group on its own uni stream and finishes when the
// track does.
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
	if int(s.served.Add(1)) > s.lim.MaxSubscriptions {
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
	b := s.published(path)
	if b == nil {
		log.Debug("subscribe to unknown broadcast")
		reset(st, codeUnknownBroadcast)
		return
	}
	info := broadcast.Track{Name: sub.Track, Priority: sub.Priority}
	var tc *broadcast.TrackConsumer
	var err error
	if sub.Start.Set {
		// The start is noted on the track, so a relay's upstream
		// subscription starts at the earliest one asked.
		tc, err = b.SubscribeTrackAt(info, sub.Start.Seq)
	} else {
		tc, err = b.SubscribeTrack(info)
	}
	if err != nil {
		log.Debug("subscribe refused", "err", err)
		reset(st, broadcast.CodeOf(err))
		return
	}
	defer tc.Close()
	// A track still pending at its source (a relay's upstream subscription
	// not yet answered) is answered once it is: refused with the source's
	// code rather than accepted and then reset. A source that takes longer
	// than readyWait to answer is accepted, as a track that exists.
	rctx, rcancel := context.WithTimeout(s.ctx, readyWait)
	err = tc.Ready(rctx)
	waited := rctx.Err() != nil
	rcancel()
	if err != nil && !waited {
		log.Debug("subscribe refused by the track's source", "err", err)
		reset(st, broadcast.CodeOf(err))
		return
	}
	// The first group served, if known: the one asked for, else the
	// latest when the consumer joined.
	start, known := tc.Start()
	var rng *subscribeRange
	if s.version.HasSubscribeRange() {
		// lite-05 has no SUBSCRIBE_OK. START goes out now, the
		// subscription being held, not with the first group as moq-dev's
		// publishers do: our subscribers wait for it (peerStartsEagerly).
		rng = &subscribeRange{st: st, v: s.version}
		if rng.begin(start, known) != nil {
			reset(st, broadcast.CodeCancel)
			return
		}
	} else {
		ok := wire.SubscribeOK{Priority: tc.Info().Priority, Ordered: sub.Ordered, MaxLatency: sub.MaxLatency, Start: sub.Start, End: sub.End}
		buf, err := wire.AppendSubscribeResponse(nil, s.version, &ok)
		if err == nil {
			_, err = st.Write(buf)
		}
		if err != nil {
			reset(st, broadcast.CodeCancel)
			return
		}
	}

	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	stats := s.obs.track(true, sub.ID, path, sub.Track)
	defer s.obs.untrack(stats)
	gs := &groupSender{s: s, id: sub.ID, base: urgency(sub.Priority), ordered: sub.Ordered, maxLatency: sub.MaxLatency, stats: stats}
	defer gs.wait()
	var caps atomic.Pointer[groupRange] // nil: every group
	if sub.End.Set {
		caps.Store(&groupRange{end: sub.End})
	}
	reading := goRead(st, func() {
		cancel(s.readUpdates(r, func(u *wire.SubscribeUpdate) {
			gs.update(u, s.version.HasSubscribeExtended())
			if s.version.HasSubscribeExtended() {
				caps.Store(caps.Load().updated(u.Start, u.End))
			}
		}))
	})
	defer reading.stop()
	// However the subscription ends, its groups in flight end with it: their
	// streams are reset, which also frees a writer stuck on flow control.
	stopAborting := context.AfterFunc(ctx, func() { gs.cancelAll(broadcast.CodeOf(context.Cause(ctx))) })
	defer stopAborting()
	// serve sends one group; false when the subscription is over.
	serve := func(g *broadcast.GroupConsumer) bool {
		if rng.serve(g.Sequence()) != nil {
			gs.cancelAll(broadcast.CodeCancel)
			st.CancelWrite(uint32(broadcast.CodeCancel))
			return false
		}
		stats.groupStarted(g.Sequence(), g.Created())
		if rng != nil && s.sendDatagram(sub.ID, tc.Info(), g, stats) {
			return true
		}
		gs.send(ctx, g)
		return true
	}
	// Groups past the end a SUBSCRIBE_UPDATE set are held, newest
	// MaxGroupsInFlight at most, until an update raises or lifts the end
	// (as moq-dev's publisher holds them), and looked at again with the
	// next group, or when the track ends.
	var parked []*broadcast.GroupConsumer
	var parkedFor *groupRange // the range every group in parked was placed under (unsorted: mixed)
	unpark := func() bool {
		if len(parked) == 0 {
			return true
		}
		r := caps.Load()
		if r == parkedFor {
			return true
		}
		parkedFor = r
		kept := parked[:0]
		for _, g := range parked {
			switch r.place(g.Sequence()) {
			case 0:
				if !serve(g) {
					return false
				}
			case 1:
				kept = append(kept, g)
			}
		}
		clear(parked[len(kept):])
		parked = kept
		return true
	}
	for {
		g, err := tc.RecvGroup(ctx)
		if err == nil || errors.Is(err, io.EOF) {
			if !unpark() {
				return
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			if rng.end() != nil {
				gs.cancelAll(broadcast.CodeCancel)
				st.CancelWrite(uint32(broadcast.CodeCancel))
				return
			}
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
		if r := caps.Load(); r != nil {
			switch r.place(g.Sequence()) {
			case -1: // below a start an update moved up
				continue
			case 1:
				if len(parked) == s.lim.MaxGroupsInFlight {
					clear(parked[:1])
					parked = parked[1:]
				}
				if len(parked) == 0 {
					parkedFor = r
				} else if r != parkedFor {
					parkedFor = unsorted
				}
				parked = append(parked, g)
				continue
			}
		}
		if !serve(g) {
			return
		}
	}
}

// unsorted marks held groups placed under different ranges: a pointer no
// range shares, so the next look sorts them again.
var unsorted = new(groupRange)

// groupRange is the groups a subscription serves: from start (if set) to
// end (if set), both inclusive. A SUBSCRIBE_UPDATE replaces end and, if it
// sets one, start.
type groupRange struct{ start, end wire.GroupRef }

// updated returns r as an update with start and end leaves it; nil if it
// bounds nothing.
func (r *groupRange) updated(start, end wire.GroupRef) *groupRange {
	n := groupRange{end: end}
	if start.Set {
		n.start = start
	} else if r != nil {
		n.start = r.start
	}
	if !n.start.Set && !n.end.Set {
		return nil
	}
	return &n
}

// place tells where seq lies: -1 below the range, 0 in it, 1 past its end.
func (r *groupRange) place(seq uint64) int {
	switch {
	case r == nil:
		return 0
	case r.start.Set && seq < r.start.Seq:
		return -1
	case r.end.Set && seq > r.end.Seq:
		return 1
	}
	return 0
}

// finTimeout bounds how long a finished subscription waits for the
// subscriber's FIN before it stops reading. A live subscriber answers
// within a round trip; the bound only frees the stream and goroutine of one
// that never does (stopped with Cancel; nothing it was sent is lost).
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
// the stream, handing each SUBSCRIBE_UPDATE to apply. It returns why the
// subscription ended.
func (s *Session) readUpdates(r *bufio.Reader, apply func(*wire.SubscribeUpdate)) error {
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
		apply(&u)
	}
}

// subscribeRange writes lite-05's subscribe responses: START as soon as
// the subscription is held (begin), END (exclusive) once the track
// finished, and before it a DROP for each gap in the sequences served
// (groups the track skipped, or never had). Gaps are only known then:
// groups arrive in the track, and are served, in arrival order, which a
// group's stream that took longer may put after a later group's, so a gap
// seen before the end may still fill. A nil *subscribeRange (other
// versions) writes nothing.
type subscribeRange struct {
	st transport.SendStream
	v  wire.Version
	// anyGroup: START said 0, the track having no group yet, so any group
	// may be served; the first one served starts served, and the DROPs
	// cover the sequences below it too. first and next are then both 0
	// until a group is served, and never both after.
	anyGroup bool
	first    uint64 // START's group, or with anyGroup the first served
	next     uint64 // one past the highest group served (first until one is)
	served   groupSpan
	buf      []byte
}

// maxEndDrops bounds the DROPs written before END: a track with more gaps
// gets none (a subscriber then ends it as it would without them).
const maxEndDrops = 16

func (r *subscribeRange) write(m wire.Message) error {
	var err error
	if r.buf, err = wire.AppendSubscribeResponse(r.buf[:0], r.v, m); err != nil {
		return err
	}
	_, err = r.st.Write(r.buf)
	return err
}

// begin writes START: the first group to be served if known, else 0 (any
// group the track will have: none below the lowest served comes, which
// the DROPs before END then say), as moq-net's subscribers and @moq/net
// only log START or drop it.
func (r *subscribeRange) begin(first uint64, known bool) error {
	if !known {
		first = 0
	}
	r.anyGroup, r.first, r.next = !known, first, first
	r.served.started(first)
	return r.write(&wire.SubscribeStart{Group: first})
}

// serve is called before group seq is sent.
func (r *subscribeRange) serve(seq uint64) error {
	if r == nil {
		return nil
	}
	switch {
	case r.anyGroup && r.first == 0 && r.next == 0: // the first served
		r.first = seq
		r.served.started(seq)
	case seq < r.first: // below the first served (anyGroup): the gaps are unknown
		r.served.giveUp()
	}
	r.served.arrived(seq)
	r.next = max(r.next, seq+1)
	return nil
}

// end is called when the track finished: no group at or after r.next
// comes (0 if none was served).
func (r *subscribeRange) end() error {
	if r == nil {
		return nil
	}
	if gaps, ok := r.served.gaps(r.next, maxEndDrops); ok {
		if r.anyGroup && r.first > 0 { // none below the first served came
			gaps = append([]seqRange{{0, r.first - 1}}, gaps...)
		}
		for _, g := range gaps {
			if err := r.write(&wire.SubscribeDrop{Start: g.start, End: g.end}); err != nil {
				return err
			}
		}
	}
	return r.write(&wire.SubscribeEnd{Group: r.next})
}

// fillPrefix has Publish filled under prefix (Config.FillPublish) before
// the peer's announce interest there is served.
func (s *Session) fillPrefix(prefix string) {
	if s.fill != nil {
		s.fill(s.ctx, prefix)
	}
}

// published is the broadcast at path in Publish, which is filled there
// first if it lacks it (Config.FillPublish).
func (s *Session) published(path string) *broadcast.Consumer {
	b := s.publish.Get(path)
	if b == nil && s.fill != nil {
		s.fill(s.ctx, path)
		b = s.publish.Get(path)
	}
	return b
}
