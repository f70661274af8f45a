// The receive path: group streams read into their subscription's track, whole,
// in batches of buffered frames, or read ahead for a back-pressured
// subscription.

package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// groupStarted counts group seq's stream as being read.
func (sub *subscription) groupStarted(seq uint64) {
	sub.mu.Lock()
	sub.receiving++
	sub.span.arrived(seq)
	if !sub.finAt.IsZero() {
		sub.lastGroup = time.Now()
	}
	sub.mu.Unlock()
}

func (sub *subscription) groupDone() {
	sub.mu.Lock()
	sub.receiving--
	if !sub.finAt.IsZero() {
		sub.lastGroup = time.Now()
	}
	if sub.receiving == 0 && sub.idle != nil {
		close(sub.idle)
		sub.idle = nil
	}
	sub.wakeLocked() // a group owed may be in now
	sub.mu.Unlock()
}

// respond notes what a lite-05 subscribe response says about the groups
// to come (see groupSpan) and wakes finishAfterGroups, which may now be
// able to end the track.
func (sub *subscription) respond(f func(*groupSpan)) {
	sub.mu.Lock()
	f(&sub.span)
	sub.wakeLocked()
	sub.mu.Unlock()
}

// wakeLocked wakes a finishAfterGroups waiting for the span to change.
func (sub *subscription) wakeLocked() {
	if sub.wake != nil {
		close(sub.wake)
		sub.wake = nil
	}
}

// readFailLevel is how loudly to log a group stream that failed before its
// header was read: a warning for what the peer sent, a debug message when
// the connection ended under it (closed by either side: nobody's fault).
func readFailLevel(err error) slog.Level {
	var ce *transport.ConnError
	if errors.As(err, &ce) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// arrivedBatch holds group streams that arrived whole, read (FIN
// included) and sorted into their subscriptions, waiting to be taken in by
// the accept loop.
type arrivedBatch [arrivedMax]arrivedGroup

// arrivedGroup is a group stream read whole and its subscription.
type arrivedGroup struct {
	gr  *groupReader
	sub *subscription
}

// arrivedMax is the most group streams the accept loop reads before it
// puts their groups into their tracks. Reading a stream to its FIN
// completes it in quic-go, which then queues a MAX_STREAMS frame for the
// peer and wakes its send loop: reading the streams at hand back to back,
// before the slower work of putting each group into its track, lets those
// frames leave together rather than one packet each (a burst of one-frame
// groups otherwise costs the subscriber a packet every group or two, and
// the publisher an acknowledgement for each). A batch holds at most
// arrivedMax read buffers beyond the streams being read. A group of a
// back-pressured subscription ends the batch: it may wait in the accept
// loop, and nothing is read behind it meanwhile.
const arrivedMax = 16

// tryAcceptor is a connection that can hand over a uni stream that is
// already there without waiting (rawquic's).
type tryAcceptor interface {
	TryAcceptUniStream() (transport.ReceiveStream, bool)
}

// takeGroupStreams hands rs, and the peer's further group streams that are
// already there, to readers: a stream that has fully arrived (a small group,
// sent in one go) is read right here, a batch of them at a time (see
// arrivedMax), any other on a goroutine of its own, so that a group still
// arriving never holds up the next. The latter get a header deadline.
// Streams that wait for back-pressure (turnWaiters) end the batch too.
func (s *Session) takeGroupStreams(rs transport.ReceiveStream, batch *arrivedBatch) {
	try, _ := transport.As[tryAcceptor](s.conn)
	n := 0
	for {
		s.unsorted.Add(1) // until recvGroup knows its subscription
		gr := getGroupReader(rs)
		if !gr.arrived() {
			st := rs
			gr.hdrTimer = s.awaitGroupHeader(func() { st.CancelRead(uint32(broadcast.CodeTimeout)) })
			s.spawn(func() { s.recvGroup(st, gr, false) })
		} else if sub := s.sortGroup(rs, gr); sub != nil {
			if sub.opts.Backpressure {
				s.recvBatch(batch[:n])
				s.recvSorted(rs, gr, sub, true)
				return
			}
			batch[n].gr, batch[n].sub = gr, sub
			n++
		}
		if n == len(batch) || try == nil || s.turnWaiters.Load() > 0 {
			break
		}
		var ok bool
		if rs, ok = try.TryAcceptUniStream(); !ok {
			break
		}
	}
	s.recvBatch(batch[:n])
}

// recvBatch takes in the groups of a batch and empties it.
func (s *Session) recvBatch(b []arrivedGroup) {
	for i := range b {
		s.recvSorted(b[i].gr.src.rs, b[i].gr, b[i].sub, true)
		b[i].gr, b[i].sub = nil, nil
	}
}

// recvGroup reads one group stream, through gr, into the subscription's
// track; it returns gr to its pool. Frames already received stay in the
// group whatever happens later.
func (s *Session) recvGroup(rs transport.ReceiveStream, gr *groupReader, inline bool) {
	if sub := s.sortGroup(rs, gr); sub != nil {
		s.recvSorted(rs, gr, sub, inline)
	}
}

// sortGroup reads a group stream's header and returns its subscription,
// counted as receiving the group; the stream is no longer unsorted either
// way. Nil if the stream is refused or its subscription gone: the stream
// is dealt with and gr returned to its pool.
func (s *Session) sortGroup(rs transport.ReceiveStream, gr *groupReader) (sub *subscription) {
	defer func() {
		s.unsorted.Add(-1) // counted in its subscription from here on, if any
		s.sorted.notify()
		if sub == nil {
			putGroupReader(gr)
		}
	}()
	r := gr.Reader
	typ, err := wire.ReadUniStreamType(r, s.version)
	if err != nil {
		s.log.Log(context.Background(), readFailLevel(err), "refusing uni stream", "type", typ, "err", err)
		rs.CancelRead(uint32(broadcast.CodeUnexpectedStream))
		return nil
	}
	if typ == wire.UniSetup {
		s.recvSetup(rs, gr)
		return
	}
	hdr := &gr.hdr // in the pooled reader: decoding into it allocates nothing
	if err := wire.ReadMessage(r, s.version, hdr, s.lim.MaxMessageSize); err != nil {
		s.log.Log(context.Background(), readFailLevel(err), "bad group header", "err", err)
		rs.CancelRead(uint32(codeOfWire(err)))
		return nil
	}
	if !gr.headerRead() {
		return nil
	}
	s.mu.Lock()
	sub = s.subs[hdr.SubscribeID]
	s.mu.Unlock()
	if sub == nil { // a subscription we ended: not an error (moq-dev/moq's Rust implementation stops it with 0)
		rs.CancelRead(uint32(broadcast.CodeCancel))
		return nil
	}
	sub.groupStarted(hdr.Sequence)
	sub.stats.groupStarted(hdr.Sequence, time.Time{})
	return sub
}

// recvSorted reads the rest of a group stream whose header named sub into
// sub's track and returns gr to its pool.
func (s *Session) recvSorted(rs transport.ReceiveStream, gr *groupReader, sub *subscription, inline bool) {
	if sub.opts.Backpressure {
		s.recvAhead(rs, gr, sub, inline) // returns gr
		return
	}
	defer putGroupReader(gr)
	defer sub.groupDone()
	s.recvInto(rs, gr, sub)
}

// recvAhead receives a group of a back-pressured subscription. With room
// in the track now it streams the group in (roomNow); otherwise it reads
// the stream to its end into a group of its own (charged to the receive
// budget like any other), then, on a goroutine of its own, waits for room
// and hands the frames to the track, whole, so that the reader never waits
// on a group still arriving. Reading a group only starts while fewer than
// MaxGroupsInFlight groups of the subscription have been read and wait for
// room; past that the stream waits unread right here (in the accept loop,
// for a group that arrived whole), so that QUIC flow control and stream
// credit hold the publisher back. This cannot stall: such groups wait
// only while the track has no room and every group in it is whole, that
// is while its reader has whole groups to read; and otherwise every group
// stream is read, so none holds the connection's flow-control window that
// a group being read needs. A group that went into the track as it
// arrived (the reader was keeping up) may still be arriving when the
// track fills: its reader then waits on it, and its bytes on the window,
// so streams are read ahead past MaxGroupsInFlight until it is whole.
func (s *Session) recvAhead(rs transport.ReceiveStream, gr *groupReader, sub *subscription, inline bool) {
	if sub.roomNow() {
		// A reader keeping up: the group goes into the track as it
		// arrives, as without back-pressure, so that live media reaches
		// it a frame at a time, not a whole group (a GOP, a second or
		// more of video) late. It takes the track's room as a group read
		// ahead would; the next group finds the track full if the reader
		// falls behind, and is held back as below.
		defer putGroupReader(gr)
		defer sub.groupDone()
		sub.streamingIn(1)
		defer sub.streamingIn(-1)
		s.recvInto(rs, gr, sub)
		return
	}
	seq := gr.hdr.Sequence
	done := func() { putGroupReader(gr); sub.groupDone() }
	var gate func(bool)
	if !inline {
		// While this waits for its turn, the accept loop waits too
		// (acceptUniStreams), as it would have with the group in hand: a
		// stream that went the goroutine way (its bytes were late, or
		// arrivalWait misjudged it) must not let in more streams than
		// back-pressure allows. Only the wait for a turn holds it: a
		// group being read needs the connection's flow-control window,
		// which streams left unaccepted would fill.
		gate = s.holdAccept
	}
	if err := sub.awaitTurn(s.lim.MaxGroupsInFlight, gate); err != nil {
		rs.CancelRead(uint32(broadcast.CodeOf(err)))
		done()
		return
	}
	hold := broadcast.NewTrack(sub.track.Info(), s.lim.Model)
	g, _ := hold.CreateGroup(seq)
	stopOnReclaim(rs, g)
	c := gr.startChunks()
	rerr := s.readFrames(c, g, sub.stats, s.stampsFor(gr, sub))
	if rerr != nil {
		sub.stats.reset(broadcast.CodeOf(rerr))
		g.Abort(rerr)
		var se *transport.StreamError
		if !errors.As(rerr, &se) { // our verdict on their bytes: tell them
			rs.CancelRead(uint32(broadcast.CodeOf(rerr)))
		}
	} else {
		_ = g.Finish()
	}
	putGroupReader(gr)
	sub.readAhead(1)
	s.spawnOr(func() {
		defer sub.groupDone()
		defer sub.readAhead(-1)
		defer hold.Abort(nil) // gives its charges back, if not done below
		s.insertAhead(sub, hold, g, rerr)
	}, func() {
		hold.Abort(nil)
		sub.readAhead(-1)
		sub.groupDone()
	})
}

// insertAhead waits for room in sub's track and puts the group read ahead
// into it.
func (s *Session) insertAhead(sub *subscription, hold *broadcast.TrackProducer, g *broadcast.GroupProducer, rerr error) {
	seq := g.Sequence()
	if err := sub.awaitRoom(); err != nil {
		return
	}
	defer func() { <-sub.room }()
	var frames [][]byte
	var stamps []uint64
	gc := g.Consume()
	gc.SkipEvicted() // beyond GroupMaxFrames or GroupMaxBytes, as the track would have
	for {
		var end error
		if frames, stamps, end = gc.TryReadFramesAt(frames, stamps, math.MaxInt); end != nil {
			break
		}
	}
	hold.Abort(nil) // its charges go back before the track charges the frames
	var err error
	if rerr == nil {
		err = sub.track.WriteGroupAt(seq, stamps, frames...)
	} else if pg, cerr := sub.track.CreateGroup(seq); cerr == nil {
		err = pg.WriteFramesAt(stamps, frames...)
		pg.Abort(rerr) // as the stream ended: the frames it brought, then its error
	} else {
		err = cerr
	}
	if err != nil {
		s.log.Debug("dropping group", "subscribe", sub.id, "group", seq, "err", err)
		sub.stats.reset(broadcast.CodeOf(err))
		return
	}
	if rerr == nil {
		s.counters.groupsReceived.Add(1)
		sub.stats.groupDone()
	}
}

// awaitTurn waits until fewer than max groups read ahead wait for room, or
// a group in the track is still arriving (streaming): its reader may be
// waiting on it, so nothing may wait unread in the flow-control window
// that its bytes need.
// hold, if not nil, is told when it starts to wait (true) and when it stops
// (false).
func (sub *subscription) awaitTurn(max int, hold func(bool)) error {
	held := false
	defer func() {
		if held {
			hold(false)
		}
	}()
	for {
		sub.mu.Lock()
		if sub.ahead < max || sub.streaming > 0 {
			sub.mu.Unlock()
			return nil
		}
		if sub.turn == nil {
			sub.turn = make(chan struct{})
		}
		turn := sub.turn
		sub.mu.Unlock()
		if hold != nil && !held {
			hold(true)
			held = true
		}
		select {
		case <-turn:
		case <-sub.ctx.Done():
			return remoteErr(context.Cause(sub.ctx))
		}
	}
}

// roomNow reports whether a group can go straight into sub's track: no
// group read ahead waits for room (they go first, in order), none holds
// the room, and the track has room now.
func (sub *subscription) roomNow() bool {
	sub.mu.Lock()
	ahead := sub.ahead
	sub.mu.Unlock()
	return ahead == 0 && len(sub.room) == 0 && sub.track.HasRoom()
}

// streamingIn counts groups going into the track as they arrive (d = 1 or
// -1); streams waiting for a turn check again (one may have started to
// wait between roomNow and the count going up).
func (sub *subscription) streamingIn(d int) {
	sub.mu.Lock()
	sub.streaming += d
	if sub.turn != nil {
		close(sub.turn)
		sub.turn = nil
	}
	sub.mu.Unlock()
}

// readAhead counts groups read ahead that wait for room (d = 1 or -1).
func (sub *subscription) readAhead(d int) {
	sub.mu.Lock()
	sub.ahead += d
	if d < 0 && sub.turn != nil {
		close(sub.turn)
		sub.turn = nil
	}
	sub.mu.Unlock()
}

// spawnOr runs f on a goroutine of the session's, or orElse right here if
// the session is closing.
func (s *Session) spawnOr(f, orElse func()) {
	s.spawnMu.RLock()
	defer s.spawnMu.RUnlock()
	if !s.closing {
		s.wg.Go(f)
		return
	}
	orElse()
}

// awaitRoom takes the subscription's room once the track has room for a
// group, or fails when the subscription ends.
func (sub *subscription) awaitRoom() error {
	select {
	case sub.room <- struct{}{}:
	case <-sub.ctx.Done():
		return remoteErr(context.Cause(sub.ctx))
	}
	if err := sub.track.WaitRoom(sub.ctx); err != nil {
		<-sub.room
		if sub.ctx.Err() != nil {
			return remoteErr(context.Cause(sub.ctx))
		}
		return err
	}
	return nil
}

// recvInto reads the rest of a group stream, whose header named sub, into
// sub's track.
func (s *Session) recvInto(rs transport.ReceiveStream, gr *groupReader, sub *subscription) {
	hdr := &gr.hdr
	c := gr.startChunks()
	ts := s.stampsFor(gr, sub)
	if gr.src.eof && s.recvWhole(rs, c, hdr, sub, ts) {
		return
	}
	g, err := sub.track.CreateGroup(hdr.Sequence)
	if err != nil {
		s.log.Debug("dropping group", "subscribe", hdr.SubscribeID, "group", hdr.Sequence, "err", err)
		sub.stats.reset(broadcast.CodeOf(err))
		rs.CancelRead(uint32(broadcast.CodeOf(err)))
		return
	}
	// No per-stream hook on the session's end is needed: the session ends
	// only with its connection, whose close ends every stream's read.
	stopOnReclaim(rs, g)
	if err := s.readFrames(c, g, sub.stats, ts); err != nil {
		sub.stats.reset(broadcast.CodeOf(err))
		g.Abort(err)
		var se *transport.StreamError
		if !errors.As(err, &se) { // our verdict on their bytes: tell them
			rs.CancelRead(uint32(broadcast.CodeOf(err)))
		}
		return
	}
	_ = g.Finish()
	s.counters.groupsReceived.Add(1)
	sub.stats.groupDone()
}

// stopOnReclaim stops rs, the stream filling g, if the receive budget
// takes g back for another session's sake: a peer that stalls the stream
// would otherwise keep its reader, and the bytes of a frame it is reading,
// until the session ends.
func stopOnReclaim(rs transport.ReceiveStream, g *broadcast.GroupProducer) {
	g.OnReclaim(func() { rs.CancelRead(uint32(broadcast.CodeBoundsExceeded)) })
}

// recvWhole takes in a group whose stream lies whole in c, FIN included (a
// small group, sent in one go): it goes into the track finished, waking its
// consumers once rather than at its creation, its frames and its end.
// False, with c and ts as they were, for a group of more frames than a
// batch or with a frame that is bad or cut short: readFrames then reads it
// as a stream and reports what is wrong.
func (s *Session) recvWhole(rs transport.ReceiveStream, c *chunks, hdr *wire.Group, sub *subscription, ts *frameStamps) bool {
	var arr [maxBatch][]byte
	lo, prev := c.lo, ts.prev
	batch, size := c.frames(arr[:0], s.lim.MaxFrameSize, ts)
	if c.lo != c.hi {
		c.lo, ts.prev = lo, prev
		clear(batch)
		return false
	}
	frames := len(batch)
	var err error
	if ts.on {
		err = sub.track.WriteGroupAt(hdr.Sequence, ts.batch, batch...)
	} else {
		err = sub.track.WriteGroup(hdr.Sequence, batch...)
	}
	clear(batch)
	if err != nil {
		s.log.Debug("dropping group", "subscribe", hdr.SubscribeID, "group", hdr.Sequence, "err", err)
		sub.stats.reset(broadcast.CodeOf(err))
		rs.CancelRead(uint32(broadcast.CodeOf(err)))
		return true
	}
	s.counters.framesReceived.Add(uint64(frames))
	s.counters.bytesReceived.Add(size)
	s.counters.groupsReceived.Add(1)
	sub.stats.media(uint64(frames), size)
	sub.stats.groupDone()
	return true
}

// maxBatch is the most frames readFrames hands to the group at once.
const maxBatch = 64

// readFrames reads the rest of a group stream from c, `size || payload`
// frames (lite-05: `timestamp || size || payload`, ts following them) until
// FIN at a frame boundary, straight into payload memory (chunks): the
// frames that lie complete in it go to the group together, with one
// wake-up of its consumers, and a large frame is read on its own. No frame
// is held back while waiting for the stream.
func (s *Session) readFrames(c *chunks, g *broadcast.GroupProducer, st *subStats, ts *frameStamps) error {
	var arr [maxBatch][]byte
	var frames, bytes uint64
	// held is what a frame still arriving holds of the budget: charged
	// (through its group, which the budget can take back, this included)
	// from the moment it is known to be coming, as readPayload charges a
	// large one, until the group charges it.
	budget := g
	var held int64
	defer func() {
		budget.Release(held)
		s.counters.framesReceived.Add(frames)
		s.counters.bytesReceived.Add(bytes)
		st.media(frames, bytes)
	}()
	for {
		batch, size := c.frames(arr[:0], s.lim.MaxFrameSize, ts)
		if len(batch) == 0 { // the next frame is not all here yet
			stamp, n, hlen, err := wire.ParseFrameHeader(c.buf[c.lo:c.hi], ts.on, ts.prev)
			need := c.hi - c.lo + 1 // its size is not all here either
			switch {
			case err != nil && !errors.Is(err, wire.ErrShort): // a timestamp out of range
				return s.frameErr(err)
			case err == nil && n > uint64(s.lim.MaxFrameSize):
				return &broadcast.Error{Code: broadcast.CodeFrameTooLarge, Reason: "frame over the size limit"}
			case err == nil && n >= chunkMax: // a large frame: memory of its own, charged as it arrives
				c.lo += hlen
				if ts.on {
					ts.add(stamp)
				}
				payload, held, err := readPayload(c, n, budget)
				if err != nil {
					return s.frameErr(err)
				}
				budget.Release(held) // the group charges it now
				batch, size = append(batch, payload), n
			case err == nil:
				need = hlen + int(n)
				if held == 0 && n > 0 {
					if !budget.Reserve(int64(n)) {
						return broadcast.ErrBudget
					}
					held = int64(n)
				}
			}
			if len(batch) == 0 {
				if err := c.read(need); err != nil {
					if errors.Is(err, io.EOF) && c.lo == c.hi {
						return nil // FIN between frames: the group is complete
					}
					return s.frameErr(err)
				}
				continue
			}
		}
		var err error
		if ts.on {
			err = g.WriteFramesAt(ts.batch, batch...)
		} else {
			err = g.WriteFrames(batch...)
		}
		clear(batch)
		budget.Release(held) // the frame it was for is in the batch: the group charges it now
		held = 0
		if err != nil {
			return err
		}
		frames += uint64(len(batch))
		bytes += size
	}
}

// frameErr classifies a failed read inside a group: the peer's reset, or a
// stream that ended inside a frame (WrongSize).
func (s *Session) frameErr(err error) error {
	var se *transport.StreamError
	if errors.As(err, &se) {
		return remoteErr(err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &broadcast.Error{Code: broadcast.CodeWrongSize, Reason: "group stream ended inside a frame"}
	}
	s.connEnded(err)
	return err
}

// holdAccept counts a back-pressured group waiting for its turn on a
// goroutine (true) or done waiting (false); acceptUniStreams takes no
// stream while any waits.
func (s *Session) holdAccept(waiting bool) {
	if waiting {
		s.turnWaiters.Add(1)
	} else if s.turnWaiters.Add(-1) == 0 {
		s.turnFree.notify()
	}
}
