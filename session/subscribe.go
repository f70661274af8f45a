package session

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"sync"
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

	ready  chan struct{} // closed once SUBSCRIBE_OK arrived or the subscription failed
	err    error         // why it failed; read after ready is closed
	ctx    context.Context
	cancel context.CancelCauseFunc
	// room is held by the one group stream that waits for room in the track
	// and then creates its group (Backpressure): one room, one group.
	room chan struct{}

	mu        sync.Mutex
	receiving int       // group streams being read
	lastGroup time.Time // when a group stream last arrived
	idle      chan struct{}
	ahead     int           // groups read ahead, waiting for room (Backpressure)
	turn      chan struct{} // closed when ahead goes down, if someone waits
}

// Subscribe subscribes to a track of the peer's broadcast at path and returns
// a consumer starting at the latest group (or opts.Start). It waits until the
// peer accepts the subscription, and returns the peer's refusal (for instance
// an error matching broadcast.ErrNotFound) or ctx's error. Local subscribers
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
		// A consumer of Remote made the track on demand an instant ago; its
		// subscription registers itself momentarily. Join the track.
		s.mu.Unlock()
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
		s.startSubscription(path, tp, SubscribeOptions{Priority: tp.Info().Priority}, true)
	}})
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
		id:     s.nextSubID.Add(1) - 1, // moq-lite peers count from 0
		path:   path,
		track:  tp,
		opts:   opts,
		shared: shared,
		ready:  make(chan struct{}),
		room:   make(chan struct{}, 1),
	}
	var ctx context.Context
	ctx, sub.cancel = context.WithCancelCause(s.ctx)
	sub.ctx = ctx
	s.subs[sub.id] = sub
	if shared {
		s.shared[trackKey{path, tp.Info().Name}] = sub
	}
	s.spawn(func() { s.runSubscription(ctx, sub) })
	return sub
}

func (s *Session) runSubscription(ctx context.Context, sub *subscription) {
	log := s.log.With("subscribe", sub.id, "broadcast", sub.path, "track", sub.track.Info().Name)
	var once sync.Once
	settle := func(err error) { once.Do(func() { sub.err = err; close(sub.ready) }) }
	forget := func() {
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
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		end(remoteErr(err))
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
		end(remoteErr(err))
		return
	}

	// The reader settles the subscription on the peer's first reply and
	// reports how the stream ended.
	result := make(chan error, 1)
	go func() { result <- s.readResponses(st, settle) }() // always joined below

	select {
	case err := <-result:
		switch {
		case errors.Is(err, io.EOF): // the publisher finished the track
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
// the subscription), then anything else until the stream ends. It returns
// io.EOF for a clean finish; failures are settled by the caller.
func (s *Session) readResponses(st transport.Stream, settle func(error)) error {
	r := getReader(st)
	defer putReader(r)
	first := true
	for {
		m, err := wire.ReadSubscribeResponse(r, s.version, s.lim.MaxMessageSize)
		if err != nil {
			switch {
			case isWireErr(err):
				err = &broadcast.Error{Code: codeOfWire(err), Reason: err.Error()}
			case errors.Is(err, io.EOF) && first:
				err = &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "subscribe stream ended before SUBSCRIBE_OK"}
			case !errors.Is(err, io.EOF):
				err = remoteErr(err)
			}
			return err
		}
		switch m := m.(type) {
		case *wire.SubscribeOK:
			first = false
			settle(nil)
		case *wire.SubscribeDrop:
			if first {
				return &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "SUBSCRIBE_DROP before SUBSCRIBE_OK"}
			}
			s.log.Debug("publisher dropped groups", "start", m.Start, "end", m.End, "code", m.Error)
		}
	}
}

// finishAfterGroups ends the track once its group streams are done. The
// publisher FINs the subscribe stream after writing every group, but the group
// streams are separate (lite-03/04 have no "last group" message) and may
// still be on their way, so wait until none of this subscription's is being
// read, no accepted group stream is still unsorted, and none has arrived for
// FinishGrace.
func (s *Session) finishAfterGroups(ctx context.Context, sub *subscription) {
	finAt := time.Now()
	for {
		sub.mu.Lock()
		last := finAt
		if sub.lastGroup.After(last) {
			last = sub.lastGroup
		}
		busy, since := sub.receiving > 0, time.Since(last)
		var idle chan struct{}
		// An unsorted stream may be one of ours: look again shortly, but
		// not past FinishGrace (a stream whose header never comes must not
		// hold the end up).
		if !busy && s.unsorted.Load() > 0 && time.Since(finAt) < s.lim.FinishGrace {
			sub.mu.Unlock()
			select {
			case <-time.After(5 * time.Millisecond):
				continue
			case <-ctx.Done():
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
			_ = sub.track.Finish()
			sub.cancel(io.EOF)
			return
		}
		select {
		case <-time.After(s.lim.FinishGrace - since):
		case <-ctx.Done():
			sub.track.Abort(remoteErr(context.Cause(ctx)))
			return
		}
	}
}

func (sub *subscription) groupStarted() {
	sub.mu.Lock()
	sub.receiving++
	sub.lastGroup = time.Now()
	sub.mu.Unlock()
}

func (sub *subscription) groupDone() {
	sub.mu.Lock()
	sub.receiving--
	sub.lastGroup = time.Now()
	if sub.receiving == 0 && sub.idle != nil {
		close(sub.idle)
		sub.idle = nil
	}
	sub.mu.Unlock()
}

// recvGroup reads one group stream, through gr, into the subscription's
// track; it returns gr to its pool. Frames already received stay in the
// group whatever happens later.
func (s *Session) recvGroup(rs transport.ReceiveStream, gr *groupReader) {
	sorted := false
	defer func() {
		if !sorted {
			s.unsorted.Add(-1)
		}
	}()
	handed := false // to a goroutine waiting for room, with gr
	defer func() {
		if !handed {
			putGroupReader(gr)
		}
	}()
	r := gr.Reader
	typ, err := wire.ReadUniStreamType(r, s.version)
	if err != nil {
		s.log.Warn("refusing uni stream", "type", typ, "err", err)
		rs.CancelRead(uint32(broadcast.CodeUnexpectedStream))
		return
	}
	hdr := &gr.hdr // in the pooled reader: decoding into it allocates nothing
	if err := wire.ReadMessage(r, s.version, hdr, s.lim.MaxMessageSize); err != nil {
		s.log.Warn("bad group header", "err", err)
		rs.CancelRead(uint32(codeOfWire(err)))
		return
	}
	if !gr.headerRead() {
		return
	}
	s.mu.Lock()
	sub := s.subs[hdr.SubscribeID]
	s.mu.Unlock()
	if sub == nil { // a subscription we ended: not an error (Rust stops it with 0)
		rs.CancelRead(uint32(broadcast.CodeCancel))
		return
	}
	sub.groupStarted()
	s.unsorted.Add(-1) // counted in its subscription from here on
	sorted = true
	if sub.opts.Backpressure {
		handed = true // recvAhead returns gr
		s.recvAhead(rs, gr, sub)
		return
	}
	defer sub.groupDone()
	s.recvInto(rs, gr, sub)
}

// recvAhead receives a group of a back-pressured subscription: it reads
// the stream to its end into a group of its own (charged to the receive
// budget like any other), then, on a goroutine of its own, waits for room
// and hands the frames to the track, whole, so that the reader never waits
// on a group still arriving. Reading a group only starts while fewer than
// MaxGroupsInFlight groups of the subscription have been read and wait for
// room; past that the stream waits unread right here (in the accept loop,
// for a group that arrived whole), so that QUIC flow control and stream
// credit hold the publisher back. This cannot stall: such groups wait
// only while the track has no room, that is while its reader has groups to
// read; and while fewer wait, every group stream is read, so none holds
// the connection's flow-control window that a group being read needs.
func (s *Session) recvAhead(rs transport.ReceiveStream, gr *groupReader, sub *subscription) {
	seq := gr.hdr.Sequence
	done := func() { putGroupReader(gr); sub.groupDone() }
	if err := sub.awaitTurn(s.lim.MaxGroupsInFlight); err != nil {
		rs.CancelRead(uint32(broadcast.CodeOf(err)))
		done()
		return
	}
	hold := broadcast.NewTrack(sub.track.Info(), s.lim.Model)
	g, _ := hold.CreateGroup(seq)
	rerr := s.readFrames(gr.Reader, g)
	if rerr != nil {
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
	gc := g.Consume()
	gc.SkipEvicted() // beyond GroupMaxFrames or GroupMaxBytes, as the track would have
	for {
		var end error
		if frames, end = gc.TryReadFrames(frames, math.MaxInt); end != nil {
			break
		}
	}
	hold.Abort(nil) // its charges go back before the track charges the frames
	var err error
	if rerr == nil {
		err = sub.track.WriteGroup(seq, frames...)
	} else if pg, cerr := sub.track.CreateGroup(seq); cerr == nil {
		err = pg.WriteFrames(frames...)
		pg.Abort(rerr) // as the stream ended: the frames it brought, then its error
	} else {
		err = cerr
	}
	if err != nil {
		s.log.Debug("dropping group", "subscribe", sub.id, "group", seq, "err", err)
		return
	}
	if rerr == nil {
		s.counters.groupsReceived.Add(1)
	}
}

// awaitTurn waits until fewer than max groups read ahead wait for room.
func (sub *subscription) awaitTurn(max int) error {
	for {
		sub.mu.Lock()
		if sub.ahead < max {
			sub.mu.Unlock()
			return nil
		}
		if sub.turn == nil {
			sub.turn = make(chan struct{})
		}
		turn := sub.turn
		sub.mu.Unlock()
		select {
		case <-turn:
		case <-sub.ctx.Done():
			return remoteErr(context.Cause(sub.ctx))
		}
	}
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
	hdr, r := &gr.hdr, gr.Reader
	if s.recvWhole(rs, gr, sub) {
		return
	}
	g, err := sub.track.CreateGroup(hdr.Sequence)
	if err != nil {
		s.log.Debug("dropping group", "subscribe", hdr.SubscribeID, "group", hdr.Sequence, "err", err)
		rs.CancelRead(uint32(broadcast.CodeOf(err)))
		return
	}
	// No per-stream hook on the session's end is needed: the session ends
	// only with its connection, whose close ends every stream's read.
	if err := s.readFrames(r, g); err != nil {
		g.Abort(err)
		var se *transport.StreamError
		if !errors.As(err, &se) { // our verdict on their bytes: tell them
			rs.CancelRead(uint32(broadcast.CodeOf(err)))
		}
		return
	}
	_ = g.Finish()
	s.counters.groupsReceived.Add(1)
}

// recvWhole takes in a group whose stream lies whole in gr's buffer, FIN
// included (a small group, sent in one go): it goes into the track
// finished, waking its consumers once rather than at its creation, its
// frames and its end. False, with nothing read, for any other group.
func (s *Session) recvWhole(rs transport.ReceiveStream, gr *groupReader, sub *subscription) bool {
	if !gr.src.eof {
		return false
	}
	var arr [maxBatch][]byte
	var mem slab
	buf, _ := gr.Peek(gr.Buffered())
	if _, _, end := s.completeFrames(buf, len(arr)); end != len(buf) {
		return false // more frames than a batch, or a bad one: read as a stream
	}
	batch, size := s.bufferedFrames(gr.Reader, arr[:0], &mem)
	frames := len(batch)
	err := sub.track.WriteGroup(gr.hdr.Sequence, batch...)
	clear(batch)
	if err != nil {
		s.log.Debug("dropping group", "subscribe", gr.hdr.SubscribeID, "group", gr.hdr.Sequence, "err", err)
		rs.CancelRead(uint32(broadcast.CodeOf(err)))
		return true
	}
	s.counters.framesReceived.Add(uint64(frames))
	s.counters.bytesReceived.Add(size)
	s.counters.groupsReceived.Add(1)
	return true
}

// maxBatch is the most frames readFrames hands to the group at once.
const maxBatch = 64

// readFrames reads `size || payload` frames until FIN at a frame boundary.
// The frames that lie complete in r's buffer go to the group together, in
// one allocation and with one wake-up of its consumers (bufferedFrames); a
// frame that does not is read on its own. No frame is held back while
// waiting for the stream.
func (s *Session) readFrames(r *bufio.Reader, g *broadcast.GroupProducer) error {
	var arr [maxBatch][]byte
	var mem slab
	var frames, bytes uint64
	budget := s.lim.Model.Budget
	defer func() {
		s.counters.framesReceived.Add(frames)
		s.counters.bytesReceived.Add(bytes)
	}()
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return nil // FIN between frames: the group is complete
				}
				return s.frameErr(err)
			}
		}
		batch, size := s.bufferedFrames(r, arr[:0], &mem)
		if len(batch) == 0 { // the next frame is not all here yet
			n, err := wire.ReadVarint(r)
			switch {
			case err != nil:
				return s.frameErr(err)
			case n > uint64(s.lim.MaxFrameSize):
				return &broadcast.Error{Code: broadcast.CodeBoundsExceeded, Reason: "frame over the size limit"}
			}
			payload, held, err := readPayload(r, n, &mem, budget)
			if err != nil {
				return s.frameErr(err)
			}
			budget.Release(held) // the group charges it now
			batch, size = append(batch, payload), n
		}
		err := g.WriteFrames(batch...)
		clear(batch)
		if err != nil {
			return err
		}
		frames += uint64(len(batch))
		bytes += size
	}
}

// slab hands out the payload memory of one group's frames: a frame's bytes
// are carved from a shared allocation rather than allocated each. Slabs
// double from the first batch's size up to slabMax, so a group that
// arrives whole (one batch) costs one exact allocation, and one that
// trickles in a frame or two per read (a subscriber among many, or a slow
// link) costs a few allocations instead of one per batch. A slab lives
// while any frame carved from it is referenced; the unused tail of the
// last one is at most half the group's bytes and below slabMax.
type slab struct {
	free []byte
	next int // size of the next slab
}

const slabMax = 16 << 10

// take returns n bytes (capacity n) of fresh payload memory.
func (m *slab) take(n int) []byte {
	if n > len(m.free) {
		if n >= slabMax {
			return make([]byte, n) // a large frame: its own allocation
		}
		size := max(n, m.next)
		m.free = make([]byte, size)
		m.next = min(2*size, slabMax)
	}
	p := m.free[:n:n]
	m.free = m.free[n:]
	return p
}

// bufferedFrames takes the frames that lie complete in r's buffer (at most
// cap(dst)), copies their payloads into memory from mem and appends them to
// dst; it also returns their total size. It stops at a frame that is not
// all buffered or is over the size limit (the caller then reads it alone and
// reports the error).
func (s *Session) bufferedFrames(r *bufio.Reader, dst [][]byte, mem *slab) ([][]byte, uint64) {
	buf, _ := r.Peek(r.Buffered())
	count, total, _ := s.completeFrames(buf, cap(dst)-len(dst))
	if count == 0 {
		return dst, 0
	}
	payloads := mem.take(total)
	off, pos := 0, 0
	for range count {
		size, n, _ := wire.ParseVarint(buf[off:])
		off += n
		end := pos + int(size)
		copy(payloads[pos:end], buf[off:off+int(size)])
		dst = append(dst, payloads[pos:end:end])
		off += int(size)
		pos = end
	}
	_, _ = r.Discard(off)
	return dst, uint64(total)
}

// completeFrames scans buf for `size || payload` frames that lie complete
// in it, at most max of them, each within MaxFrameSize: their count, their
// payload bytes, and where the last one ends.
func (s *Session) completeFrames(buf []byte, max int) (count, total, end int) {
	for count < max {
		size, n, err := wire.ParseVarint(buf[end:])
		if err != nil || size > uint64(s.lim.MaxFrameSize) || size > uint64(len(buf)-end-n) {
			break
		}
		end += n + int(size)
		total += int(size)
		count++
	}
	return count, total, end
}

// exactAlloc is the largest frame whose declared size is allocated up front.
// Beyond it the buffer grows with the bytes that actually arrive, so a peer
// cannot pin memory by declaring sizes it never sends.
const exactAlloc = 64 << 10

// readPayload reads exactly size bytes, into memory from mem when the size
// is allocated up front. The memory is charged to b as it is allocated, so
// that frames still arriving count against the receive budget: it returns
// what it charged, for the caller to release when the frame goes to its
// group, and releases it itself on failure.
func readPayload(r io.Reader, size uint64, mem *slab, b *broadcast.Budget) (p []byte, held int64, err error) {
	defer func() {
		if err != nil {
			b.Release(held)
			held = 0
		}
	}()
	grow := func(n int) error {
		if !b.Reserve(int64(n)) {
			return broadcast.ErrBudget
		}
		held += int64(n)
		return nil
	}
	if size <= exactAlloc {
		if err := grow(int(size)); err != nil {
			return nil, held, err
		}
		p := mem.take(int(size))
		_, err := io.ReadFull(r, p)
		return p, held, err
	}
	if err := grow(exactAlloc); err != nil {
		return nil, held, err
	}
	p = make([]byte, 0, exactAlloc)
	for uint64(len(p)) < size {
		if len(p) == cap(p) {
			n := int(min(uint64(cap(p)), size-uint64(len(p))))
			if err := grow(n); err != nil {
				return nil, held, err
			}
			p = slices.Grow(p, n)
		}
		n := int(min(uint64(cap(p)-len(p)), size-uint64(len(p))))
		m, err := io.ReadFull(r, p[len(p):len(p)+n])
		p = p[:len(p)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, held, err
		}
	}
	return p, held, nil
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
	return err
}

// runInterest asks the peer for its broadcasts under prefix and mirrors them
// into Remote until the stream or the session ends.
func (s *Session) runInterest(prefix string) {
	st, err := s.conn.OpenStream(s.ctx)
	if err != nil {
		return
	}
	please := wire.AnnouncePlease{Prefix: wirePrefix(prefix)}
	if s.version == wire.Lite04 {
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
	stop := context.AfterFunc(s.ctx, func() { reset(st, broadcast.CodeCancel) })
	defer stop()

	r := getReader(st)
	defer putReader(r)
	active := map[string]*broadcast.Producer{} // what this stream announced
	// Active announcements we refused as loops: remembered (to tell a
	// duplicate and to match their end), so counted like active ones.
	ignored := map[string]bool{}
	var readErr error
	defer func() {
		// A closed stream ends all it announced; a lost connection is
		// reported as what it is, not as the broadcasts' unannouncement.
		cause := s.connLost(readErr)
		for path, p := range active {
			s.endRemoteWith(path, p, cause)
		}
		for path := range ignored {
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
				s.fail(broadcast.CodeOf(err), "announce init: %v", err)
				return
			}
			active[path] = p
		}
	}
	for {
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
		path := broadcast.JoinPath(prefix, m.Suffix)
		switch {
		case m.Active && (active[path] != nil || ignored[path]):
			s.fail(broadcast.CodeDuplicate, "announce: %q announced twice", path)
			return
		case m.Active && len(m.Hops) > 0 && containsNonZero(m.Hops, s.hop):
			s.log.Debug("ignoring looped announcement", "path", path)
			if err := s.hold(path); err != nil {
				s.fail(broadcast.CodeOf(err), "announce: %v", err)
				return
			}
			ignored[path] = true
		case m.Active:
			p, err := s.announceRemote(path, m.Hops)
			if err != nil {
				s.fail(broadcast.CodeOf(err), "announce: %v", err)
				return
			}
			active[path] = p
		case active[path] != nil:
			s.endRemote(path, active[path])
			delete(active, path)
		case ignored[path]:
			s.release(path)
			delete(ignored, path)
		default: // ended for a path never active: tolerated, as moq-lite does
		}
	}
}

func containsNonZero(hops []uint64, id uint64) bool {
	for _, h := range hops {
		if h != 0 && h == id {
			return true
		}
	}
	return false
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
	if _, err := s.remote.Publish(path, p.Consume()); err != nil && s.ctx.Err() == nil {
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
// (readErr, possibly nil) or the session's end says it is; else nil.
func (s *Session) connLost(readErr error) error {
	var ce *transport.ConnError
	switch {
	case errors.As(readErr, &ce):
		return remoteErr(readErr)
	case s.ctx.Err() != nil:
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
	s.remotes = map[string]*broadcast.Producer{}
	s.mu.Unlock()
	err := remoteErr(context.Cause(s.ctx))
	for _, p := range remotes {
		p.Abort(err)
	}
}
