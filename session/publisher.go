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
func (s *Session) serveAnnounce(st transport.Stream, r *bufio.Reader) {
	var please wire.AnnouncePlease
	if err := wire.ReadMessage(r, s.version, &please, s.lim.MaxMessageSize); err != nil {
		s.log.Warn("bad announce interest", "err", err)
		reset(st, codeOfWire(err))
		return
	}
	prefix := broadcast.CleanPath(please.Prefix)
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	// The subscriber sends nothing after its interest: its FIN or reset ends
	// the stream, and a stray byte is a protocol violation.
	reading := goRead(st, func() {
		if _, err := r.ReadByte(); err == nil {
			cancel(&broadcast.Error{Code: broadcast.CodeUnexpectedMsg, Reason: "data after announce interest"})
		} else {
			cancel(err)
		}
	})
	defer reading.stop()

	sent := map[string]bool{}
	var buf []byte
	// offer says whether b goes to this peer: not too far, not its own.
	offer := func(b *broadcast.Consumer) ([]uint64, bool) {
		hops, ok := sendHops(b.Hops(), s.hop)
		return hops, ok && (please.ExcludeHop == 0 || !slices.Contains(b.Hops(), please.ExcludeHop))
	}
	var seen map[string]*broadcast.Consumer
	if wire.Supported(s.version, &wire.AnnounceInit{}) { // lite-01/02: the active set first, in one message
		seen = s.publish.Active(prefix)
		var init wire.AnnounceInit
		for path, b := range seen {
			if _, ok := offer(b); ok {
				suffix, _ := broadcast.StripPrefix(path, prefix)
				init.Suffixes = append(init.Suffixes, suffix)
				sent[path] = true
			}
		}
		slices.Sort(init.Suffixes)
		var err error
		if buf, err = wire.AppendMessage(buf, s.version, &init); err == nil {
			_, err = st.Write(buf)
		}
		if err != nil {
			cancel(err)
		}
	}
	for path, b := range s.publish.AnnouncedSince(ctx, prefix, seen) {
		msg := wire.Announce{Active: b != nil}
		msg.Suffix, _ = broadcast.StripPrefix(path, prefix)
		if b != nil {
			hops, ok := offer(b)
			if !ok {
				continue // too far, or the peer's own: it must not come back to it
			}
			if sent[path] { // never active twice in a row: fatal to moq-dev subscribers
				continue
			}
			msg.Hops = hops
			sent[path] = true
		} else if !sent[path] {
			continue
		} else {
			delete(sent, path)
		}
		var err error
		if buf, err = wire.AppendMessage(buf[:0], s.version, &msg); err == nil {
			_, err = st.Write(buf)
		}
		if err != nil {
			s.log.Debug("announce stream ended", "err", err)
			cancel(err)
			break
		}
	}
	switch cause := context.Cause(ctx); {
	case s.ctx.Err() != nil:
	case errors.Is(cause, io.EOF):
		_ = st.Close() // the subscriber finished: finish our side too
	default:
		st.CancelWrite(uint32(broadcast.CodeOf(cause)))
	}
}

// serveSubscribe answers one SUBSCRIBE: it replies SUBSCRIBE_OK, sends each
// group on its own uni stream and finishes when the track does.
func (s *Session) serveSubscribe(st transport.Stream, r *bufio.Reader) {
	var sub wire.Subscribe
	if err := wire.ReadMessage(r, s.version, &sub, s.lim.MaxMessageSize); err != nil {
		s.log.Warn("bad subscribe", "err", err)
		reset(st, codeOfWire(err))
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

	gs := &groupSender{s: s, id: sub.ID, base: urgency(sub.Priority), maxLatency: sub.MaxLatency}
	defer gs.wait()
	for {
		g, err := tc.RecvGroup(ctx)
		switch {
		case errors.Is(err, io.EOF):
			gs.wait() // every group written before the FIN that says "no more"
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

// groupSender runs the group streams of one subscription: the newest group
// gets the subscription's urgency and older ones in flight are demoted one
// step, so a congested link carries the newest group first. Groups older
// than the subscriber's max latency are reset with code Old instead of
// queueing forever. At most MaxGroupsInFlight groups are sent at once; more
// wait, leaving the rest in the track's bounded cache (a consumer that falls
// behind it skips evicted groups), so a slow subscriber costs bounded memory.
type groupSender struct {
	s          *Session
	id         uint64
	base       int8
	maxLatency time.Duration

	mu     sync.Mutex
	groups []*outGroup   // in flight, oldest first
	freed  chan struct{} // closed when a group leaves, if someone waits
	wg     sync.WaitGroup
}

type outGroup struct {
	seq     uint64
	created time.Time // when the publisher made the group: its age
	cancel  context.CancelCauseFunc
	stream  transport.SendStream // set once open
}

func (gs *groupSender) send(ctx context.Context, g *broadcast.GroupConsumer) {
	if !gs.waitSlot(ctx) {
		return
	}
	gctx, cancel := context.WithCancelCause(ctx)
	og := &outGroup{seq: g.Sequence(), created: g.Created(), cancel: cancel}
	gs.mu.Lock()
	for _, old := range gs.groups {
		if gs.maxLatency > 0 && og.created.Sub(old.created) > gs.maxLatency {
			old.cancel(&broadcast.Error{Code: broadcast.CodeOld, Reason: "group older than the subscriber's max latency"})
		} else if old.stream != nil && old.seq < og.seq {
			old.stream.SetPriority(min(gs.base+1, 7))
		}
	}
	gs.groups = append(gs.groups, og)
	gs.mu.Unlock()
	gs.wg.Go(func() {
		defer gs.remove(og)
		gs.s.writeGroup(gctx, gs, og, g)
	})
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

func (gs *groupSender) remove(og *outGroup) {
	og.cancel(nil)
	gs.mu.Lock()
	gs.groups = slices.DeleteFunc(gs.groups, func(x *outGroup) bool { return x == og })
	if gs.freed != nil {
		close(gs.freed)
		gs.freed = nil
	}
	gs.mu.Unlock()
}

func (gs *groupSender) opened(og *outGroup, st transport.SendStream) {
	gs.mu.Lock()
	og.stream = st
	gs.mu.Unlock()
}

func (gs *groupSender) cancelAll(code broadcast.Code) {
	gs.mu.Lock()
	for _, og := range gs.groups {
		og.cancel(&broadcast.Error{Code: code})
	}
	gs.mu.Unlock()
}

func (gs *groupSender) wait() { gs.wg.Wait() }

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// writeGroup sends one group: GROUP header, frames, FIN. It batches the
// frames at hand into one write and flushes before it would wait, so small
// frames cost one stream write per burst rather than one each.
func (s *Session) writeGroup(ctx context.Context, gs *groupSender, og *outGroup, g *broadcast.GroupConsumer) {
	st, err := s.conn.OpenUniStream(ctx)
	if err != nil {
		return
	}
	st.SetPriority(gs.base)
	gs.opened(og, st)
	// A cancel must unblock a Write stuck on flow control: reset the stream.
	// AfterFunc fires after ctx.Done closes, so this writer may see the
	// cancel first and return; when its stop prevents the reset, it resets.
	resetWithCause := func() { st.CancelWrite(uint32(broadcast.CodeOf(context.Cause(ctx)))) }
	stop := context.AfterFunc(ctx, resetWithCause)
	defer func() {
		if stop() && ctx.Err() != nil {
			resetWithCause()
		}
	}()

	w := writerPool.Get().(*bufio.Writer)
	w.Reset(st)
	defer func() { w.Reset(nil); writerPool.Put(w) }()

	var hdr [16]byte
	b := wire.AppendUniStreamType(hdr[:0], wire.UniGroup)
	b, err = wire.AppendMessage(b, s.version, &wire.Group{SubscribeID: gs.id, Sequence: og.seq})
	if err != nil {
		st.CancelWrite(uint32(broadcast.CodeEncode))
		return
	}
	if _, err := w.Write(b); err != nil {
		return
	}
	for {
		f, ok, err := g.TryReadFrame()
		if !ok {
			if w.Flush() != nil {
				return
			}
			f, err = g.ReadFrame(ctx)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && w.Flush() == nil {
				_ = st.Close()
				s.counters.groupsSent.Add(1)
			} else if ctx.Err() == nil {
				st.CancelWrite(uint32(broadcast.CodeOf(err)))
			}
			return
		}
		if _, err := w.Write(wire.AppendFrameHeader(hdr[:0], uint64(len(f)))); err != nil {
			return
		}
		if _, err := w.Write(f); err != nil {
			return
		}
		s.counters.framesSent.Add(1)
		s.counters.bytesSent.Add(uint64(len(f)))
	}
}
