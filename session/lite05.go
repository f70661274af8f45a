// What moq-lite-05 adds to a session: the SETUP uni stream each side sends,
// the TRACK stream (a track's fixed properties), and frame timestamps.

package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// peerSetup is what the peer's lite-05 SETUP said; set once.
type peerSetup struct {
	msg atomic.Pointer[wire.Setup]
	// arrived is closed once msg is set; made (under the session's mu) by
	// the first to wait for it before then (setupArrived), which the
	// SETUP, first on the wire, mostly is not.
	arrived chan struct{}
}

// setupArrived returns a channel that is closed once the peer's SETUP is in.
func (s *Session) setupArrived() <-chan struct{} {
	p := &s.peerSetup
	if p.msg.Load() != nil {
		return closedChan
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.msg.Load() != nil { // set meanwhile: setSetup closes only a channel it finds
		return closedChan
	}
	if p.arrived == nil {
		p.arrived = make(chan struct{})
	}
	return p.arrived
}

// setSetup records the peer's SETUP and wakes those waiting for it.
func (s *Session) setSetup(m *wire.Setup) {
	p := &s.peerSetup
	p.msg.Store(m)
	s.mu.Lock()
	if p.arrived != nil {
		close(p.arrived)
	}
	s.mu.Unlock()
}

// PeerSetup returns the peer's lite-05 SETUP once it arrived (false before,
// and always on other versions).
func (s *Session) PeerSetup() (wire.Setup, bool) {
	if m := s.peerSetup.msg.Load(); m != nil {
		return *m, true
	}
	return wire.Setup{}, false
}

// sendSetup opens our SETUP uni stream, writes SETUP and FIN. Both sides
// send theirs at once and wait for nothing: moq-dev's Rust server reads
// the client's SETUP before it serves anything, so a client that waited
// for the server's would never start. We advertise no probe level (we
// report no bandwidth, so the peer opens no PROBE stream), no role (both)
// and our hop ID, as @moq/net does, and that we answer SUBSCRIBE at once
// (EagerStart, see peerStartsEagerly). A client with a request target
// (path: Config.SetupPath or the connection's) sends it as Path; an empty
// one is left out, as moq-dev's clients do (it means the server's default).
func (s *Session) sendSetup(path string) {
	st, err := s.conn.OpenUniStream(s.ctx)
	if err != nil {
		return
	}
	m := wire.Setup{Origin: s.hop & wire.MaxVarint, EagerStart: true}
	if path != "" {
		m.Path, m.HasPath = path, true
	}
	b := wire.AppendUniStreamType(nil, wire.UniSetup)
	b, err = wire.AppendMessage(b, s.version, &m)
	if err == nil {
		_, err = st.Write(b)
	}
	if err != nil {
		st.CancelWrite(uint32(broadcast.CodeCancel))
		s.log.Debug("sending SETUP failed", "err", err)
		return
	}
	_ = st.Close()
}

// recvSetup reads the peer's SETUP stream (its type already read): one
// SETUP message, then FIN. It is read with the peer's group streams: their
// accept loop runs at the start and stops after the first streams it takes
// (normally this one), then runs again from our first subscription on
// (acceptGroups, stopUnwanted), so an idle session parks no goroutine for
// it and leaves nothing unread. A second SETUP stream, a malformed SETUP
// or bytes after it violate the protocol and close the session.
func (s *Session) recvSetup(rs transport.ReceiveStream, gr *groupReader) {
	if s.setupSeen.Swap(true) {
		rs.CancelRead(uint32(broadcast.CodeProtocol))
		s.fail(broadcast.CodeProtocol, "a second SETUP stream")
		return
	}
	m, fault, err := readSetupRest(gr.Reader, s.version, s.lim.MaxMessageSize)
	switch {
	case fault != nil:
		rs.CancelRead(uint32(fault.Code))
		s.fail(fault.Code, "%s", fault.Reason)
		return
	case err != nil:
		rs.CancelRead(uint32(codeOfWire(err)))
		return
	case !gr.headerRead():
		return
	}
	s.setSetup(m)
	path, _, _ := strings.Cut(m.Path, "?") // a query may hold a token: not for logs
	s.log.Debug("peer SETUP", "probe", m.Probe, "role", m.Role, "path", path, "eager_start", m.EagerStart)
}

// requestTargeter is a connection dialed for a request target that its
// transport cannot carry (rawquic.DialURL's).
type requestTargeter interface{ RequestTarget() string }

// errNotSetup: a uni stream other than a SETUP stream.
var errNotSetup = errors.New("not a SETUP stream")

// AcceptSetup reads a lite-05 client's SETUP before its session exists, so
// that a server can route the session by the SETUP's Path (raw QUIC has no
// request URI); New then takes it as Config.PeerSetup. The client's uni
// streams before its SETUP stream are stopped with UnexpectedStream (it has
// nothing else to send before it is served), as moq-dev's accept_setup
// does. It fails once ctx ends (with its cause), on a malformed SETUP or
// data after it (a *broadcast.Error), or with the connection. The caller
// closes conn on failure.
func AcceptSetup(ctx context.Context, conn transport.Conn, lim Limits) (*wire.Setup, error) {
	v, ok := wire.VersionForALPN(conn.Protocol())
	if !ok || !v.HasSetupStream() {
		return nil, fmt.Errorf("%w: %q has no SETUP stream", ErrVersion, conn.Protocol())
	}
	lim = lim.withDefaults()
	for {
		rs, err := conn.AcceptUniStream(ctx)
		if err != nil {
			return nil, setupErr(ctx, err)
		}
		stop := context.AfterFunc(ctx, func() { rs.CancelRead(uint32(broadcast.CodeTimeout)) })
		m, err := readSetupMsg(rs, v, lim.MaxMessageSize)
		stop()
		switch {
		case err == nil:
			return m, nil
		case ctx.Err() != nil:
			return nil, context.Cause(ctx)
		case errors.Is(err, errNotSetup):
			rs.CancelRead(uint32(broadcast.CodeUnexpectedStream))
			continue
		}
		var be *broadcast.Error
		if errors.As(err, &be) {
			rs.CancelRead(uint32(be.Code))
		}
		return nil, err
	}
}

// readSetupMsg reads a uni stream that should be a SETUP stream: its
// type, one SETUP, then FIN.
func readSetupMsg(rs transport.ReceiveStream, v wire.Version, maxSize int) (*wire.Setup, error) {
	r := bufio.NewReaderSize(rs, 512)
	typ, err := wire.ReadUniStreamType(r, v)
	switch {
	case err == nil && typ != wire.UniSetup, isWireErr(err):
		return nil, errNotSetup
	case err != nil:
		return nil, remoteErr(err)
	}
	m, fault, err := readSetupRest(r, v, maxSize)
	switch {
	case fault != nil:
		return nil, fault
	case err != nil:
		return nil, remoteErr(err)
	}
	return m, nil
}

// readSetupRest reads what follows a SETUP stream's type: one SETUP, then
// FIN. A fault is our verdict on the peer's bytes (the session's end); err
// is the stream's own failure (a reset, the connection).
func readSetupRest(r *bufio.Reader, v wire.Version, maxSize int) (_ *wire.Setup, fault *broadcast.Error, err error) {
	var m wire.Setup
	if err := wire.ReadMessage(r, v, &m, maxSize); err != nil {
		switch {
		case isWireErr(err):
			return nil, &broadcast.Error{Code: codeOfWire(err), Reason: "setup: " + err.Error()}, nil
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "setup stream ended before the SETUP message"}, nil
		}
		return nil, nil, err
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, nil, err
		}
		return nil, &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "setup: data after SETUP"}, nil
	}
	return &m, nil, nil
}

// peerStartsEagerly reports whether the peer's SETUP promised a
// SUBSCRIBE_START as soon as it holds a subscription (moqp2p does; moq-net
// and @moq/net send it only with the first group served). It waits for
// the SETUP, which every lite-05 peer sends first thing: at most
// HeaderTimeout (a peer that never sends one is taken as not promising),
// or until ctx ends (false).
//
// Why: Subscribe returns once the publisher holds the subscription, so a
// group its application writes afterwards is delivered. lite-04 says so
// with SUBSCRIBE_OK; lite-05 has none, and its START comes lazily from
// moq-net's publishers, with the first group. Our publishers send START
// at once (serveSubscribe), and say so in SETUP with a parameter the
// reference implementations skip as unknown (moq-net and @moq/net only
// log or drop START, whatever it says), so between moqp2p nodes Subscribe
// waits for the first response (START, END, DROP, or the stream's end or
// reset) under the caller's context, never for a group that may not come.
// Against a peer without the promise it returns once TRACK_INFO has
// answered, as moq-dev's subscribers do; groups written before its
// SUBSCRIBE arrives are then not delivered.
func (s *Session) peerStartsEagerly(ctx context.Context) bool {
	if s.peerSetup.msg.Load() == nil {
		arrived := s.setupArrived()
		t := time.NewTimer(s.lim.HeaderTimeout)
		defer t.Stop()
		select {
		case <-arrived:
		case <-t.C:
			s.log.Debug("no SETUP from the peer: subscriptions settle at TRACK_INFO")
			return false
		case <-ctx.Done():
			return false
		}
	}
	return s.peerSetup.msg.Load().EagerStart
}

// serveTrack answers the peer's TRACK with TRACK_INFO and FIN, or resets
// the stream with the code of the refusal (Unroutable for an unknown
// broadcast, NotFound for an unknown track). Every track
// of ours has a millisecond timescale and the cache's max age as its max
// latency.
func (s *Session) serveTrack(st transport.Stream, r *bufio.Reader, hdr headerTimer) {
	var m wire.Track
	if err := wire.ReadMessage(r, s.version, &m, s.lim.MaxMessageSize); err != nil {
		reset(st, codeOfWire(err))
		return
	}
	if !hdr.done() {
		return
	}
	b := s.published(broadcast.CleanPath(m.Broadcast))
	if b == nil {
		reset(st, codeUnknownBroadcast)
		return
	}
	// Not a subscription: a track's first subscriber is what starts a
	// publisher (and joins at the latest group), and TRACK precedes the
	// SUBSCRIBE that is one.
	tr, err := b.TrackInfo(m.Track)
	if err != nil {
		reset(st, broadcast.CodeOf(err))
		return
	}
	info := wire.TrackInfo{Priority: tr.Priority, MaxLatency: s.lim.Model.CacheMaxAge, Timescale: tr.Scale()}
	if info.MaxLatency <= 0 {
		info.MaxLatency = broadcast.DefaultCacheMaxAge
	}
	buf, err := wire.AppendMessage(nil, s.version, &info)
	if err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return
	}
	_ = st.Close()
	s.awaitFin(st, r)
}

// awaitFin waits (at most HeaderTimeout) for the peer to finish its side of
// a stream we answered, rather than stopping it: moq-dev's clients close
// their side after reading the answer, and fail the request if that close
// fails (it would, once our STOP_SENDING arrived).
func (s *Session) awaitFin(st transport.Stream, r *bufio.Reader) {
	t := time.AfterFunc(s.lim.HeaderTimeout, func() { st.CancelRead(0) })
	defer t.Stop()
	if _, err := r.ReadByte(); err == nil {
		st.CancelRead(uint32(broadcast.CodeUnexpectedMsg)) // nothing may follow the request
	}
}

// trackInfo asks the peer for a track's TRACK_INFO (lite-05), as moq-dev's
// subscribers do before SUBSCRIBE: a refusal (the broadcast is unknown)
// comes back as the stream's reset.
func (s *Session) trackInfo(ctx context.Context, path, track string) (wire.TrackInfo, error) {
	var info wire.TrackInfo
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return info, s.connErr(err)
	}
	stop := context.AfterFunc(ctx, func() { reset(st, broadcast.CodeCancel) })
	defer stop()
	b := wire.AppendStreamType(nil, wire.StreamTrack)
	if b, err = wire.AppendMessage(b, s.version, &wire.Track{Broadcast: wirePath(path), Track: track}); err == nil {
		_, err = st.Write(b)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return info, s.connErr(err)
	}
	// The request is written. Close can still fail if the publisher, done
	// reading, already stopped our side (STOP_SENDING, as ours does): the
	// answer is what matters.
	_ = st.Close()
	r := getReader(st)
	defer putReader(r)
	if err := wire.ReadMessage(r, s.version, &info, s.lim.MaxMessageSize); err != nil {
		st.CancelRead(uint32(broadcast.CodeCancel))
		switch {
		case ctx.Err() != nil:
			return info, remoteErr(context.Cause(ctx))
		case isWireErr(err):
			return info, &broadcast.Error{Code: codeOfWire(err), Reason: "track info: " + err.Error()}
		case errors.Is(err, io.EOF):
			return info, &broadcast.Error{Code: broadcast.CodeProtocol, Reason: "track stream ended before TRACK_INFO"}
		}
		return info, s.connErr(err)
	}
	st.CancelRead(0)
	return info, nil
}

// appendFrameHeader appends what precedes a frame's payload on a group or
// fetch stream: on lite-05 the timestamp delta from *prev (the previous
// frame's timestamp in the group, 0 before the first), which it advances,
// then the size. Timestamps are the model's, in the track's timescale,
// which is what our TRACK_INFO announces. A jump no zigzag varint holds
// (over 2^61) repeats the previous timestamp instead.
func (s *Session) appendFrameHeader(b []byte, prev *uint64, ts uint64, size int) []byte {
	if s.version.HasFrameTimestamps() {
		out, err := wire.AppendTimestamp(b, *prev, ts)
		if err != nil {
			out, ts = append(b, 0), *prev // zigzag(0)
		}
		b, *prev = out, ts
	}
	return wire.AppendFrameHeader(b, uint64(size))
}

// frameStamps follows the timestamps of one group stream's frames
// (lite-05). The wire carries each as a delta from the previous frame's,
// in the timescale of the publisher's TRACK_INFO; the track holds them in
// its own (Track.Scale), converted when the two differ.
type frameStamps struct {
	on       bool     // the version carries timestamps
	prev     uint64   // the previous frame's timestamp, wire units
	mul, div uint64   // wire units to track units
	batch    []uint64 // the current batch's timestamps, track units
	arr      [maxBatch]uint64
}

// stampsFor readies gr's frame stamps for a group stream of sub: they live
// in the pooled reader, so reading a group allocates nothing for them.
func (s *Session) stampsFor(gr *groupReader, sub *subscription) *frameStamps {
	st := &gr.stamps
	st.on, st.prev, st.mul, st.div, st.batch = s.version.HasFrameTimestamps(), 0, 1, 1, st.arr[:0]
	if !st.on {
		return st
	}
	if w, t := sub.wireScale.Load(), sub.track.Info().Scale(); w != 0 && w != t {
		st.mul, st.div = t, w
	}
	return st
}

// add records the next frame's timestamp ts (wire units) in the batch.
func (st *frameStamps) add(ts uint64) {
	st.prev = ts
	if st.mul != st.div {
		hi, lo := bits.Mul64(ts, st.mul)
		if hi >= st.div { // beyond 64 bits: saturate
			ts = wire.MaxTimestamp
		} else {
			ts, _ = bits.Div64(hi, lo, st.div)
			ts = min(ts, wire.MaxTimestamp)
		}
	}
	st.batch = append(st.batch, ts)
}

// serveFetch answers the peer's FETCH (lite-05): the group's frames, each
// with its timestamp delta, then FIN; a group the track no longer (or never)
// has is refused with NotFound. A fetch counts as one of the peer's
// subscriptions (MaxSubscriptions), and waits at most HeaderTimeout for a
// group not produced yet.
func (s *Session) serveFetch(st transport.Stream, r *bufio.Reader, hdr headerTimer) {
	var m wire.Fetch
	if err := wire.ReadMessage(r, s.version, &m, s.lim.MaxMessageSize); err != nil {
		reset(st, codeOfWire(err))
		return
	}
	if !hdr.done() || !s.admit(&s.served, s.lim.MaxSubscriptions, st, "fetch") {
		return
	}
	defer s.served.Add(-1)
	b := s.published(broadcast.CleanPath(m.Broadcast))
	if b == nil {
		reset(st, codeUnknownBroadcast)
		return
	}
	tc, err := b.SubscribeTrack(broadcast.Track{Name: m.Track, Priority: m.Priority})
	if err != nil {
		reset(st, broadcast.CodeOf(err))
		return
	}
	defer tc.Close()
	st.SetPriority(urgency(m.Priority))
	ctx, cancel := context.WithTimeout(s.ctx, s.lim.HeaderTimeout)
	defer cancel()
	// The deadline (Timeout) or the session's end (its cause) resets a
	// wait or a write it cuts short.
	stop := context.AfterFunc(ctx, func() { st.CancelWrite(uint32(broadcast.CodeOf(context.Cause(ctx)))) })
	defer stop()
	g, err := tc.GetGroup(ctx, m.Group)
	if err != nil {
		st.CancelWrite(uint32(broadcast.CodeOf(err)))
		st.CancelRead(0)
		return
	}
	w := bufio.NewWriterSize(st, 16<<10)
	var prev, frames, bytes uint64
	var hdrBuf [24]byte
	for {
		f, ts, err := g.ReadFrameAt(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			_, err = w.Write(s.appendFrameHeader(hdrBuf[:0], &prev, ts, len(f)))
		}
		if err == nil {
			_, err = w.Write(f)
		}
		if err != nil {
			st.CancelWrite(uint32(broadcast.CodeOf(err)))
			st.CancelRead(0)
			return
		}
		frames, bytes = frames+1, bytes+uint64(len(f))
	}
	if w.Flush() != nil {
		return
	}
	stop() // the answer is complete: the deadline must not reset it now
	if st.Close() == nil {
		s.sentGroup(s.obs.fetch(true), frames, bytes) // media sent, as a group stream's is
	}
	s.awaitFin(st, r)
}

// ErrNoFetch is returned by Fetch on versions before lite-05, whose
// publishers do not serve FETCH.
var ErrNoFetch = errors.New("session: this moq-lite version serves no FETCH")

// Fetch asks the peer for one group of a track (lite-05 FETCH) and returns
// it once it has arrived whole, finished, its frames' timestamps in the
// track's default timescale. It fails with the peer's refusal (matching
// broadcast.ErrNotFound for an unknown track or group, and for an unknown
// broadcast, refused with NotFound or Unroutable), ErrNoFetch before
// lite-05, or ctx's error. The group's bytes count against
// MaxReceiveBytes while the group is held, and a frame over MaxFrameSize
// ends it with FrameTooLarge.
func (s *Session) Fetch(ctx context.Context, path, track string, group uint64) (*broadcast.GroupConsumer, error) {
	if s.ctx.Err() != nil { // awaitVersion would pick at random between ready and ended
		return nil, ErrClosed
	}
	if !s.awaitVersion(ctx) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ErrClosed
	}
	if !s.version.HasFrameTimestamps() {
		return nil, ErrNoFetch
	}
	path = broadcast.CleanPath(path)
	info, err := s.trackInfo(ctx, path, track)
	if err != nil {
		return nil, err
	}
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return nil, s.connErr(err)
	}
	stop := context.AfterFunc(ctx, func() { reset(st, broadcast.CodeCancel) })
	defer stop()
	b := wire.AppendStreamType(nil, wire.StreamFetch)
	if b, err = wire.AppendMessage(b, s.version, &wire.Fetch{Broadcast: wirePath(path), Track: track, Group: group}); err == nil {
		_, err = st.Write(b)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return nil, remoteErr(err)
	}
	_ = st.Close() // as in trackInfo: a STOP_SENDING after the request is no failure
	tp := broadcast.NewTrack(broadcast.Track{Name: track}, s.lim.Model)
	g, err := tp.CreateGroup(group)
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return nil, err
	}
	fs := frameStamps{on: true, mul: 1, div: 1}
	fs.batch = fs.arr[:0]
	if info.Timescale != broadcast.DefaultTimescale {
		fs.mul, fs.div = broadcast.DefaultTimescale, info.Timescale
	}
	gr := getGroupReader(st)
	defer putGroupReader(gr)
	c := gr.startChunks()
	obs := s.obs.fetch(false)
	if err := s.readFrames(c, g, obs, &fs); err != nil {
		st.CancelRead(uint32(broadcast.CodeCancel))
		g.Abort(err)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = g.Finish()
	s.counters.groupsReceived.Add(1) // its frames and bytes were counted as they came
	obs.groupDone()
	return g.Consume(), nil
}

// sendDatagram sends group g of subscription id as one datagram (lite-05)
// if the track asks for it (broadcast.Track.Datagrams), the connection
// carries datagrams, and g is finished with a single frame that fits
// wire.MaxDatagram encoded. It reports whether it did; otherwise the group
// goes on a stream as usual. A datagram the network loses is not resent.
func (s *Session) sendDatagram(id uint64, info broadcast.Track, g *broadcast.GroupConsumer, stats *subStats) bool {
	if !info.Datagrams || !s.version.HasDatagrams() { // the common case: no connection lookup per group
		return false
	}
	dc, ok := transport.AsDatagramConn(s.conn)
	if !ok || !dc.DatagramsSupported() {
		return false
	}
	if n, size, complete := g.Remaining(1, wire.MaxDatagram); !complete || n != 1 || size > wire.MaxDatagram {
		return false
	}
	f, ts, ok, err := g.Clone().TryReadFrameAt()
	if !ok || err != nil {
		return false
	}
	b, err := wire.AppendDatagram(nil, s.version, &wire.Datagram{SubscribeID: id, Sequence: g.Sequence(), Timestamp: ts, Payload: f})
	if err == nil {
		err = dc.SendDatagram(b)
	}
	if err != nil {
		s.log.Debug("group not sent as a datagram", "group", g.Sequence(), "err", err)
		return false
	}
	s.sentGroup(stats, 1, uint64(len(f)))
	s.counters.datagramsSent.Add(1)
	return true
}

// startDatagrams starts the datagram reader of a lite-05 session whose
// connection carries datagrams; it runs from the first subscription to the
// session's end (an idle session has none).
func (s *Session) startDatagrams() {
	dc, ok := transport.AsDatagramConn(s.conn)
	if !ok || !s.version.HasDatagrams() {
		return
	}
	s.spawn(func() { s.recvDatagrams(dc) })
}

// recvDatagrams turns each datagram into a single-frame group of its
// subscription's track. One for a subscription we do not have, a malformed
// one, or one whose group arrived by stream already (or that no longer
// fits the receive budget) is dropped: datagrams are best effort, and a
// group stream arriving after the datagram is refused the same way.
func (s *Session) recvDatagrams(dc transport.DatagramConn) {
	for {
		p, err := dc.ReceiveDatagram(s.ctx)
		if err != nil {
			return
		}
		var d wire.Datagram
		if err := wire.DecodeDatagram(p, s.version, &d); err != nil {
			s.counters.datagramsDropped.Add(1)
			s.log.Debug("dropping a malformed datagram", "err", err)
			continue
		}
		s.mu.Lock()
		sub := s.subs[d.SubscribeID]
		s.mu.Unlock()
		if sub == nil {
			s.counters.datagramsDropped.Add(1)
			continue
		}
		st := frameStamps{on: true, mul: 1, div: 1}
		st.batch = st.arr[:0]
		if w, t := sub.wireScale.Load(), sub.track.Info().Scale(); w != 0 && w != t {
			st.mul, st.div = t, w
		}
		st.add(d.Timestamp)
		if err := sub.track.WriteGroupAt(d.Sequence, st.batch, d.Payload); err != nil {
			s.counters.datagramsDropped.Add(1)
			s.log.Debug("dropping datagram", "subscribe", d.SubscribeID, "group", d.Sequence, "err", err)
			continue
		}
		s.counters.groupsReceived.Add(1)
		s.counters.framesReceived.Add(1)
		s.counters.bytesReceived.Add(uint64(len(d.Payload)))
		s.counters.datagramsReceived.Add(1)
		sub.respond(func(sp *groupSpan) { sp.arrived(d.Sequence) })
		sub.stats.groupStarted(d.Sequence, time.Time{})
		sub.stats.media(1, uint64(len(d.Payload)))
		sub.stats.groupDone()
	}
}
